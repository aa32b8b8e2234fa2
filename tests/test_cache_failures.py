"""Issue 10, item 2: the replay cache never stops a question. A cache that is damaged, unopenable, read-only,
full or deleted, at the start or mid-run, gives one warning line per session on the ``vision_magic.cache``
logger, the question runs uncached, and caching resumes once the file is usable again; a file deleted while
open is noticed and a new one made, so the answers stored afterwards are really kept."""

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
from vision_magic.engine import replay_store
from vision_magic.engine.session import settings
from vision_magic.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
LOGGER = "vision_magic.cache"
GARBAGE = b"these are notes, not an SQLite database\n" * 200


@pytest.fixture(autouse=True)
def cache_file(replay_cache):
    """Each test has its own cache file (so the once-per-file warning is fresh), cache on, default path."""
    return replay_cache


@pytest.fixture
def red(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(path)
    return path


def cache_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def assert_told_once(caplog, *phrases: str) -> str:
    """Exactly one cache warning so far, one line, containing every phrase and the way out."""
    lines = cache_lines(caplog)
    assert len(lines) == 1, f"expected one warning line, got {lines}"
    line = lines[0]
    assert "\n" not in line and "--no-cache" in line and "VisionMagic.cache_path" in line, line
    for phrase in phrases:
        assert phrase in line, line
    return line


def assert_no_traceback(text: str) -> None:
    for marker in ("Traceback", "sqlite3.", "DatabaseError", "OperationalError", 'File "'):
        assert marker not in text, text[-2000:]


def batch(folder: Path, server, expect_sent: int):
    """ask_many over the folder: every row answered, no row with an error; ``expect_sent`` requests sent."""
    before = len(server.chat_requests)
    df = vision_magic.ask_many("Which colour?", str(folder), concurrency=1, progress=False)
    assert df["error"].isna().all(), list(df["error"])
    assert df["answer"].notna().all()
    assert len(server.chat_requests) - before == expect_sent
    return df


def test_magic_with_a_damaged_cache_answers_and_warns_once(
    shell, openai_env, red, cache_file, caplog, capsys
):
    """Garbage where the cache should be: every cell is answered (uncached); moving it aside fixes it."""
    server = openai_env
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(GARBAGE)
    cell = f"%%ask_image {red} --out t_answer\ncache failure: damaged"
    for _ in range(2):
        assert shell.run_cell(cell).error_in_exec is None
        answer = shell.user_ns["t_answer"]
        assert answer.text and not answer.replayed and not answer.error
    assert len(server.chat_requests) == 2
    assert "**Answer**" in shell.displays.text()
    assert_told_once(
        caplog, f"The replay cache {cache_file} is damaged (file is not a database)", "move it aside"
    )
    out = capsys.readouterr()
    assert_no_traceback(out.out + out.err + shell.displays.text())

    cache_file.rename(cache_file.with_suffix(".damaged"))  # what the line says to do
    assert shell.run_cell(cell).error_in_exec is None
    assert shell.run_cell(cell).error_in_exec is None
    assert shell.user_ns["t_answer"].replayed and len(server.chat_requests) == 3, "cached again"
    assert len(cache_lines(caplog)) == 1


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("parent is a regular file", "cannot be opened ({notes}: not a directory)"),
        ("path is a directory", "cannot be opened (unable to open database file)"),
        ("path is a text file", "is damaged (file is not a database)"),
    ],
)
def test_ask_with_an_unusable_cache_path_at_start(openai_env, red, tmp_path, caplog, kind, phrase):
    """Cache paths no one can use, root included: questions are sent, one line; stats()/clear() raise it."""
    server = openai_env
    notes = tmp_path / "notes.txt"
    notes.write_bytes(GARBAGE)
    target = {
        "parent is a regular file": notes / "replay.sqlite3",
        "path is a directory": tmp_path,
        "path is a text file": notes,
    }[kind]
    settings().cache_path = str(target)
    for _ in range(3):
        answer = vision_magic.ask("cache failure: at start", red, display=False)
        assert answer.text and not answer.replayed and not answer.error
    assert len(server.chat_requests) == 3
    line = assert_told_once(caplog, f"The replay cache {target} ", phrase.format(notes=notes))
    assert "questions are sent without it" in line
    for explicit in (cache.stats, cache.clear):
        with pytest.raises(ConfigError, match=r"^The replay cache .* cannot be used \(") as err:
            explicit()
        assert "\n" not in str(err.value) and "--no-cache" in str(err.value)
    assert notes.read_bytes() == GARBAGE, "the user's file is left alone"


def test_ask_many_with_an_unopenable_cache_warns_once_not_per_row(
    openai_env, folder, tmp_path, caplog, capsys
):
    server = openai_env
    notes = tmp_path / "notes"
    notes.write_text("not a folder")
    settings().cache_path = str(notes / "replay.sqlite3")
    assert not batch(folder, server, expect_sent=6)["replayed"].any()
    batch(folder, server, expect_sent=6)  # nothing could be stored: all sent again
    assert_told_once(caplog, f"cannot be opened ({notes}: not a directory)")
    notes.unlink()  # the folder can now be made
    batch(folder, server, expect_sent=6)
    assert batch(folder, server, expect_sent=0)["replayed"].all(), "cached again once the path is usable"
    assert len(cache_lines(caplog)) == 1
    out = capsys.readouterr()
    assert_no_traceback(out.out + out.err)


class FullDisk:
    """A real connection whose writes fail like a full disk while ``FullDisk.full`` is set."""

    full = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *params):
        if FullDisk.full and sql.lstrip().upper().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *params)

    def __getattr__(self, name: str):
        return getattr(self.conn, name)


def test_ask_many_when_the_disk_fills_mid_run(openai_env, folder, cache_file, caplog, monkeypatch):
    """The disk fills at the third answer: every row still answered, one line; once there is space again
    the missing answers are stored and a re-run sends nothing."""
    server = openai_env
    real_open = replay_store._open
    monkeypatch.setattr(replay_store, "_open", lambda file: FullDisk(real_open(file)))
    monkeypatch.setattr(FullDisk, "full", False)

    def fill_at_third(body):
        FullDisk.full = FullDisk.full or len(server.chat_requests) >= 3
        return "an answer"

    server.reply = fill_at_third
    batch(folder, server, expect_sent=6)
    assert_told_once(
        caplog,
        f"The replay cache {cache_file} cannot be written (database or disk is full)",
        "answers are not being stored",
    )
    server.reply, FullDisk.full = None, False  # space freed
    again = batch(folder, server, expect_sent=4)
    assert list(again["replayed"]) == [True, True, False, False, False, False]
    assert batch(folder, server, expect_sent=0)["replayed"].all()
    assert len(cache_lines(caplog)) == 1


@pytest.mark.parametrize("with_journal", [False, True], ids=["the file", "the file, -wal and -shm"])
def test_a_cache_deleted_during_ask_many_keeps_the_answers_after(
    openai_env, folder, cache_file, caplog, with_journal
):
    """rm while the batch runs: SQLite would go on writing to the unlinked file; the store notices the new
    inode, makes a new file, and the answers finished after the deletion are replayed by a re-run."""
    server = openai_env

    def delete_at_third(body):
        if len(server.chat_requests) == 3:
            for p in cache_file.parent.iterdir():
                if p == cache_file or with_journal:
                    p.unlink()
        return "an answer"

    server.reply = delete_at_third
    batch(folder, server, expect_sent=6)
    assert cache_file.exists()
    server.reply = None
    again = batch(folder, server, expect_sent=2)  # the two answers stored before the deletion went with it
    assert list(again["replayed"]) == [False, False, True, True, True, True]
    assert sqlite3.connect(cache_file).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert cache_lines(caplog) == [], "a deleted file is made again, nothing to warn about"


def test_ask_after_the_cache_is_replaced_by_garbage_mid_run(openai_env, red, cache_file, tmp_path, caplog):
    server = openai_env
    first = vision_magic.ask("cache failure: replaced 1", red, display=False)
    assert vision_magic.ask("cache failure: replaced 1", red, display=False).replayed
    garbage = tmp_path / "garbage"
    garbage.write_bytes(GARBAGE)
    os.replace(garbage, cache_file)  # e.g. a sync tool or a careless copy
    again = vision_magic.ask("cache failure: replaced 1", red, display=False)
    assert again.text == first.text and not again.replayed and len(server.chat_requests) == 2
    vision_magic.ask("cache failure: replaced 2", red, display=False)
    assert_told_once(caplog, f"The replay cache {cache_file} is damaged (file is not a database)")
    cache_file.unlink()
    vision_magic.ask("cache failure: replaced 3", red, display=False)
    assert vision_magic.ask("cache failure: replaced 3", red, display=False).replayed
    assert len(server.chat_requests) == 4 and len(cache_lines(caplog)) == 1


def test_a_backup_restored_over_the_open_cache_is_what_is_read(openai_env, red, cache_file, tmp_path, caplog):
    """The file is replaced by an older copy while its connection is open: the copy's answers are replayed,
    and the old connection's leftover write-ahead log is not read into it."""
    server = openai_env
    vision_magic.ask("cache failure: in the backup", red, display=False)
    cache.close()
    backup = tmp_path / "backup.sqlite3"
    backup.write_bytes(cache_file.read_bytes())
    vision_magic.ask("cache failure: after the backup", red, display=False)  # stored, in the log only
    os.replace(backup, cache_file)
    assert vision_magic.ask("cache failure: in the backup", red, display=False).replayed
    assert not vision_magic.ask("cache failure: after the backup", red, display=False).replayed
    assert len(server.chat_requests) == 3 and cache_lines(caplog) == []
    assert sqlite3.connect(cache_file).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_panel_when_the_cache_turns_read_only(openai_env, red, cache_file, caplog):
    """The store's own connection made read-only (SQLite's query_only, effective for root too): the panel
    shows the answer and no error; the next connection can write again."""
    from vision_magic.frontends.panel import ask_panel

    server = openai_env
    panel = ask_panel(red)
    panel.prompt.value = "cache failure: read-only 1"
    assert panel.ask(wait=True) is not None and not panel.answer.replayed
    replay_store._connections[str(cache_file)].execute("PRAGMA query_only = ON")
    panel.prompt.value = "cache failure: read-only 2"
    for replayed in (False, False, True):  # not stored, then stored by a fresh connection, then replayed
        panel.ask(wait=True)
        assert panel.status.value == "" and "**Answer**" in panel.output.outputs[0]["data"]["text/markdown"]
        assert panel.answer.replayed is replayed
    assert len(server.chat_requests) == 3
    assert_told_once(
        caplog,
        f"{cache_file} cannot be written (attempt to write a readonly database): answers are not being",
    )


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="RLIMIT_FSIZE is POSIX")
def test_a_real_write_failure_in_a_real_shell_is_one_line_on_stderr(openai_env, red, cache_file, tmp_path):
    """A fresh IPython process (no pytest log capture): writes fail for real (RLIMIT_FSIZE, root included),
    then succeed again; stderr is exactly one line, and silencing the logger silences it."""
    notes = tmp_path / "notes.sqlite3"
    notes.write_bytes(GARBAGE)
    code = f"""
        import resource, signal
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic("load_ext", "vision_magic")

        def cell(question):
            r = ip.run_cell("%%ask_image {red} --out ans\\n" + question)
            ans = ip.user_ns["ans"]
            print("CELL", question, r.error_in_exec is None, bool(ans.text), ans.replayed, flush=True)

        cell("stored"); cell("stored")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # no file may grow: every write fails
        cell("full 1"); cell("full 2"); cell("full 1")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        cell("freed"); cell("freed"); cell("full 1")
        ip.run_cell("import logging; logging.getLogger('vision_magic.cache').setLevel(logging.ERROR)")
        ip.run_cell("%config VisionMagic.cache_path = '{notes}'")
        cell("silenced")
    """
    env = {
        **os.environ,
        "OPENAI_BASE_URL": openai_env.base_url,
        "OPENAI_API_KEY": "sk-test-VMFAKEKEY-0123456789abcdef",
        "VISION_MAGIC_CACHE_DIR": str(cache_file.parent),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = [line for line in proc.stdout.splitlines() if line.startswith("CELL ")]
    assert cells == [
        "CELL stored True True False",
        "CELL stored True True True",
        "CELL full 1 True True False",
        "CELL full 2 True True False",
        "CELL full 1 True True False",
        "CELL freed True True False",
        "CELL freed True True True",
        "CELL full 1 True True False",
        "CELL silenced True True False",
    ]
    assert proc.stderr.splitlines() == [
        f"The replay cache {cache_file} cannot be written (disk I/O error): answers are not being stored; "
        "set %config VisionMagic.cache_path to a writable file or use --no-cache"
    ]
    assert_no_traceback(proc.stdout + proc.stderr)
