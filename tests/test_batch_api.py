"""Issue 14, the Batch API: ``ask_many(..., via="batch")`` against the test server's /v1/files and /v1/batches:
submit and result equal to a live run, reattach after a restart (a new process) with zero uploads, failed and
expired lines, cancel, a split at a small injected limit, an unreadable image in the middle, the answers in
the replay cache, ``batches()``, the batch price, ``batch_file`` / ``read_batch_output``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hardening_helpers import COLOURS
from PIL import Image
from server_fixtures import FAKE_KEY
from test_batch import colour_of

import vision_magic
from fake_openai import request_errors
from vision_magic.engine.batch_api import CANCELLED, EXPIRED, BatchJob
from vision_magic.engine.session import current, settings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("replay_cache")


def uploaded_lines(server) -> list[list[dict]]:
    """The request lines of every input file uploaded, file by file."""
    files = [f for f in server.store.files.values() if f.purpose == "batch"]
    return [[json.loads(line) for line in f.content.splitlines()] for f in files]


def submit(folder, **kw):
    return vision_magic.ask_many("Which colour?", str(folder), via="batch", progress=False, **kw)


def test_submit_returns_at_once_and_the_result_equals_a_live_run(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    job = submit(folder)
    assert isinstance(job, BatchJob)
    assert server.uploads == 1 and server.batches_created == 1 and not server.chat_requests
    assert job.status == "validating" and not job.done, "returned before the server did any work"
    (lines,) = uploaded_lines(server)
    assert len(lines) == 6 and len({line["custom_id"] for line in lines}) == 6
    for line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        assert request_errors(line["body"]) == [], "every line's body follows the published schema"
        assert "stream" not in line["body"]
    created = next(r for r in server.requests if r.path == "/v1/batches" and r.method == "POST").body
    assert created["endpoint"] == "/v1/chat/completions" and created["completion_window"] == "24h"

    df = job.wait(poll=0).result()
    assert job.status == "completed" and job.counts == {"total": 6, "completed": 6, "failed": 0}
    assert list(df["answer"]) == COLOURS, "rows in input order"
    live = vision_magic.ask_many("Which colour?", str(folder), progress=False, cache=False)
    assert list(df.columns) == list(live.columns)
    for column in ("source", "answer", "tokens", "error", "replayed"):
        assert list(df[column]) == list(live[column]), column
    assert list(df["cost"]) == pytest.approx(list(live["cost"] / 2)), "the Batch API costs half"
    assert "completed: 6/6 done, 0 failed" in job.summary() and "(Batch API price)" in job.summary()
    assert f"${df['cost'].sum():.4f} (Batch API price)" in repr(job), "the footer: the real cost"
    records = current().last_table_records["answers"]
    assert len(records) == 6 and all(r["request_key"] for r in records)
    tokens_in = sum(r["usage"]["input_tokens"] for r in records)
    tokens_out = sum(r["usage"]["output_tokens"] for r in records)
    assert tokens_in + tokens_out == df["tokens"].sum()
    assert f"{tokens_in:,} tokens in, {tokens_out:,} out" in repr(job)


def test_answers_go_into_the_replay_cache_so_a_live_run_sends_nothing(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    submit(folder).wait(poll=0)  # waiting is enough: the answers are stored when the batch has ended
    df = vision_magic.ask_many("Which colour?", str(folder), progress=False)
    assert not server.chat_requests, "a plain ask_many over the same images sent requests"
    assert df["replayed"].all() and list(df["answer"]) == COLOURS


def no_preparing(monkeypatch):
    """Make preparing an image fail: a reattach that needs none goes through."""

    def fail(*args, **kwargs):
        raise AssertionError("an image was prepared again")

    monkeypatch.setattr("vision_magic.engine.question.build_question", fail)


def test_rerunning_reattaches_instead_of_submitting_again(openai_env, folder, monkeypatch):
    server = openai_env
    server.reply = colour_of
    first = submit(folder)
    with monkeypatch.context() as patched:
        no_preparing(patched)  # unchanged files: no image is read again
        again = submit(folder)
    assert again.reattached and again.batch_ids == first.batch_ids
    assert server.uploads == 1 and server.batches_created == 1
    os.utime(folder / "00_red.png", ns=(1, 1))  # touched, same pixels: prepared again, same batch
    assert submit(folder).batch_ids == first.batch_ids and server.uploads == 1
    assert list(again.wait(poll=0).result()["answer"]) == COLOURS
    done = submit(folder)  # finished: still the same batch, nothing uploaded
    assert done.reattached and done.done and server.uploads == 1
    assert list(done.result(wait=False)["answer"]) == COLOURS


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True, text=True, timeout=180
    )


def test_a_restarted_kernel_reattaches_with_zero_uploads(openai_env, folder, replay_cache):
    """Submit here, then a new process with the same cache: it reattaches, waits, and gets the live rows."""
    server = openai_env
    server.reply = colour_of
    job = submit(folder)
    assert server.uploads == 1
    code = f"""
        import json, vision_magic, vision_magic.engine.question

        def fail(*args, **kwargs):
            raise AssertionError("an image was prepared again")

        vision_magic.engine.question.build_question = fail  # reattaching reads no image
        job = vision_magic.ask_many("Which colour?", {str(folder)!r}, via="batch", progress=False)
        print("REATTACHED", job.reattached, job.batch_ids)
        df = job.wait(poll=0).result()
        print("ROWS", json.dumps(df[["source", "answer", "tokens", "error"]].to_dict("records")))
        print("KNOWN", json.dumps(vision_magic.batches()[["id", "status"]].to_dict("records")))
    """
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "VISION_MAGIC_CACHE_DIR": str(replay_cache.parent),
    }
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " " in line}
    assert out["REATTACHED"] == f"True {job.batch_ids}"
    assert server.uploads == 1 and server.batches_created == 1, "the restarted kernel submitted again"
    rows = json.loads(out["ROWS"])
    live = vision_magic.ask_many("Which colour?", str(folder), progress=False, cache=False)
    assert rows == live[["source", "answer", "tokens", "error"]].to_dict("records")
    assert json.loads(out["KNOWN"]) == [{"id": job.batch_ids[0], "status": "completed"}]


@pytest.mark.allow_schema_errors  # not needed by the lines themselves; the failed line is a server verdict
def test_failed_and_expired_lines_are_rows_with_their_error(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    server.batch_outcome, server.expire_after = "expired", 4
    server.batch_line_error = lambda cid, body: (
        "Bad luck for this line." if colour_of(body) == "green" else None
    )
    job = submit(folder).wait(poll=0)
    assert job.status == "expired"
    df = job.result()
    assert list(df["answer"][[0, 2, 3]]) == ["red", "blue", "yellow"]
    assert df["error"][1] == "The server answered 400: Bad luck for this line."
    assert list(df["error"][4:]) == [EXPIRED, EXPIRED] and df["answer"][4:].isna().all()
    assert df["error"][[0, 2, 3]].isna().all()

    # the next run submits again only what has no answer: the failed line and the expired ones
    server.batch_outcome, server.batch_line_error = None, None
    again = submit(folder)
    assert not again.reattached and server.uploads == 2
    resent = uploaded_lines(server)[1]
    assert [colour_of(line["body"]) for line in resent] == ["green", "purple", "orange"]
    df = again.wait(poll=0).result()
    assert list(df["answer"]) == COLOURS and df["error"].isna().all()
    assert list(df["replayed"]) == [True, False, True, True, False, False]


def test_cancel(openai_env, folder):
    server = openai_env
    server.batch_steps = 1000  # it would stay validating
    job = submit(folder)
    job.cancel()
    assert job.status == "cancelling"
    server.batch_steps = 1
    df = job.wait(poll=0).result()
    assert job.status == "cancelled"
    assert list(df["error"]) == [CANCELLED] * 6 and df["answer"].isna().all()
    assert not server.batch_lines, "a cancelled batch answered lines"


def test_a_failed_batch_gives_every_row_the_server_s_reason(openai_env, folder):
    server = openai_env
    server.batch_outcome = "failed"
    df = submit(folder).wait(poll=0).result()
    assert df["error"].str.startswith("the batch failed (failed_on_request: ").all()


@pytest.mark.parametrize("limit", [{"batch_max_requests": 2}, {"batch_max_bytes": 1}])
def test_the_work_is_split_at_the_endpoint_s_limits(openai_env, folder, limit):
    server = openai_env
    server.reply = colour_of
    cfg = settings()
    if "batch_max_bytes" in limit:
        one = len(json.dumps(uploaded_or_line(folder)))
        limit = {"batch_max_bytes": int(one * 1.5)}  # room for one line per file
    saved = cfg.endpoints
    cfg.endpoints = {"test": {"base_url": server.base_url, **limit}}
    try:
        job = submit(folder)
        files = uploaded_lines(server)
        expected = 3 if "batch_max_requests" in limit else 6
        assert server.uploads == expected and len(job.batch_ids) == expected
        assert [colour_of(line["body"]) for f in files for line in f] == COLOURS
        assert all(len(f) <= 2 for f in files)
        df = job.wait(poll=0).result()
        assert list(df["answer"]) == COLOURS and job.counts["total"] == 6
    finally:
        cfg.endpoints = saved


def test_the_default_limits_are_module_constants(openai_env, folder, monkeypatch):
    monkeypatch.setattr("vision_magic.engine.endpoints.BATCH_MAX_REQUESTS", 4)
    job = submit(folder)
    assert [len(f) for f in uploaded_lines(openai_env)] == [4, 2] and len(job.batch_ids) == 2


def uploaded_or_line(folder) -> dict:
    """One request line as the batch would send it (the size of one line)."""
    from vision_magic.engine.batch_api import prepared_lines
    from vision_magic.engine.options import AskOptions

    item, body = next(prepared_lines("Which colour?", str(folder), AskOptions(), settings()))
    return {"custom_id": item.custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_an_unreadable_image_in_the_middle_is_a_row_with_an_error(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    (folder / "01_zbroken.png").write_bytes(b"not an image at all")
    df = submit(folder).wait(poll=0).result()
    assert len(df) == 7 and df["source"][2].endswith("01_zbroken.png")
    assert "01_zbroken.png: not an image" in df["error"][2] and pd.isna(df["answer"][2])
    assert [a for i, a in enumerate(df["answer"]) if i != 2] == COLOURS
    assert len(uploaded_lines(server)[0]) == 6, "the unreadable image went into the input file"
    live = vision_magic.ask_many("Which colour?", str(folder), progress=False, cache=False)
    assert df["error"][2] == live["error"][2], "the same error line as a live run"


def test_batches_lists_the_known_batches(openai_env, folder):
    job = submit(folder, label="colours of imgs/")
    table = vision_magic.batches()
    assert list(table.columns) == [
        "id",
        "created",
        "status",
        "completed",
        "failed",
        "total",
        "label",
        "endpoint",
    ]
    row = table[table["id"] == job.batch_ids[0]].iloc[0]
    assert row["status"] == "validating" and row["label"] == "colours of imgs/" and row["total"] == 6
    openai_env.store.retrieve(job.batch_ids[0])  # the server moves on; the table says what was last seen
    assert vision_magic.batches().iloc[-1]["status"] == "validating"
    assert vision_magic.batches(refresh=True).iloc[-1]["status"] == "finalizing"
    job.wait(poll=0)
    row = vision_magic.batches().iloc[-1]
    assert (row["status"], row["completed"], row["failed"]) == ("completed", 6, 0)


def test_wait_gives_up_after_its_timeout_and_the_batch_goes_on(openai_env, folder):
    openai_env.batch_steps = 1000
    job = submit(folder)
    with pytest.raises(vision_magic.VisionMagicError, match="still validating after 0.05 s"):
        job.wait(timeout=0.05, poll=0.01)
    openai_env.batch_steps = 1
    assert job.wait(poll=0).status == "completed"


def test_a_batch_handle_is_not_a_live_question(openai_env, folder):
    with pytest.raises(vision_magic.VisionMagicError, match="ask_many"):
        vision_magic.ask("Which colour?", str(folder / "00_red.png"), display=False, via="batch")
    with pytest.raises(vision_magic.VisionMagicError, match="'live' or 'batch'"):
        vision_magic.estimate(str(folder / "00_red.png"), via="post")


def test_estimate_at_the_batch_price_is_half(folder):
    red = Image.new("RGB", (1024, 1024), "red")
    live = vision_magic.estimate(red, model="gpt-4o", prompt="Which colour?")
    batch = vision_magic.estimate(red, model="gpt-4o", prompt="Which colour?", via="batch")
    assert batch.input_tokens == live.input_tokens
    assert batch.cost == pytest.approx(live.cost / 2)
    assert "(Batch API price)" in batch.summary() and "(Batch API price)" not in live.summary()


def test_magic_each_batch_shows_the_job_and_cost_batch_shows_half(shell, openai_env, folder):
    server = openai_env
    server.reply = colour_of
    shell.run_cell(f"%%ask_image {folder} --each --batch --out job\nWhich colour?").raise_error()
    job = shell.user_ns["job"]
    assert isinstance(job, BatchJob) and server.uploads == 1
    assert shell.displays.last()["text/plain"] == "<BatchJob 1 batch, validating: 0/6 done, 0 failed>"
    assert "<progress value='0' max='6'>" in job._repr_html_()
    job.wait(poll=0, progress=False)
    shell.run_cell(f"%%ask_image {folder} --each --batch --out job\nWhich colour?").raise_error()
    assert server.uploads == 1, "re-running the cell submitted again"
    assert shell.user_ns["job"].reattached
    table, footer = shell.displays.bundles[-2:]
    assert "[6 rows x 6 columns]" in table["text/plain"], "a finished job's cell shows its table"
    assert "reattached, completed: 6/6 done, 0 failed · " in footer["text/plain"]
    assert "(Batch API price)" in footer["text/plain"], "the footer gives the real cost"
    shell.run_cell(f"%%ask_image {folder}/00_red.png --cost --batch -m gpt-4o\nWhich colour?").raise_error()
    assert "(Batch API price)" in shell.displays.text()
    result = shell.run_cell(f"%%ask_image {folder}/00_red.png --batch\nWhich colour?")
    assert "--each" in str(result.error_in_exec)


def test_batch_file_and_read_batch_output_round_trip(openai_env, folder, tmp_path):
    """batch_file's lines are the ones ask_many(via="batch") uploads; an output file reads into its table."""
    import openai

    server = openai_env
    server.reply = colour_of
    path = tmp_path / "requests.jsonl"
    written = vision_magic.batch_file("Which colour?", str(folder), path, model="gpt-4o")
    assert written.requests == 6 and written.nbytes == path.stat().st_size
    job = submit(folder, model="gpt-4o")
    assert path.read_bytes().splitlines() == [
        json.dumps(line, ensure_ascii=False).encode() for line in uploaded_lines(server)[0]
    ]
    expected = job.wait(poll=0).result()
    # the output file as the Batch API gives it
    client = openai.OpenAI(base_url=server.base_url, api_key=FAKE_KEY)
    out = tmp_path / "results.jsonl"
    out.write_bytes(client.files.content(job.states[job.batch_ids[0]].output_file_id).content)
    df = vision_magic.read_batch_output(out, str(folder))
    for column in ("source", "answer", "tokens", "cost", "error"):
        assert list(df[column]) == list(expected[column]), column
    # vllm run-batch's output: the same lines with its own ids; one missing image
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for line in lines:
        line["id"] = "vllm-" + line["id"]
        body = line["response"]["body"]
        body["model"] = "Qwen/Qwen2.5-VL-7B-Instruct"
        for name in ("service_tier", "system_fingerprint"):  # an engine of its own leaves fields out
            body.pop(name)
        body["choices"][0]["message"].pop("refusal")
        body["choices"][0].pop("logprobs")
    out.write_text("".join(json.dumps(line) + "\n" for line in lines[:-1]))
    df = vision_magic.read_batch_output(out, str(folder))
    assert list(df["answer"][:5]) == COLOURS[:5] and df["cost"][:5].isna().all(), "no price for a local model"
    assert df["error"][5] == "no line for this image in the output file(s)"
    by_id = vision_magic.read_batch_output(out)
    assert list(by_id["source"]) == [line["custom_id"] for line in lines[:-1]]


def test_a_server_without_a_batch_api_is_one_line(openai_env, folder, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{openai_env.root_url}/no-batches/v1")
    with pytest.raises(vision_magic.errors.APIError, match=r"^The server answered 404: .*no Batch API") as e:
        submit(folder)
    assert "\n" not in str(e.value) and FAKE_KEY not in str(e.value)
    assert vision_magic.batches().empty, "a batch that was never created is remembered"


def test_a_failed_upload_part_way_cancels_what_it_created_and_remembers_nothing(openai_env, folder):
    server = openai_env
    cfg = settings()
    saved = cfg.endpoints, cfg.max_retries
    cfg.endpoints = {"test": {"base_url": server.base_url, "batch_max_requests": 2}}
    cfg.max_retries = 0
    original = server.store.add_file
    calls = []

    def add_file(filename, purpose, content):
        calls.append(filename)
        if len(calls) >= 2:
            raise RuntimeError("disk full")  # the test server hangs up on the second upload
        return original(filename, purpose, content)

    server.store.add_file = add_file
    try:
        with pytest.raises(vision_magic.errors.APIError, match="^Could not reach"):
            submit(folder)
    finally:
        server.store.add_file = original
        cfg.endpoints, cfg.max_retries = saved
    (created,) = server.store.batches.values()
    assert created.obj["status"] == "cancelling", "the batch created before the failure still runs"
    assert vision_magic.batches().empty


def test_refresh_submits_again_and_no_cache_stores_no_answers(openai_env, folder):
    server = openai_env
    server.reply = colour_of
    first = submit(folder, cache=False).wait(poll=0)
    assert list(first.result()["answer"]) == COLOURS
    assert vision_magic.cache.stats()["entries"] == 0, "cache=False stored answers"
    assert submit(folder, cache=False).reattached and server.uploads == 1
    again = submit(folder, refresh=True)
    assert not again.reattached and server.uploads == 2 and len(uploaded_lines(server)[1]) == 6
    assert list(again.wait(poll=0).result()["replayed"]) == [False] * 6
    assert vision_magic.cache.stats()["entries"] == 6, "refresh=True stores the new answers"


def test_ask_many_async_submits_too(openai_env, folder):
    import asyncio

    from vision_magic.engine.batch import ask_many_async

    job = asyncio.run(ask_many_async("Which colour?", str(folder), via="batch", progress=False))
    assert isinstance(job, BatchJob) and openai_env.uploads == 1


def test_a_restarted_kernel_reattaches_the_cell_and_the_stop_button_stops_only_the_waiting(
    openai_env, folder
):
    """Through real kernels: the cell submits; the stop button during job.wait() is one line and the batch
    goes on; after a restart the same cell reattaches (nothing uploaded) and gives the live answers."""
    import time

    from kernel_helpers import Kernel, errors_of

    server = openai_env
    server.reply = colour_of
    server.batch_steps = 10_000  # it stays validating while the first kernel waits
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    cell = f"%%ask_image {folder.name} --each --batch --out job\nWhich colour?"

    def polls() -> int:
        return sum(1 for r in server.requests if r.method == "GET" and r.path.startswith("/v1/batches/"))

    with Kernel(folder.parent, env) as kernel:
        kernel.run("%load_ext vision_magic")
        assert not errors_of(kernel.run(cell))
        assert server.uploads == 1
        msg_id = kernel.execute("job.wait(poll=0.05)")
        deadline = time.monotonic() + 30
        while polls() < 3:
            assert time.monotonic() < deadline, "the kernel never polled"
            time.sleep(0.02)
        kernel.interrupt()
        [error] = errors_of(kernel.collect(msg_id, timeout=30))
        assert len(error["traceback"]) == 1, error["traceback"]
        assert "Stopped waiting; the batch goes on at the server: run the cell again" in error["traceback"][0]
    assert [b.obj["status"] for b in server.store.batches.values()] == ["validating"], "the batch was touched"
    server.batch_steps = 1
    with Kernel(folder.parent, env) as kernel:  # a restart: a new process, the same replay cache
        kernel.run("%load_ext vision_magic")
        assert not errors_of(kernel.run(cell))
        out = kernel.printed(
            "print(job.reattached)\ndf = job.wait(poll=0).result()\nprint(list(df['answer']))"
        )
    assert out.split("\n", 1) == ["True", f"{COLOURS}\n"]
    assert server.uploads == 1 and server.batches_created == 1, "the restarted kernel submitted again"


def test_a_server_known_to_have_no_batch_api_is_refused_before_any_image_is_prepared(
    openai_env, folder, monkeypatch
):
    no_preparing(monkeypatch)
    monkeypatch.setattr(settings(), "server", "vllm")
    with pytest.raises(
        vision_magic.VisionMagicError, match=r"^vllm at http://127\.0\.0\.1:\d+/v1 has no Batch API"
    ):
        submit(folder)
    assert openai_env.requests == [] and vision_magic.batches().empty
