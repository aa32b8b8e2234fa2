"""The warm-up (engine/warm.py) and the reused client (endpoints.make_client(reuse=True)).

After ``%load_ext``, once the kernel has been idle for a moment, the first question's modules and the openai
SDK are imported and the client is made on a background thread, so a question asked after a pause does not
wait for them; cells run back to back never wait for it nor share the GIL with it (the question then does the
work itself). Every question uses one client (one connection pool). Each case runs in a fresh Python process
with a real InteractiveShell (the warm-up happens once per process), or in a real kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from server_fixtures import FAKE_KEY

ROOT = Path(__file__).resolve().parent.parent

# Prints one JSON line: what the warm-up did and what the questions used. argv: image, config (JSON), "pause"
# (wait for the warm-up after the %load_ext cell, as a user typing the question) or "no pause", cells.
PROBE = r"""
import json, sys, threading, time
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

config = Config(json.loads(sys.argv[2]))
ip = InteractiveShell.instance(config=config)
ip.user_ns["path"] = sys.argv[1]
from vision_magic.engine import endpoints, warm

ip.run_cell("%load_ext vision_magic")
started = warm._thread is not None
if sys.argv[3] == "pause":
    deadline = time.monotonic() + 60
    while warm.state() in ("waiting", "working") and time.monotonic() < deadline:
        time.sleep(0.05)
after_load = {
    "state after load": warm.state(),
    "openai imported": "openai" in sys.modules,
    "PIL imported": "PIL.Image" in sys.modules,
    "clients": len(endpoints._clients),
}
warmed = list(endpoints._clients.values())
errors = []
for cell in sys.argv[4:]:
    result = ip.run_cell(cell)
    if result.error_in_exec is not None:
        errors.append(type(result.error_in_exec).__name__ + ": " + str(result.error_in_exec))
print(json.dumps({
    "started": started,
    **after_load,
    "state": warm.state(),
    "clients after questions": len(endpoints._clients),
    "questions used the warmed client": bool(warmed) and list(endpoints._clients.values()) == warmed,
    "threads": [t.name for t in threading.enumerate()],
    "errors": errors,
}))
"""


def _environment_without_keys() -> dict[str, str]:
    """This process's environment without any OpenAI or Azure OpenAI variable (keys, base URLs)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI"))}


def _probe(
    tmp_path: Path, env: dict[str, str], *cells: str, config: dict | None = None, pause: bool = True
) -> dict:
    """Run ``cells`` after a ``%load_ext vision_magic`` cell in a fresh process (``path``: a red PNG), after
    the warm-up ended (``pause``) or right away."""
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), "red").save(image)
    run_env = _environment_without_keys()
    run_env.update(
        PYTHONPATH=str(ROOT), MPLBACKEND="Agg", VISION_MAGIC_CACHE_DIR=str(tmp_path / "cache"), **env
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(image),
            json.dumps(config or {}),
            "pause" if pause else "no",
            *cells,
        ],
        env=run_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_while_the_kernel_is_idle_the_warm_up_makes_the_client_every_question_then_uses(tmp_path, server):
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    flags = ("", "--no-stream", "--no-stream")
    asks = [f"%%ask_image path {flag}\nQuestion {i}: what colour is this?" for i, flag in enumerate(flags)]
    seen = _probe(tmp_path, env, *asks)
    assert seen["started"] and seen["state after load"] == "done", seen
    assert seen["openai imported"] and seen["PIL imported"] and seen["clients"] == 1, seen
    assert seen["errors"] == [], seen
    assert seen["clients after questions"] == 1 and seen["questions used the warmed client"], seen
    assert "vision_magic-warm-up" not in seen["threads"], "the warm-up thread ends once the client is made"
    asked = server.chat_requests
    assert [r.body.get("stream", False) for r in asked] == [True, False, False]
    # the SDK closes a streamed response's connection at [DONE]; after a whole answer the next one reuses it
    assert asked[1].client == asked[2].client, "the third question reuses the second one's connection"


def test_cells_run_back_to_back_never_wait_for_the_warm_up(tmp_path, server):
    # "Run all": the question comes before the kernel was ever idle, so it cancels the warm-up and imports
    # the SDK itself; nothing ran beside the cells
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    seen = _probe(tmp_path, env, "%%ask_image path\nWhat colour?", "%%ask_image path\nAnd now?", pause=False)
    assert seen["started"] and seen["state after load"] == "waiting", seen
    assert not seen["openai imported"] and not seen["PIL imported"], "nothing imported beside the cells"
    assert seen["state"] == "cancelled" and seen["errors"] == [], seen
    assert seen["clients after questions"] == 1, "the question made the one client and the next reused it"
    assert "vision_magic-warm-up" not in seen["threads"], seen
    assert len(server.chat_requests) == 2


def test_nothing_is_warmed_for_a_dry_run(tmp_path, server):
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    seen = _probe(tmp_path, env, "%%ask_image path\nWhat?", config={"VisionMagic": {"dry_run": True}})
    assert not seen["started"] and seen["state"] == "off" and not seen["openai imported"], seen
    assert seen["errors"] == [] and server.requests == []


def test_nothing_is_warmed_without_a_key_and_the_question_still_says_so(tmp_path):
    seen = _probe(tmp_path, {}, "%%ask_image path\nWhat?")
    assert not seen["started"] and seen["clients"] == 0 and not seen["openai imported"], seen
    assert len(seen["errors"]) == 1 and "No API key" in seen["errors"][0], seen


def test_an_endpoint_without_its_key_warms_nothing_and_the_question_reports(tmp_path, server):
    # a key in the environment, but %config names an endpoint whose key variable is unset: nothing could be
    # sent, so nothing is warmed; the question gives its usual one line
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    config = {
        "VisionMagic": {
            "endpoints": {"mine": {"base_url": server.base_url, "api_key_env": "NO_SUCH_KEY_VAR"}}
        }
    }
    seen = _probe(tmp_path, env, "%%ask_image path\nWhat?", config=config)
    assert not seen["started"] and seen["clients"] == 0, seen
    assert len(seen["errors"]) == 1 and "NO_SUCH_KEY_VAR" in seen["errors"][0], seen
    assert server.chat_requests == []


def test_reused_clients_are_per_endpoint_key_timeout_and_retries(openai_env, monkeypatch):
    from vision_magic.engine import endpoints
    from vision_magic.engine.session import settings

    cfg = settings()
    url = openai_env.base_url
    first = endpoints.make_client(cfg, url, max_retries=0, reuse=True)
    assert endpoints.make_client(cfg, url, max_retries=0, reuse=True) is first
    assert endpoints.make_client(cfg, url, max_retries=1, reuse=True) is not first
    assert endpoints.make_client(cfg, url, max_retries=0) is not first, "reuse is asked for, never implied"
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY + "-other")
    assert endpoints.make_client(cfg, url, max_retries=0, reuse=True) is not first
    monkeypatch.setattr(cfg, "timeout", 7.0)
    other = endpoints.make_client(cfg, url, max_retries=0, reuse=True)
    assert other.timeout == 7.0 and other is not first


# The warm-up's own rules, on a job that records where and when it ran (a fresh process each: one per process).
STATES = r"""
import json, sys, threading, time
from vision_magic.engine import warm

ran = []
job = lambda: ran.append(threading.current_thread().name)
seen = {}
warm.IDLE_BEFORE_START = 0.5  # wide margins for the sleeps below on a busy machine
if sys.argv[1] == "busy":  # %load_ext ran in a cell: nothing starts before that cell ends
    warm.begin(job, busy=True)
    time.sleep(0.6)
    seen["while the cell runs"] = [warm.state(), list(ran)]
    warm.cell_ended()
    time.sleep(0.05)
    seen["just after it ended"] = [warm.state(), list(ran)]
    warm.cell_started()  # the next cell, soon after: the idle spell is broken
    time.sleep(0.6)
    seen["while the next runs"] = [warm.state(), list(ran)]
    warm.cell_ended()
    deadline = time.monotonic() + 30
    while warm.state() != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
    seen["once idle"] = [warm.state(), list(ran)]
    warm.wait()
    seen["begun again"] = warm.begin(job)
else:  # a question before the kernel was idle: cancelled, the job never runs
    warm.begin(job)
    warm.cell_started()
    warm.wait()
    time.sleep(0.6)
    seen["after the question"] = [warm.state(), list(ran)]
seen["threads"] = [t.name for t in threading.enumerate()]
print(json.dumps(seen))
"""


def _states(case: str) -> dict:
    env = {**_environment_without_keys(), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", STATES, case], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_warm_up_starts_only_after_an_unbroken_idle_spell():
    seen = _states("busy")
    assert seen["while the cell runs"] == ["waiting", []], seen
    assert seen["just after it ended"] == ["waiting", []], seen
    assert seen["while the next runs"] == ["waiting", []], seen
    assert seen["once idle"] == ["done", ["vision_magic-warm-up"]], "the job ran once, on its own thread"
    assert seen["begun again"] is False, "once per process"
    assert "vision_magic-warm-up" not in seen["threads"]


def test_a_question_before_the_warm_up_started_cancels_it():
    seen = _states("question first")
    assert seen["after the question"] == ["cancelled", []], seen
    assert "vision_magic-warm-up" not in seen["threads"]


# A fork while the warm-up imports a module: the child then imports the same module. argv: a folder holding
# slow_module.py (its import takes a second).
FORK = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from vision_magic.engine import warm

warm.begin(lambda: __import__("slow_module"))
deadline = time.monotonic() + 30
while "slow_module" not in sys.modules and time.monotonic() < deadline:  # its import has begun
    time.sleep(0.01)
assert warm.state() == "working" and not hasattr(sys.modules["slow_module"], "DONE")
pid = os.fork()
if pid == 0:  # the child: without the fork guard this import waits forever on the lock the thread held
    import slow_module
    os._exit(0 if slow_module.DONE else 1)
state_at_fork = warm.state()
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(state_at_fork, os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print(state_at_fork, "child hung")
"""


def test_a_fork_waits_for_the_warm_up_so_the_child_can_import(tmp_path):
    (tmp_path / "slow_module.py").write_text("import time\ntime.sleep(1)\nDONE = True\n")
    env = {**_environment_without_keys(), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", FORK, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["done", "0"], out.stdout


def test_in_a_real_kernel_the_warm_up_waits_for_the_idle_kernel(tmp_path, server):
    from kernel_helpers import Kernel

    Image.new("RGB", (64, 48), "red").save(tmp_path / "red.png")
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "VISION_MAGIC_CACHE_DIR": str(tmp_path),
    }
    with Kernel(tmp_path, env) as kernel:
        # %load_ext and a second of work in one cell: the warm-up waits for the cell to end
        during = kernel.printed(
            "%load_ext vision_magic\nimport sys, time\ntime.sleep(1)\n"
            "from vision_magic.engine import warm\nprint(warm.state(), 'openai' in sys.modules)"
        )
        assert during.split() == ["waiting", "False"], during
        time.sleep(2)  # the kernel is idle: the user types the question
        after = kernel.printed(
            "import time\ndeadline = time.monotonic() + 60\n"
            "while warm.state() == 'working' and time.monotonic() < deadline: time.sleep(0.05)\n"
            "print(warm.state(), 'openai' in sys.modules, 'PIL.Image' in sys.modules)"
        )
        assert after.split() == ["done", "True", "True"], after
        answered = kernel.run("%%ask_image red.png --no-stream\nWhat colour is this?")
    assert [m for m in answered if m["msg_type"] == "error"] == [], answered
    assert len(server.chat_requests) == 1, "the question went out with the client the warm-up made"
