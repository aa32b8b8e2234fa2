"""Issue 5, batches: ask_many and %%ask_image --each against the test server: order, bounded concurrency,
retries honouring Retry-After, per-row errors, cached items skipped, structured columns."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
from hardening_helpers import COLOURS
from PIL import Image
from pydantic import BaseModel

import vision_magic
from vision_magic.engine.batch import expand_sources
from vision_magic.engine.send import retry_delay

FAST = {"Retry-After": "0.01"}


pytestmark = pytest.mark.usefixtures("replay_cache")


def colour_of(body) -> str:
    """The test server's reply: the colour name of the image's file, recovered from its width."""
    import base64
    import io

    url = body["messages"][-1]["content"][1]["image_url"]["url"]
    width = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).width
    return COLOURS[width - 32]


def test_rows_in_input_order_with_answers_tokens_and_cost(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    df = vision_magic.ask_many("Which colour?", str(folder), concurrency=3, progress=False)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["source", "answer", "tokens", "cost", "error", "replayed"]
    assert [s.split("/")[-1] for s in df["source"]] == sorted(p.name for p in folder.iterdir())
    assert list(df["answer"]) == COLOURS, "rows in input order, each with its own image's answer"
    assert df["error"].isna().all() and (df["tokens"] > 0).all() and (df["cost"] > 0).all()
    assert len(server.chat_requests) == 6
    for req in server.chat_requests:
        assert "stream" not in req.body and len(req.images) == 1
        assert req.body["messages"][-1]["content"][0]["text"] == "Which colour?"


def test_concurrency_is_bounded_and_used(openai_env, folder):
    server = openai_env
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(body):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return "ok"

    server.reply = slow
    paths = sorted(folder.iterdir()) * 2  # 12 items, 6 distinct requests twice: cache off to send all
    df = vision_magic.ask_many("bounded?", paths, concurrency=3, progress=False, cache=False)
    assert len(server.chat_requests) == 12 and df["error"].isna().all()
    assert state["max"] <= 3, f"{state['max']} requests in flight with concurrency=3"
    assert state["max"] >= 2, "requests never overlapped"


def test_429_and_503_are_retried_honouring_retry_after(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    server.add_fault("status", status=429, times=3, headers=FAST)
    server.add_fault("status", status=503, times=2, headers=FAST)
    df = vision_magic.ask_many("retry?", str(folder), concurrency=2, progress=False)
    assert df["error"].isna().all(), list(df["error"])
    assert list(df["answer"]) == COLOURS
    statuses = [r.status for r in server.chat_requests]
    assert statuses.count(429) == 3 and statuses.count(503) == 2 and statuses.count(200) == 6


def test_random_429s_everything_completes_in_order(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    server.fault_rate = (0.3, 429)
    server.retry_after = "0.01"
    paths = sorted(folder.iterdir())
    df = vision_magic.ask_many("random 429s", paths * 3, concurrency=4, progress=False, cache=False)
    assert df["error"].isna().all(), list(df["error"])
    assert list(df["answer"]) == COLOURS * 3
    assert any(r.status == 429 for r in server.chat_requests)


def test_a_failed_item_records_its_error_and_the_batch_goes_on(openai_env, folder):
    server = openai_env
    server.reply = "fine"
    server.add_fault("status", status=400, message="Bad image (injected)")
    sources = [*sorted(folder.iterdir())[:3], folder / "missing.png", "imgs/*.nothing"]
    df = vision_magic.ask_many("errors?", sources, concurrency=1, progress=False)
    assert len(df) == 5
    assert "400" in df["error"][0] and "Bad image (injected)" in df["error"][0] and pd.isna(df["answer"][0])
    assert df["answer"][1] == "fine" and df["answer"][2] == "fine"
    assert "file not found" in df["error"][3]
    assert "no files match" in df["error"][4]
    assert all("\n" not in e for e in df["error"].dropna())


def test_retries_are_bounded(openai_env, folder):
    server = openai_env
    server.add_fault("status", status=500, times=10, headers=FAST)
    df = vision_magic.ask_many("bounded retries", [sorted(folder.iterdir())[0]], retries=2, progress=False)
    assert "500" in df["error"][0] and "after 2 retries" in df["error"][0]
    assert len(server.chat_requests) == 3


def test_rerun_sends_only_what_is_missing(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    server.add_fault("status", status=400)  # the first item fails, as after a crash
    first = vision_magic.ask_many("resume", str(folder), concurrency=1, progress=False)
    assert first["error"].notna().sum() == 1
    n = len(server.chat_requests)
    second = vision_magic.ask_many("resume", str(folder), concurrency=4, progress=False)
    assert len(server.chat_requests) == n + 1, "only the failed item was sent again"
    assert second["error"].isna().all() and list(second["answer"]) == COLOURS
    assert second["replayed"].sum() == 5
    third = vision_magic.ask_many("resume", str(folder), progress=False)
    assert len(server.chat_requests) == n + 1 and third["replayed"].all()


class Swatch(BaseModel):
    colour: str
    bright: bool


def test_schema_gives_columns_and_sends_structured_outputs(openai_env, folder):
    server = openai_env
    server.reply = lambda body: json.dumps({"colour": colour_of(body), "bright": True})
    df = vision_magic.ask_many("Describe.", str(folder), schema=Swatch, progress=False)
    assert list(df.columns) == ["source", "answer", "colour", "bright", "tokens", "cost", "error", "replayed"]
    assert list(df["colour"]) == COLOURS and df["bright"].all()
    fmt = server.last.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Swatch"
    assert fmt["json_schema"]["schema"]["properties"].keys() == {"colour", "bright"}
    assert server.schema_errors == []


def test_json_mode_and_unparseable_answers(openai_env, folder):
    server = openai_env
    server.reply = lambda body: "not json" if colour_of(body) == "red" else json.dumps({"c": colour_of(body)})
    df = vision_magic.ask_many("Colour?", str(folder), json_mode=True, progress=False)
    assert server.last.body["response_format"] == {"type": "json_object"}
    assert "JSON" in server.last.body["messages"][-1]["content"][0]["text"]
    assert list(df["c"][1:]) == COLOURS[1:]
    assert "not valid JSON" in df["error"][0]


def test_a_dataframe_column_is_a_source(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    frame = pd.DataFrame({"path": [str(p) for p in sorted(folder.iterdir())[::-1]]})
    df = vision_magic.ask_many("col", frame["path"], progress=False)
    assert list(df["answer"]) == COLOURS[::-1] and list(df["source"]) == list(frame["path"])
    with pytest.raises(vision_magic.VisionMagicError, match="one DataFrame column"):
        vision_magic.ask_many("col", frame, progress=False)


def test_magic_each_shows_a_table_and_stores_it(shell, openai_env, folder, monkeypatch):
    server = openai_env
    server.reply = colour_of
    monkeypatch.chdir(folder.parent)
    r = shell.run_cell("%%ask_image --each imgs/*.png --concurrency 4 --out t_table\nWhich colour?")
    assert r.error_in_exec is None, r.error_in_exec
    table = shell.user_ns["t_table"]
    assert list(table["answer"]) == COLOURS and table["source"][0] == "imgs/00_red.png"
    assert any("imgs/00_red.png" in b.get("text/plain", "") for b in shell.displays.bundles)
    r = shell.run_cell("%%ask_image --each imgs/*.png --out t_table\nWhich colour?")
    assert r.error_in_exec is None and len(server.chat_requests) == 6, "the re-run was replayed"


def test_helpers():
    assert retry_delay({"retry-after-ms": "250"}, 3) == 0.25
    assert retry_delay({"retry-after": "0"}, 3) == 0.0
    assert 1.0 <= retry_delay({"retry-after": "soon"}, 2) <= 2.0, "unparseable: backoff 0.5 * 2**2, jittered"
    assert retry_delay({"retry-after": "3600"}, 0) == 60.0, "capped"
    assert retry_delay({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0) == 0.0  # in the past
    assert [label for label, _ in expand_sources(["a.png", "https://x.org/b.png"])] == [
        "a.png",
        "https://x.org/b.png",
    ]


def test_progress_bar_in_text_outside_jupyter(openai_env, folder, capsys):
    vision_magic.ask_many("progress?", str(folder), concurrency=2)
    err = capsys.readouterr().err
    assert "ask_many" in err and "6/6" in err


def test_works_while_an_event_loop_runs_as_in_jupyter(openai_env, folder):
    """ipykernel runs an asyncio loop: ask_many then runs its own loop in a worker thread."""
    import asyncio

    server = openai_env
    server.reply = colour_of

    async def cell():
        return vision_magic.ask_many("in a loop", str(folder), progress=False)

    df = asyncio.run(cell())
    assert list(df["answer"]) == COLOURS and len(server.chat_requests) == 6

    async def awaited():
        from vision_magic.engine.batch import ask_many_async

        return await ask_many_async("in a loop", str(folder), progress=False)

    again = asyncio.run(awaited())
    assert again["replayed"].all() and len(server.chat_requests) == 6


def test_each_in_a_real_kernel_with_a_restart_in_between(tmp_path, openai_env, folder):
    """%%ask_image --each in a Jupyter kernel (its loop is running): a table, a progress bar; after a kernel
    restart the same cell sends nothing."""
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient
    from server_fixtures import FAKE_KEY

    server = openai_env
    server.reply = colour_of
    root = Path(__file__).resolve().parent.parent
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext vision_magic"),
        nbformat.v4.new_code_cell("%%ask_image --each imgs/*.png --concurrency 3 --out t\nWhich colour?"),
        nbformat.v4.new_code_cell("list(t['answer']), int(t['replayed'].sum())"),
    ]
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "PYTHONPATH": str(root),
        "VISION_MAGIC_CACHE_DIR": os.environ["VISION_MAGIC_CACHE_DIR"],
    }
    results = []
    for _run in range(2):  # two kernels = a restart
        saved = dict(os.environ)
        try:
            os.environ.update(env)
            copy = nbformat.from_dict(nb)
            NotebookClient(
                copy, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder.parent)}}
            ).execute()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        results.append(copy)
    first, second = results
    table_outputs = first.cells[1].outputs
    assert any(
        "text/html" in o.get("data", {}) and "00_red.png" in o["data"]["text/html"] for o in table_outputs
    )
    assert first.cells[2].outputs[0]["data"]["text/plain"] == f"({COLOURS!r}, 0)"
    assert second.cells[2].outputs[0]["data"]["text/plain"] == f"({COLOURS!r}, 6)"
    assert len(server.chat_requests) == 6, "the restarted kernel sent requests"
    kinds = [k for o in table_outputs for k in o.get("data", {"stream:" + o.get("name", ""): 1})]
    assert "application/vnd.jupyter.widget-view+json" in kinds, "the notebook progress bar"
    assert FAKE_KEY not in nbformat.writes(first)
