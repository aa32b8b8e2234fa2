"""A real ipykernel driven through jupyter_client, as a notebook drives it: execute cells, read what they
publish on IOPub, and press the stop button (``KernelManager.interrupt_kernel()``, a SIGINT); and
:func:`run_notebook`, a whole notebook executed by nbclient."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# what a notebook run gets from the test's ``env`` only (anything else in the environment is removed)
ENDPOINT_ENV = (
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "VISION_MAGIC_MODEL",
    "VISION_MAGIC_REPLAY_ONLY",
)


def run_notebook(
    nb: Any,
    workdir: Path,
    env: dict[str, str],
    monkeypatch: Any,
    timeout: int = 180,
    allow_errors: bool = False,
) -> Any:
    """Execute ``nb`` with nbclient in a fresh kernel in ``workdir`` (widget state kept), with exactly ``env``
    as its OpenAI/vision_magic settings and this checkout on ``PYTHONPATH``; returns ``nb``. The kernel
    inherits this process's environment, so ``monkeypatch`` sets it (and puts it back afterwards)."""
    from nbclient import NotebookClient

    for name in ENDPOINT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        store_widget_state=True,
        allow_errors=allow_errors,
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb


class Kernel:
    """A python3 kernel with ``PYTHONPATH`` at this checkout (so it imports this worktree's vision_magic)."""

    def __init__(self, cwd: str | os.PathLike, env: dict[str, str]) -> None:
        from jupyter_client.manager import start_new_kernel

        full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=full_env, cwd=str(cwd))

    def execute(self, code: str) -> str:
        """Start running ``code``; its message id (pass it to :meth:`collect`)."""
        return self.kc.execute(code)

    def collect(
        self, msg_id: str, on_msg: Callable[[dict], Any] | None = None, timeout: float = 60
    ) -> list[dict]:
        """The IOPub messages of cell ``msg_id`` until the kernel is idle again (``on_msg`` sees each one)."""
        msgs: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msgs.append(msg)
            if on_msg:
                on_msg(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return msgs
        raise AssertionError(f"no idle within {timeout}s: {[m['msg_type'] for m in msgs]}")

    def run(self, code: str, on_msg: Callable[[dict], Any] | None = None, timeout: float = 60) -> list[dict]:
        """Run ``code`` to the end; its IOPub messages."""
        return self.collect(self.execute(code), on_msg, timeout)

    def printed(self, code: str) -> str:
        """What ``code`` printed to stdout."""
        return "".join(
            m["content"]["text"]
            for m in self.run(code)
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def interrupt(self) -> None:
        """The notebook's stop button."""
        self.km.interrupt_kernel()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def errors_of(msgs: list[dict]) -> list[dict]:
    """The ``error`` message contents among ``msgs``."""
    return [m["content"] for m in msgs if m["msg_type"] == "error"]


def stderr_of(msgs: list[dict]) -> str:
    """Everything written to stderr among ``msgs``."""
    return "".join(
        m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
