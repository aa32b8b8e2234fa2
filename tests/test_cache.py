"""Issue 5, the replay cache: identical questions are replayed from SQLite (marked, nothing sent), across
processes ("kernel restarts"), never storing the key; --refresh, --no-cache, stats and clear."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import vision_magic
from vision_magic import cache
from vision_magic.engine.session import settings

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-test-VMFAKEKEY-0123456789abcdef"


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test gets its own cache file under tmp_path (via the env var the package supports)."""
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = settings()
    saved = (cfg.cache, cfg.cache_path, cfg.stream)
    cfg.cache, cfg.cache_path = True, ""
    yield tmp_path / "cache" / cache.FILE_NAME
    cfg.cache, cfg.cache_path, cfg.stream = saved
    cache.close()


@pytest.fixture
def red(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    return path


def test_identical_question_is_replayed_and_nothing_sent(openai_env, red, cache_in_tmp):
    server = openai_env
    first = vision_magic.ask("cache: what colour?", red, display=False)
    assert len(server.chat_requests) == 1 and not first.replayed
    second = vision_magic.ask("cache: what colour?", red, display=False)
    assert len(server.chat_requests) == 1, "the replay sent a request"
    assert second.replayed and second.text == first.text and second.usage == first.usage
    assert second.cost == first.cost and second.model == first.model
    assert "replayed from cache" in second.footer()
    assert cache_in_tmp.exists()


def test_any_change_of_the_request_misses(openai_env, red, tmp_path):
    server = openai_env
    vision_magic.ask("cache: vary", red, display=False)
    vision_magic.ask("cache: vary ", red, display=False)  # prompt is stripped: same request
    assert len(server.chat_requests) == 1
    vision_magic.ask("cache: vary", red, display=False, detail="low")
    vision_magic.ask("cache: vary", red, display=False, model="gpt-4o-mini")
    vision_magic.ask("cache: vary", red, display=False, temperature=0.5)
    blue = tmp_path / "blue.png"
    Image.new("RGB", (40, 30), (0, 0, 255)).save(blue)
    vision_magic.ask("cache: vary", blue, display=False)  # same size, other pixels
    assert len(server.chat_requests) == 5


def test_streaming_and_not_streaming_share_answers(openai_env, red):
    server = openai_env
    vision_magic.ask("cache: transport", red, display=False, stream=True)
    again = vision_magic.ask("cache: transport", red, display=False, stream=False)
    assert again.replayed and len(server.chat_requests) == 1


def test_refresh_asks_again_and_no_cache_bypasses(openai_env, red):
    server = openai_env
    server.reply = lambda body: f"answer #{len(server.chat_requests)}"
    a = vision_magic.ask("cache: refresh", red, display=False)
    b = vision_magic.ask("cache: refresh", red, display=False, refresh=True)
    assert len(server.chat_requests) == 2 and not b.replayed and b.text != a.text
    c = vision_magic.ask("cache: refresh", red, display=False)
    assert c.replayed and c.text == b.text, "refresh stores the new answer"
    d = vision_magic.ask("cache: refresh", red, display=False, cache=False)
    assert len(server.chat_requests) == 3 and not d.replayed
    assert vision_magic.ask("cache: refresh", red, display=False).text == b.text, "--no-cache stored nothing"


def test_incomplete_answers_are_not_stored(openai_env, red):
    server = openai_env
    server.reply = "word " * 40
    server.add_fault("drop", after=2)
    broken = vision_magic.ask("cache: dropped", red, display=False)
    assert broken.incomplete
    again = vision_magic.ask("cache: dropped", red, display=False)
    assert not again.replayed and not again.incomplete and len(server.chat_requests) == 2


def test_the_api_key_is_never_stored(openai_env, red, cache_in_tmp):
    vision_magic.ask("cache: key", red, display=False)
    cache.close()  # checkpoint the WAL into the file
    blobs = b"".join(p.read_bytes() for p in cache_in_tmp.parent.iterdir())
    assert FAKE_KEY.encode() not in blobs and b"VMFAKEKEY" not in blobs
    rows = sqlite3.connect(cache_in_tmp).execute("SELECT * FROM answers").fetchall()
    assert len(rows) == 1 and all(FAKE_KEY not in str(v) for v in rows[0])


def test_stats_and_clear(openai_env, red, cache_in_tmp):
    vision_magic.ask("cache: stats 1", red, display=False)
    vision_magic.ask("cache: stats 2", red, display=False)
    vision_magic.ask("cache: stats 1", red, display=False)
    s = vision_magic.cache.stats()
    assert s["path"] == str(cache_in_tmp) and s["entries"] == 2 and s["bytes"] > 0
    assert s["hits"] >= 1 and s["misses"] >= 2
    assert vision_magic.cache.clear() == 2
    assert vision_magic.cache.stats()["entries"] == 0
    assert not vision_magic.ask("cache: stats 1", red, display=False).replayed


def test_cache_path_trait_moves_the_file(openai_env, red, tmp_path):
    target = tmp_path / "elsewhere" / "answers.sqlite3"
    settings().cache_path = str(target)
    vision_magic.ask("cache: path", red, display=False)
    assert target.exists() and vision_magic.cache.stats()["entries"] == 1


def test_replay_needs_no_key(openai_env, red, monkeypatch):
    vision_magic.ask("cache: keyless", red, display=False)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setattr(settings(), "base_url", openai_env.base_url)
    assert vision_magic.ask("cache: keyless", red, display=False).replayed


def _run_python(code: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_cache_hit_across_a_kernel_restart(openai_env, red, cache_in_tmp):
    """A fresh process (a restarted kernel) with the same cache file sends nothing."""
    server = openai_env
    first = vision_magic.ask("cache: restart", red, display=False)
    assert len(server.chat_requests) == 1
    code = f"""
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic("load_ext", "vision_magic")
        r = ip.run_cell('%%ask_image {red} --out ans\\ncache: restart')
        assert r.error_in_exec is None, r.error_in_exec
        ans = ip.user_ns["ans"]
        print("REPLAYED", ans.replayed)
        print("TEXT", ans.text.splitlines()[0])
    """
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "VISION_MAGIC_CACHE_DIR": str(cache_in_tmp.parent),
    }
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REPLAYED True" in proc.stdout
    assert f"TEXT {first.text.splitlines()[0]}" in proc.stdout
    assert len(server.chat_requests) == 1, "the restarted kernel sent a request"


def test_several_processes_write_at_once(cache_in_tmp):
    """Two kernels storing answers at the same time: WAL + busy timeout, nothing lost."""
    code = """
        import sys
        from vision_magic import cache
        from vision_magic.engine.answer import Answer
        tag = sys.argv[1] if len(sys.argv) > 1 else ""
        for i in range(60):
            cache.put(f"{tag}-{i}", Answer(text=f"{tag} {i}", model="m"))
            assert cache.get(f"{tag}-{i}")["text"] == f"{tag} {i}"
        print("ok")
    """
    env = {**os.environ, "VISION_MAGIC_CACHE_DIR": str(cache_in_tmp.parent), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), tag], env=env, stdout=subprocess.PIPE, text=True
        )
        for tag in ("a", "b", "c")
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0] and all("ok" in o for o in outs)
    assert cache.stats()["entries"] == 180
    mode = sqlite3.connect(cache_in_tmp).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_magic_rerun_shows_the_replayed_answer_at_once(shell, openai_env, red):
    server = openai_env
    cell = f"%%ask_image {red}\ncache: magic"
    assert shell.run_cell(cell).error_in_exec is None
    n = len(shell.displays.events)
    assert shell.run_cell(cell).error_in_exec is None
    assert len(server.chat_requests) == 1
    new = shell.displays.events[n:]
    assert len(new) == 1 and new[0]["update"] is False, "one finished display, no waiting placeholder"
    assert "replayed from cache, nothing sent" in new[0]["data"]["text/plain"]
    assert shell.run_cell(cell + " ").error_in_exec is None  # trailing space stripped: still cached
    assert len(server.chat_requests) == 1
    assert shell.run_cell(cell.replace("\n", " --refresh\n")).error_in_exec is None
    assert shell.run_cell(cell.replace("\n", " --no-cache\n")).error_in_exec is None
    assert len(server.chat_requests) == 3


def test_a_changed_file_is_prepared_and_sent_again(openai_env, red):
    server = openai_env
    vision_magic.ask("cache: edited file", red, display=False)
    assert vision_magic.ask("cache: edited file", red, display=False).replayed
    Image.new("RGB", (40, 30), (0, 255, 0)).save(red)  # same name and size, new pixels
    again = vision_magic.ask("cache: edited file", red, display=False)
    assert not again.replayed and len(server.chat_requests) == 2
    assert server.last.images[0]["bytes"] == again.images[0].nbytes


def test_a_kernel_killed_mid_write_leaves_the_cache_intact(cache_in_tmp):
    """SIGKILL inside an open write transaction: the committed answers survive, the torn one is absent."""
    code = """
        import os, signal
        from vision_magic import cache
        from vision_magic.engine.answer import Answer
        cache.put("kept", Answer(text="kept answer", model="m"))
        conn = cache._connect(cache.path())
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO answers (key, created, model, text) VALUES ('torn', 0, 'm', 'half')")
        os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = _run_python(code, {"VISION_MAGIC_CACHE_DIR": str(cache_in_tmp.parent)})
    assert proc.returncode == -9
    assert cache.get("kept")["text"] == "kept answer"
    assert cache.get("torn") is None
    assert sqlite3.connect(cache_in_tmp).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache.put("after", vision_magic.Answer(text="later", model="m"))
    assert cache.stats()["entries"] == 2


def test_export_and_load_carry_answers_to_another_store(openai_env, red, tmp_path):
    """The store is storage only: export to JSON Lines, clear, load, and the question is replayed again."""
    server = openai_env
    first = vision_magic.ask("cache: export me", red, display=False)
    exported = tmp_path / "answers.jsonl"
    assert cache.export(exported) == 1
    assert FAKE_KEY not in exported.read_text()
    assert cache.clear() == 1
    assert cache.load(exported) == 1
    again = vision_magic.ask("cache: export me", red, display=False)
    assert again.replayed and again.text == first.text and len(server.chat_requests) == 1


def test_load_refuses_a_file_that_is_not_an_export(tmp_path):
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"text": "hello"}\n')
    with pytest.raises(vision_magic.ConfigError, match=r"line 1 is not an exported answer"):
        cache.load(bad)
