"""Issue 11, items 3 and 4: the saved notebook records what was sent (output metadata ``vision_magic`` on
every answer, a collapsed "sent" line in the footer), and a lesson replays without a key or a server
(``vision_magic.replay_from``, ``replay_only``, ``cache.export`` / ``cache.load``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
from pathlib import Path

import nbformat
import pytest
from kernel_helpers import run_notebook
from PIL import Image
from server_fixtures import FAKE_KEY

import vision_magic
from vision_magic import cache
from vision_magic.engine.record import public_endpoint, request_key_of
from vision_magic.engine.session import settings
from vision_magic.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "version",
    "model",
    "endpoint",
    "api",
    "detail",
    "params",
    "prompt",
    "images",
    "usage",
    "cost_usd",
    "elapsed_s",
    "finish_reason",
    "replayed",
    "request_key",
    "answer",
    "created",
}
IMAGE_FIELDS = {"label", "sha256", "mime", "width", "height", "bytes", "tokens"}
USERINFO_PASSWORD = "t3acherPassw0rd"

LESSON = [
    (
        "import vision_magic\n"
        "from pathlib import Path\n"
        "from PIL import Image\n"
        "%load_ext vision_magic\n"
        "Path('imgs').mkdir(exist_ok=True)\n"
        "Image.new('RGB', (64, 48), (200, 30, 30)).save('red.png')\n"
        "Image.new('RGB', (48, 64), (30, 30, 200)).save('blue.png')\n"
        "for i, c in enumerate(['red', 'green']):\n"
        "    Image.new('RGB', (40 + i, 30), c).save(f'imgs/{i}_{c}.png')"
    ),
    "%%ask_image red.png blue.png -d low\nWhich colours are these two images?",
    "%%ask_image red.png --no-stream --max-tokens 200 --temperature 0.2 --seed 7 --system 'Be brief.'\nWhat colour?",
    "%%ask_image red.png blue.png -d low\nWhich colours are these two images?",
    "%%ask_image red.png --dry-run\nWhat would this cost?",
    "%%ask_image --each imgs/*.png\nWhat colour is it?",
    (
        "panel = vision_magic.ask_panel('red.png', prompt='Which colour does the panel see?', detail='low')\n"
        "panel.ask(wait=True)\n"
        "panel"
    ),
]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """One cache file shared by this process and the notebook kernels it starts (through the environment)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(folder))
    cfg = settings()
    saved = (cfg.cache, cfg.cache_path, cfg.replay_only)
    cfg.cache, cfg.cache_path, cfg.replay_only = True, "", False
    yield folder
    cfg.cache, cfg.cache_path, cfg.replay_only = saved
    cache.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there once the socket is closed


def execute(nb, workdir: Path, env: dict[str, str], monkeypatch, allow_errors: bool = False):
    """Run ``nb`` in a fresh kernel in ``workdir`` with exactly ``env`` as the OpenAI/vision_magic settings."""
    return run_notebook(nb, workdir, env, monkeypatch, allow_errors=allow_errors)


def answer_outputs(nb) -> list[tuple[int, dict]]:
    """(cell index, output) of every output a vision_magic answer, dry run or table was drawn in, the panel's
    Output widget included (cell index -1)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            md, html = data.get("text/markdown", ""), data.get("text/html", "")
            if "You asked:" in md or "Dry run: nothing was sent" in html or "dataframe" in html:
                found.append((i, o))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model in state.get("state", {}).values():
        for o in model.get("state", {}).get("outputs", []) or []:
            if "You asked:" in o.get("data", {}).get("text/markdown", ""):
                found.append((-1, o))
    return found


def sent_sha256(request, i: int = 0) -> str:
    """SHA-256 of the bytes of the ``i``-th image the server received in ``request``."""
    parts = [p for p in request.body["messages"][-1]["content"] if p.get("type") == "image_url"]
    payload = parts[i]["image_url"]["url"].partition(",")[2]
    return hashlib.sha256(base64.b64decode(payload)).hexdigest()


def records_of(output: dict) -> list[dict]:
    meta = output.get("metadata", {}).get("vision_magic")
    assert meta, f"an answer output without its record: {str(output)[:300]}"
    return meta.get("answers", [meta])


def test_a_lesson_records_every_answer_then_replays_without_a_key(tmp_path, cache_dir, server, monkeypatch):
    teacher_url = server.base_url.replace("://", f"://teacher:{USERINFO_PASSWORD}@")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in LESSON])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    execute(nb, tmp_path, {"OPENAI_BASE_URL": teacher_url, "OPENAI_API_KEY": FAKE_KEY}, monkeypatch)
    sent = len(server.chat_requests)
    assert sent == 5  # two images in one, --no-stream, (the replayed one), two --each rows, the panel
    saved = tmp_path / "lesson.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text(encoding="utf-8")

    outputs = answer_outputs(nb)
    assert sorted({i for i, _ in outputs}) == [-1, 1, 2, 3, 4, 5]  # the panel (cell 6) draws in its widget
    records = [r for _, o in outputs for r in records_of(o)]
    assert len(records) == 7  # four cells' answers (one a dry run), two table rows, the panel's
    for r in records:
        assert set(r) >= FIELDS, FIELDS - set(r)
        assert r["endpoint"] == public_endpoint(server.base_url) == server.base_url.rstrip("/")
        assert all(set(img) >= IMAGE_FIELDS for img in r["images"])
    by_cell = {i: records_of(o) for i, o in outputs}
    two = by_cell[1][0]
    assert [img["label"] for img in two["images"]] == ["red.png", "blue.png"]
    assert two["images"][1]["sha256"] == sent_sha256(server.chat_requests[0], 1)
    assert (two["images"][0]["width"], two["images"][0]["height"]) == (64, 48)
    assert two["detail"] == "low" and two["replayed"] is False and two["elapsed_s"] > 0
    assert two["usage"]["input_tokens"] > 0 and two["cost_usd"] > 0 and two["finish_reason"] == "stop"
    assert two["prompt"] == "Which colours are these two images?" and "You asked:" in two["answer"]
    no_stream = by_cell[2][0]
    assert no_stream["params"] == {
        "max_tokens": 200,
        "temperature": 0.2,
        "seed": 7,
        "system": "Be brief.",
        "json": False,
    }
    assert by_cell[3][0]["replayed"] is True and by_cell[3][0]["request_key"] == two["request_key"]
    assert by_cell[4][0]["dry_run"] is True and by_cell[4][0]["usage"] is None
    assert sorted(r["images"][0]["label"] for r in by_cell[5]) == ["imgs/0_red.png", "imgs/1_green.png"]
    assert by_cell[-1][0]["prompt"] == "Which colour does the panel see?"

    # the collapsed "sent" line, in the Markdown every static renderer shows
    md = next(o["data"]["text/markdown"] for i, o in outputs if i == 1)
    sent_line = re.search(
        r"<details><summary><sub>sent: 2 images, ([\d,]+) tokens</sub></summary>(.*?)</details>", md
    )
    assert sent_line, md
    assert int(sent_line.group(1).replace(",", "")) == two["usage"]["input_tokens"]
    assert "red.png: image/png 64×48" in sent_line.group(
        2
    ) and "blue.png: image/png 48×64" in sent_line.group(2)

    # nothing secret anywhere in the saved file: no key, no password
    assert FAKE_KEY not in text and USERINFO_PASSWORD not in text and "teacher@" not in text
    # no image bytes in any answer (its Markdown, text and record) nor in any cell output: the only base64
    # in the file is the dry run's JPEG thumbnails and the panel's thumbnail widgets (what they show)
    payloads = [
        part["image_url"]["url"].partition(",")[2][:200]
        for request in server.chat_requests
        for part in request.body["messages"][-1]["content"]
        if part.get("type") == "image_url"
    ]
    answers = json.dumps([o for _, o in outputs if "Dry run" not in json.dumps(o)])
    assert "base64" not in answers and not re.search(r"[A-Za-z0-9+/]{120,}", answers)
    cells = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert not [p for p in payloads if p in cells]
    blobs = re.findall(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]{40,}", cells)
    assert blobs and all(b.startswith("data:image/jpeg;base64,") for b in blobs)
    assert all("base64" not in json.dumps(r) for r in records)

    # a student: a fresh cache, no key, no server, replay_only; plus one cell whose prompt was changed
    cache.clear()
    assert cache.stats()["entries"] == 0
    assert vision_magic.replay_from(saved) == 5  # dry runs are not answers; the replayed one is a duplicate
    assert cache.stats()["entries"] == 5
    student = nbformat.read(saved, as_version=4)
    student.cells.append(
        nbformat.v4.new_code_cell("%%ask_image red.png blue.png -d low\nWhich colours are these images?")
    )
    execute(student, tmp_path, {"VISION_MAGIC_REPLAY_ONLY": "1"}, monkeypatch, allow_errors=True)
    assert len(server.chat_requests) == sent
    errors = [
        (i, o) for i, c in enumerate(student.cells) for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert [i for i, _ in errors] == [len(LESSON)], errors
    assert errors[0][1]["evalue"] == (
        "no recorded answer for this cell: it differs from the recording in prompt "
        "(replay_only is on, so nothing was sent)"
    )
    replayed = [r for _, o in answer_outputs(student) for r in records_of(o) if not r.get("dry_run")]
    assert len(replayed) == 6 and all(r["replayed"] for r in replayed)
    assert {r["answer"] for r in replayed} == {r["answer"] for r in records if not r.get("dry_run")}
    assert all(r["endpoint"] == "https://api.openai.com/v1" for r in replayed)  # the student's default


def test_the_replay_key_is_the_same_for_every_endpoint(openai_env, cache_dir, tmp_path):
    """The key hashes what was asked: the token-limit field's name, a stripped detail and the base URL do not
    count; the prompt, an image's bytes, the detail asked and the model do."""
    server = openai_env
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(red)
    first = vision_magic.ask("endpoint: colour?", red, display=False, detail="low")
    cfg = settings()
    saved = (cfg.endpoints, cfg.base_url)
    try:
        cfg.endpoints = {"plain": {"base_url": server.base_url, "detail": False}}
        stripped = vision_magic.ask("endpoint: colour?", red, display=False, detail="low")
        cfg.base_url = server.base_url.replace("127.0.0.1", "localhost")
        elsewhere = vision_magic.ask("endpoint: colour?", red, display=False, detail="low")
    finally:
        cfg.endpoints, cfg.base_url = saved
    assert len(server.chat_requests) == 1
    assert stripped.replayed and elsewhere.replayed and stripped.text == elsewhere.text == first.text
    assert first.record["request_key"] == stripped.record["request_key"] == elsewhere.record["request_key"]
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    limits = [
        request_key_of({**body, field: 9}, ["low"]) for field in ("max_tokens", "max_completion_tokens")
    ]
    assert limits[0] == limits[1] != request_key_of({**body, "max_tokens": 10}, ["low"])
    assert request_key_of(body, ["low"]) != request_key_of(body, ["high"])
    assert request_key_of(body, []) != request_key_of({**body, "model": "n"}, [])


def test_export_and_load_move_answers_to_a_machine_with_no_key(openai_env, cache_dir, tmp_path, monkeypatch):
    server = openai_env
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (250, 10, 10)).save(red)
    asked = vision_magic.ask("export: what colour?", red, display=False)
    exported = tmp_path / "answers.jsonl"
    assert cache.export(exported) == 1
    text = exported.read_text(encoding="utf-8")
    payload = base64.b64encode(asked.images[0].data).decode()
    assert FAKE_KEY not in text and payload[:100] not in text and "base64" not in text
    (row,) = [json.loads(line) for line in text.splitlines()]
    assert row["key"] == asked.record["request_key"] and row["text"] == asked.text
    assert row["record"]["images"][0]["sha256"] == sent_sha256(server.chat_requests[0])

    # another machine: its own empty cache, no key, an endpoint where nothing listens
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    assert cache.stats()["entries"] == 0
    assert cache.load(exported) == 1
    again = vision_magic.ask("export: what colour?", red, display=False)
    assert again.replayed and again.text == asked.text and again.usage == asked.usage
    assert len(server.chat_requests) == 1


def test_replay_only_names_what_differs(shell, openai_env, cache_dir, tmp_path, monkeypatch):
    server = openai_env
    Image.new("RGB", (40, 30), "red").save(tmp_path / "t_red.png")
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "t_blue.png")
    monkeypatch.chdir(tmp_path)
    assert shell.run_cell("%%ask_image t_red.png -d low\nreplay only: what colour?").success
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    shell.run_line_magic("config", "VisionMagic.replay_only = True")

    def line_of(cell: str) -> str:
        result = shell.run_cell(cell)
        assert not result.success
        return str(result.error_in_exec)

    tail = " (replay_only is on, so nothing was sent)"
    head = "no recorded answer for this cell: it differs from the recording in "
    assert shell.run_cell("%%ask_image t_red.png -d low\nreplay only: what colour?").success
    assert vision_magic.last_answer.replayed
    assert line_of("%%ask_image t_red.png -d low\nreplay only: which colour?") == head + "prompt" + tail
    assert line_of("%%ask_image t_blue.png -d low\nreplay only: what colour?") == (
        head + "image 1's sha256 (t_blue.png)" + tail
    )
    assert line_of("%%ask_image t_red.png -d high\nreplay only: what colour?") == head + "detail" + tail
    assert line_of("%%ask_image t_red.png -d low -m gpt-4o-mini\nreplay only: what colour?") == (
        head + "model" + tail
    )
    assert line_of("%%ask_image t_red.png -d low --no-cache\nreplay only: what colour?").startswith(
        "no recorded answer for this cell: the replay cache is off for it (--no-cache)"
    )
    assert line_of("%%ask_image t_red.png t_blue.png -m other -d high --seed 1\nSomething else entirely") == (
        "no recorded answer for this cell: none of the 1 recordings is near it" + tail
    )
    assert len(server.chat_requests) == 1
    cache.clear()
    assert "no recordings are loaded" in line_of("%%ask_image t_red.png -d low\nreplay only: what colour?")


def test_replay_from_bad_inputs_are_one_line_and_lose_nothing(
    shell, openai_env, cache_dir, tmp_path, monkeypatch
):
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(red)
    vision_magic.ask("bad inputs: colour?", red, display=False)
    assert cache.stats()["entries"] == 1
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(good, tmp_path / "plain.ipynb")
    dry = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%ask_image red.png --dry-run\nQ")])
    dry.cells[0].outputs = [
        nbformat.v4.new_output(
            "display_data",
            {"text/plain": "Dry run"},
            metadata={"vision_magic": {"version": 1, "request_key": "k", "answer": "", "dry_run": True}},
        )
    ]
    nbformat.write(dry, tmp_path / "dry.ipynb")
    whole = json.dumps(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")]))
    (tmp_path / "torn.ipynb").write_text(whole[: len(whole) // 2], encoding="utf-8")
    (tmp_path / "binary.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (tmp_path / "list.ipynb").write_text("[1, 2]", encoding="utf-8")
    cases = {
        "missing.ipynb": "missing.ipynb: no such file",
        "torn.ipynb": "torn.ipynb is not a readable notebook (",
        "binary.ipynb": "binary.ipynb is not a readable notebook (",
        "list.ipynb": "list.ipynb is not a notebook (it has no cells): nothing was loaded",
        "plain.ipynb": "plain.ipynb holds no recorded answers (no answer outputs with a record)",
        "dry.ipynb": "dry.ipynb holds no recorded answers (only dry runs or unfinished answers)",
    }
    monkeypatch.chdir(tmp_path)
    for name, start in cases.items():
        with pytest.raises(ConfigError) as err:
            vision_magic.replay_from(name)
        assert str(err.value).startswith(start) and "\n" not in str(err.value), str(err.value)
        result = shell.run_cell(f"%%ask_image --replay-from {name}\n\n")  # IPython refuses an empty body
        assert str(result.error_in_exec) == str(err.value)
    assert cache.stats()["entries"] == 1
    again = vision_magic.ask("bad inputs: colour?", red, display=False)
    assert again.replayed
    result = shell.run_cell("%%ask_image --replay-from plain.ipynb\nA question too")
    assert "asks nothing: give it no sources or question" in str(result.error_in_exec)


def test_the_magic_loads_a_lesson(shell, openai_env, cache_dir, tmp_path, monkeypatch, capsys):
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(red)
    answer = vision_magic.ask("magic load: colour?", red, display=False)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("%%ask_image red.png\nmagic load: colour?")]
    )
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "display_data", {"text/markdown": answer.markdown()}, metadata={"vision_magic": answer.record}
        )
    ]
    nbformat.write(nb, tmp_path / "lesson one.ipynb")
    cache.clear()
    monkeypatch.chdir(tmp_path)
    assert shell.run_cell('%%ask_image --replay-from "lesson one.ipynb"\n\n').success
    assert "Loaded 1 recorded answer from lesson one.ipynb" in capsys.readouterr().out
    assert cache.stats()["entries"] == 1
    assert vision_magic.ask("magic load: colour?", red, display=False).replayed


def test_the_teaching_notebook_replays_for_a_student_without_a_key(tmp_path, cache_dir, server, monkeypatch):
    """notebooks/teaching.ipynb run once against the server and saved; then, in a fresh kernel with an empty
    cache filled by replay_from, no key, no server and VISION_MAGIC_REPLAY_ONLY=1: every answer is replayed."""
    nb = nbformat.read(ROOT / "notebooks" / "teaching.ipynb", as_version=4)
    execute(nb, tmp_path, {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}, monkeypatch)
    sent = len(server.chat_requests)
    taught = [r for _, o in answer_outputs(nb) for r in records_of(o)]
    assert sent == 2 and len(taught) == 2 and not any(r["replayed"] for r in taught)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "'endpoint': 'http://127.0.0.1:" in printed and "1 answers in lesson-answers.jsonl" not in printed
    assert "2 answers in lesson-answers.jsonl" in printed
    saved = tmp_path / "teaching.ipynb"
    nbformat.write(nb, saved)

    cache.clear()
    assert vision_magic.replay_from(saved) == 2
    student = nbformat.read(saved, as_version=4)
    execute(student, tmp_path, {"VISION_MAGIC_REPLAY_ONLY": "1"}, monkeypatch)
    assert len(server.chat_requests) == sent
    assert not [o for c in student.cells for o in c.get("outputs", []) if o.output_type == "error"]
    replayed = [r for _, o in answer_outputs(student) for r in records_of(o)]
    assert len(replayed) == 2 and all(r["replayed"] for r in replayed)
    assert sorted(r["answer"] for r in replayed) == sorted(r["answer"] for r in taught)
    # the chart went to the test server as PNG, and would go to OpenAI (the student's default) as lossless
    # WEBP: other bytes, the same pixels, the same key
    mimes = [{i["mime"] for r in records for i in r["images"]} for records in (taught, replayed)]
    assert "image/webp" not in mimes[0] and "image/webp" in mimes[1]
    printed = "".join(o.get("text", "") for c in student.cells for o in c.get("outputs", []))
    assert "REPLAY ONLY" in printed and "'replayed': True" in printed
