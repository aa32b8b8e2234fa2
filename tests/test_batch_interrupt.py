"""Issue 10, item 1: the stop button stops a batch. An interrupt (SIGINT, what Jupyter's stop button sends)
cancels the requests in flight within a moment, nothing more is sent, the finished rows are kept (in the
replay cache and in a partial table), one line says so, and re-running sends only the missing ones."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import signal
import threading
import time
import warnings

import pytest
from PIL import Image

import vision_magic
from vision_magic.errors import BatchInterrupted

N = 60
LINE = re.compile(
    rf"Interrupted: (\d+) of {N} images answered \(the table so far is in (.+?)\); "
    r"re-run to ask only about the other (\d+) \(answered ones are replayed from the cache\)"
)
LEAKS = ("Task was destroyed", "never awaited", "Exception ignored", "Traceback", "Unclosed", "unclosed")


pytestmark = pytest.mark.usefixtures("replay_cache")


@pytest.fixture
def many(tmp_path):
    """N small images, each different (so each has its own request and cache entry)."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(N):
        Image.new("RGB", (24, 24), (4 * i, 120, 250 - 4 * i)).save(d / f"{i:03d}.png")
    return d


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def requests_stopped(server) -> int:
    """No request arrives for a second and the batch's connections are closed; how many the server saw."""
    sent = len(server.chat_requests)
    time.sleep(1.0)
    assert len(server.chat_requests) == sent, "requests were still sent after the interrupt"
    batch_clients = {r.client for r in server.chat_requests}
    wait_until(lambda: not batch_clients & server.open_clients, timeout=3)  # the client closed its sockets
    return sent


def check_partial(table, answered: int) -> None:
    """Every row is there: the answered ones with their answers, the rest marked not run."""
    assert len(table) == N and int(table["error"].isna().sum()) == answered
    assert (table["error"] == "not run: interrupted").sum() == N - answered
    assert table["answer"].notna().sum() == answered


@contextlib.contextmanager
def sigint_when(condition):
    """Send this process SIGINT (Ctrl-C: KeyboardInterrupt in the main thread) once ``condition()`` holds;
    yields a list that gets the monotonic time it was sent."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sent: list[float] = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.01):
            if condition():
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield sent
    except KeyboardInterrupt:  # fail this test rather than end the whole pytest run
        pytest.fail("the interrupt escaped as a bare KeyboardInterrupt")
    finally:
        stop.set()
        watcher.join()


def test_interrupt_from_a_running_loop_cancels_the_worker_thread(openai_env, many, capsys, caplog):
    """As in Jupyter: the kernel's loop is running, so ask_many runs the batch on a worker thread. Ctrl-C in the
    main thread cancels it within a moment; the partial table is kept; the progress bar is closed; no asyncio
    warnings; re-running sends only the rows that were not answered."""
    from tqdm import tqdm

    server = openai_env
    server.latency = 0.2  # N / 4 x 0.2 s = 3 s uninterrupted

    async def cell():  # a running loop that, like ipykernel's, leaves SIGINT to the default handler
        return vision_magic.ask_many("What colour?", str(many), concurrency=4)

    loop = asyncio.new_event_loop()
    with (
        warnings.catch_warnings(record=True) as caught,
        sigint_when(lambda: len(server.chat_requests) >= 8) as sent,
    ):
        warnings.simplefilter("always")
        try:
            with pytest.raises(BatchInterrupted) as info:
                loop.run_until_complete(cell())
            back = time.monotonic()
        finally:
            loop.close()
        gc.collect()
    assert back - sent[0] < 1.5, f"control came back {back - sent[0]:.2f} s after the interrupt"
    err = info.value
    assert 4 <= err.answered < N and err.total == N
    match = LINE.fullmatch(str(err))
    assert match and int(match[1]) == err.answered and match[2] == "vision_magic.last_table"
    assert int(match[3]) == N - err.answered
    assert err.table is vision_magic.last_table
    check_partial(err.table, err.answered)
    seen = requests_stopped(server)
    assert seen <= err.answered + 4, "more than the in-flight requests went unanswered"
    assert not tqdm._instances, "the progress bar was left open"
    assert f"{err.answered}/{N}" in capsys.readouterr().err.splitlines()[-1]
    assert not [w for w in caught if any(leak in str(w.message) for leak in LEAKS)]
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]

    again = vision_magic.ask_many("What colour?", str(many), concurrency=4, progress=False)
    assert again["error"].isna().all() and again["replayed"].sum() == err.answered
    assert len(server.chat_requests) - seen == N - err.answered, "the re-run sent more than the missing ones"
    assert vision_magic.last_table is again


def test_magic_interrupt_without_a_loop_keeps_the_table_in_out(openai_env, shell, many, monkeypatch, capsys):
    """Outside a running loop (a terminal IPython, a script) the batch runs on this thread; Ctrl-C cancels it the
    same way, and ``--out NAME`` gets the partial table too."""
    server = openai_env
    server.latency = 0.2
    monkeypatch.chdir(many.parent)
    with sigint_when(lambda: len(server.chat_requests) >= 6) as sent:
        result = shell.run_cell("%%ask_image --each many/*.png --concurrency 4 --out t_part\nWhat colour?")
        back = time.monotonic()
    assert back - sent[0] < 1.5, f"control came back {back - sent[0]:.2f} s after the interrupt"
    err = result.error_in_exec
    assert isinstance(err, BatchInterrupted), repr(err)
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "Interrupted" in ln]
    match = LINE.search(line)
    assert match and match[2] == "vision_magic.last_table and t_part" and int(match[1]) == err.answered
    assert shell.user_ns["t_part"] is err.table is vision_magic.last_table
    check_partial(err.table, err.answered)
    requests_stopped(server)
    assert not any("text/html" in b for b in shell.displays.bundles), "no table is shown for a stopped batch"


def test_stop_button_stops_a_batch_in_a_real_kernel(openai_env, many):
    """The notebook's stop button (KernelManager.interrupt_kernel) during %%ask_image --each in a real ipykernel:
    control is back within a few seconds, the requests stop, one line counts the answered images and says a
    re-run resumes, and the re-run sends only the missing ones."""
    from kernel_helpers import Kernel, errors_of, stderr_of
    from server_fixtures import FAKE_KEY

    server = openai_env
    server.latency = 0.3  # N / 4 x 0.3 s = 4.5 s uninterrupted
    cell = "%%ask_image --each many/*.png --concurrency 4 --out t\nWhat colour?"
    with Kernel(many.parent, {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}) as kernel:
        kernel.run("%load_ext vision_magic")
        msg_id = kernel.execute(cell)
        wait_until(lambda: len(server.chat_requests) >= 8)  # about a second in
        at_interrupt = len(server.chat_requests)
        start = time.monotonic()
        kernel.interrupt()
        msgs = kernel.collect(msg_id, timeout=30)
        latency = time.monotonic() - start
        print(
            f"\nkernel: control back {latency:.2f} s after the interrupt; {at_interrupt} requests sent before it"
        )
        assert latency < 3, f"control came back {latency:.1f} s after the interrupt"
        [error] = errors_of(msgs)
        assert len(error["traceback"]) == 1, error["traceback"]
        match = LINE.search(error["traceback"][0])
        assert match and match[2] == "vision_magic.last_table and t", error["traceback"][0]
        answered = int(match[1])
        assert 4 <= answered < N
        seen = requests_stopped(server)
        print(f"kernel: {at_interrupt} requests before the interrupt, {seen} in all, {answered} answered")
        assert seen <= at_interrupt + 4, "requests were sent after the interrupt"
        checks = kernel.run(
            "import gc, vision_magic; gc.collect(); p = vision_magic.last_table\n"
            "print(p is t, int(p['error'].isna().sum()), int((p['error'] == 'not run: interrupted').sum()))"
        )
        out = "".join(m["content"]["text"] for m in checks if m["content"].get("name") == "stdout")
        assert out.split() == ["True", str(answered), str(N - answered)]
        assert not any(leak in stderr_of(msgs + checks) for leak in LEAKS), stderr_of(msgs + checks)
        styles = [
            m["content"]["data"].get("state", {}).get("bar_style")
            for m in msgs
            if m["msg_type"] == "comm_msg"
        ]
        assert "danger" in styles, "the progress bar was not closed (marked stopped) before control came back"

        msgs = kernel.run(cell, timeout=60)
        assert not errors_of(msgs)
        assert len(server.chat_requests) - seen == N - answered, "the re-run sent more than the missing ones"
        out = kernel.printed("print(int(t['replayed'].sum()), int(t['error'].isna().sum()))")
        assert out.split() == [str(answered), str(N)]
        assert not any(leak in stderr_of(msgs) for leak in LEAKS), stderr_of(msgs)


def test_cancelling_ask_many_async_keeps_the_finished_rows(openai_env, many):
    """From async code, cancelling the awaited batch stays a cancellation; the finished rows are kept."""
    from vision_magic.engine.batch import ask_many_async

    server = openai_env
    server.latency = 0.2

    async def main():
        task = asyncio.ensure_future(ask_many_async("What colour?", str(many), concurrency=4, progress=False))
        while len(server.chat_requests) < 8:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    table = vision_magic.last_table
    answered = int(table["error"].isna().sum())
    assert 4 <= answered < N
    check_partial(table, answered)
    assert requests_stopped(server) <= answered + 4


def test_the_line_says_when_a_rerun_cannot_resume(many):
    from vision_magic.engine.batch import Batch

    line = str(Batch("What colour?", str(many), cache=False).interrupted())
    assert line.startswith(f"Interrupted: 0 of {N} images answered") and f"asks about all {N} again" in line
    assert "asks about all" in str(Batch("What colour?", str(many), refresh=True).interrupted())
    assert LINE.fullmatch(str(Batch("What colour?", str(many)).interrupted()))
    assert vision_magic.last_table["error"].eq("not run: interrupted").all()
