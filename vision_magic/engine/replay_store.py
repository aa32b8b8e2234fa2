"""The persistent replay store: storage only (get, put, stats, clear, export, load); it knows nothing of
questions or displays (:mod:`vision_magic.engine.finish` decides what is stored and replayed).

A re-run of an identical question is answered from here and sends nothing.

One SQLite file (default ``<user cache dir>/vision_magic/replay.sqlite3``; ``VISION_MAGIC_CACHE_DIR`` or
``%config VisionMagic.cache_path`` move it), keyed by the replay key its callers give: the engine uses
:func:`vision_magic.engine.record.request_key`, a SHA-256 of what was asked (model, system, messages, options,
each image's SHA-256 and detail) that is the same whatever the endpoint, base URL or key, so answers move
between machines and servers (:func:`export` / :func:`load`, ``vision_magic.replay_from``). Each row also
keeps the answer's record (:func:`vision_magic.engine.record.record_of`: no key, no image bytes), which
``replay_only`` uses to say how a question differs from the recordings. The API key is never part of the key
or the row. WAL journaling and a busy timeout make it safe with several kernels at once, and a kernel killed
mid-write leaves the file intact (SQLite transactions are atomic).

The cache never stops a question: :func:`get` and :func:`put` never raise. A file that cannot be opened,
read or written (damaged, unreadable, read-only, disk full), at the start or mid-session, is told once per
file per session as one warning line on the ``vision_magic.cache`` logger, and the question runs uncached;
the failed connection is dropped and the file tried again at the next question, so caching resumes once the
file is usable. A file deleted or replaced while open is noticed (its inode changed) and opened anew. The
explicit calls (:func:`stats`, :func:`clear`, :func:`export`, :func:`load`) raise a one-line ConfigError.

Examples
--------
>>> import vision_magic
>>> vision_magic.cache.stats()  # doctest: +SKIP
{'path': '/home/me/.cache/vision_magic/replay.sqlite3', 'entries': 12, 'bytes': 49152, 'hits': 3, 'misses': 9}
>>> vision_magic.cache.clear()  # doctest: +SKIP
12
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, VisionMagicError, one_line, redact

FILE_NAME = "replay.sqlite3"
_COLUMNS = ("key", "created", "model", "text", "usage", "finish_reason", "prompt", "n_images", "record")
COLUMNS = _COLUMNS  # the fields of an exported answer (one JSON object per line)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    usage TEXT,
    finish_reason TEXT,
    prompt TEXT,
    n_images INTEGER,
    record TEXT
)
"""

# The Batch API jobs (vision_magic.engine.batch_api): a re-run of the same cell finds its batches here and
# reattaches to them instead of submitting again. One row per batch; a job's parts share ``job`` and ``attempt``.
_BATCH_COLUMNS = (
    "batch_id",
    "job",
    "attempt",
    "part",
    "endpoint",
    "created",
    "status",
    "total",
    "completed",
    "failed",
    "label",
    "input_file_id",
)
BATCH_COLUMNS = _BATCH_COLUMNS
_BATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    part INTEGER NOT NULL,
    endpoint TEXT,
    created REAL NOT NULL,
    status TEXT,
    total INTEGER,
    completed INTEGER,
    failed INTEGER,
    label TEXT,
    input_file_id TEXT
)
"""

# The images of each job, by a fingerprint of the call (prompt, options, endpoint, each file's path, size and
# mtime): a re-run whose files have not changed reattaches without preparing a single image again.
_JOB_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    fingerprint TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    created REAL NOT NULL,
    items BLOB
)
"""

_lock = threading.Lock()
_connections: dict[str, sqlite3.Connection] = {}
# (device, inode) of each open file and of its write-ahead log, when its connection opened
_identities: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}
_warned: set[str] = set()  # cache files whose failure was told this session
_log = logging.getLogger("vision_magic.cache")
_counts = {"hits": 0, "misses": 0}


def default_dir() -> Path:
    """``VISION_MAGIC_CACHE_DIR``, else the platform's user cache directory plus ``vision_magic``.

    Examples
    --------
    >>> import os; os.environ["VISION_MAGIC_CACHE_DIR"] = "/tmp/vm"; str(default_dir())
    '/tmp/vm'
    >>> del os.environ["VISION_MAGIC_CACHE_DIR"]
    """
    env = os.environ.get("VISION_MAGIC_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("vision_magic", appauthor=False))
    except ImportError:  # platformdirs comes with Jupyter; without it, the XDG default
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "vision_magic"


def path(cfg: Any = None) -> Path:
    """The cache file in force: ``VisionMagic.cache_path`` when set, else :func:`default_dir` / replay.sqlite3.

    Examples
    --------
    >>> from vision_magic.engine.config import VisionMagic
    >>> str(path(VisionMagic(cache_path="/tmp/x.sqlite3")))
    '/tmp/x.sqlite3'
    """
    if cfg is None:
        from .session import settings

        cfg = settings()
    configured = getattr(cfg, "cache_path", "") or ""
    return Path(configured).expanduser() if configured else default_dir() / FILE_NAME


def _open(file: Path) -> sqlite3.Connection:
    """A new connection to ``file`` (made, with its folder, if missing) in WAL mode with the answers table."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a regular file where the folder should be
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(file.parent)) from None
    conn = sqlite3.connect(str(file), timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_SCHEMA)
        conn.execute(_BATCH_SCHEMA)
        conn.execute(_JOB_SCHEMA)
        _add_record_column(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _add_record_column(conn: sqlite3.Connection) -> None:
    """Give a store made by an older version the ``record`` column (another kernel may just have added it)."""
    names = {row[1] for row in conn.execute("PRAGMA table_info(answers)")}
    if "record" not in names:
        try:
            conn.execute("ALTER TABLE answers ADD COLUMN record TEXT")
        except sqlite3.OperationalError as e:
            if "duplicate column" not in str(e):
                raise


def _identity(file: Path) -> tuple[int, int] | None:
    """(device, inode) of ``file``, or None when it does not exist; one ``stat``, the file is never opened
    (closing any descriptor of a database file would drop SQLite's locks on it)."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _drop(key: str) -> None:
    """Close and forget the connection to the file ``key`` (the caller holds ``_lock``)."""
    conn = _connections.pop(key, None)
    _identities.pop(key, None)
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def _connect(file: Path) -> sqlite3.Connection:
    """The connection to ``file`` (the caller holds ``_lock``), opened on first use and opened again when the
    file was deleted or replaced since: SQLite would go on writing to the old, unlinked file.

    SQLite leaves a moved database's write-ahead log in place when closing it, and would read that log into
    whatever file is now at the path (a restored backup would silently get the old answers). So when the log
    still is the one this connection opened, it and its index are removed before the new file is opened.
    Raises what :data:`_FAILURES` lists when ``file`` cannot be opened.
    """
    key = str(file)
    conn = _connections.get(key)
    wal, shm = Path(f"{file}-wal"), Path(f"{file}-shm")
    if conn is not None:
        file_id, wal_id = _identities[key]
        if _identity(file) == file_id:
            return conn
        _drop(key)
        if wal_id is not None and _identity(wal) == wal_id:
            for stale in (wal, shm):
                with contextlib.suppress(OSError):
                    stale.unlink()
    conn = _connections[key] = _open(file)
    _identities[key] = (_identity(file), _identity(wal))
    return conn


_FAILURES = (sqlite3.Error, OSError, ValueError)  # ValueError: a NUL in the path, a damaged JSON column
_T = TypeVar("_T")


def _use(file: Path, work: Callable[[sqlite3.Connection], _T]) -> tuple[_T | None, str, Exception | None]:
    """``work(connection)`` under the lock: (its result, "", None), or (None, stage, error) when ``file``
    could not be opened (stage "open") or ``work`` failed (stage "use"); a failed connection is dropped,
    so the next call opens the file again."""
    with _lock:
        stage = "open"
        try:
            conn = _connect(file)
            stage = "use"
            return work(conn), "", None
        except _FAILURES as e:
            _drop(str(file))
            return None, stage, e


def _reason(e: Exception) -> str:
    """The error in a few words: SQLite's own message, or the OS error and the path it names.

    Examples
    --------
    >>> _reason(NotADirectoryError(20, "Not a directory", "/x/notes.txt"))
    '/x/notes.txt: Not a directory'
    >>> _reason(sqlite3.DatabaseError("file is not a database"))
    'file is not a database'
    """
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def _failure_line(file: Path, action: str, stage: str, e: Exception) -> str:
    """The one line telling what happened to the cache ``file`` and how to fix it.

    Examples
    --------
    >>> line = _failure_line(Path("/c/r.db"), "write", "use", sqlite3.OperationalError("disk I/O error"))
    >>> line.partition(": ")[0]
    'The replay cache /c/r.db cannot be written (disk I/O error)'
    """
    fix = "set %config VisionMagic.cache_path to a writable file or use --no-cache"
    effect = "questions are sent without it"
    if (getattr(e, "sqlite_errorname", None) or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        what, fix = "is damaged", "move it aside (a new one is made), " + fix
    elif stage == "open":
        what = "cannot be opened"
    elif action == "write":
        what, effect = "cannot be written", "answers are not being stored"
    else:
        what = "cannot be read"
    return one_line(VisionMagicError(f"The replay cache {file} {what} ({_reason(e)}): {effect}; {fix}"))


def _attempt(action: str, cfg: Any, work: Callable[[sqlite3.Connection], _T]) -> _T | None:
    """``work`` on the cache in force, for ``get`` ("read") or ``put`` ("write"); never raises. A failure
    returns None and is told once per cache file per session, as one warning line on the
    ``vision_magic.cache`` logger, so the question runs uncached; the next call tries the file again."""
    file = path(cfg)
    result, stage, error = _use(file, work)
    if error is None:
        return result
    with _lock:
        first = str(file) not in _warned
        _warned.add(str(file))
    if first:
        _log.warning(_failure_line(file, action, stage, error))
    return None


def _checked(cfg: Any, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """``work`` on the cache in force for an explicit call (stats, clear, export, load): a failure is one
    :class:`ConfigError` line."""
    file = path(cfg)
    result, _stage, error = _use(file, work)
    if error is not None:
        raise ConfigError(
            f"The replay cache {file} cannot be used ({_reason(error)}): set %config VisionMagic.cache_path "
            "to a writable file, or use --no-cache"
        )
    return result  # type: ignore[return-value]


def _lookup(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT text, model, usage, finish_reason FROM answers WHERE key = ?", (key,)
    ).fetchone()
    _counts["hits" if row else "misses"] += 1
    if row is None:
        return None
    return {
        "text": row[0],
        "model": row[1],
        "usage": json.loads(row[2]) if row[2] else None,
        "finish_reason": row[3],
    }


def _store(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Insert ``rows`` (tuples of :data:`COLUMNS`) in one transaction: all of them or, on an error, none."""
    sql = f"INSERT OR REPLACE INTO answers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    if len(rows) == 1:
        conn.execute(sql, rows[0])
        return 1
    conn.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            conn.execute(sql, row)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(rows)


def get(key: str, cfg: Any = None) -> dict[str, Any] | None:
    """The stored answer for ``key`` (``text``, ``model``, ``usage``, ``finish_reason``), or None; also None
    when the cache cannot be read (told once, see :func:`put`).

    Examples
    --------
    >>> get("0" * 64) is None  # doctest: +SKIP
    True
    """
    return _attempt("read", cfg, lambda conn: _lookup(conn, key))


def put(key: str, answer: Any, cfg: Any = None) -> bool:
    """Store a complete answer under ``key`` (incomplete or failed answers are never stored); True if stored.

    Never raises: when the cache cannot be opened or written (damaged, deleted, read-only, disk full), the
    answer is not stored and one warning line per cache file per session, on the ``vision_magic.cache``
    logger, says so and how to fix it. A file deleted or replaced while open is opened again (a new file is
    made), so the answers stored afterwards are really on disk.

    Examples
    --------
    >>> from vision_magic.engine.answer import Answer
    >>> put("0" * 64, Answer(text="hi", model="m"))  # doctest: +SKIP
    True
    """
    if answer.incomplete or answer.error or answer.dry_run:
        return False
    row = (
        key,
        time.time(),
        answer.model or "",
        answer.text,
        json.dumps(answer.usage) if answer.usage else None,
        answer.finish_reason,
        redact(answer.prompt),  # informational only; the key is a hash, so no URL is stored as it is
        len(answer.images),
        json.dumps(answer.record, ensure_ascii=False) if answer.record else None,
    )
    return bool(_attempt("write", cfg, lambda conn: _store(conn, [row])))


def add(rows: list[dict[str, Any]], cfg: Any = None) -> int:
    """Store answers given as rows (dicts of :data:`COLUMNS`; ``record``, ``prompt`` and ``n_images`` may be
    missing); existing keys are replaced. Returns how many. Raises :class:`ConfigError` (one line) when the
    file cannot be used, or a row lacks a key, a text or a model.

    Examples
    --------
    >>> add([{"key": "0" * 64, "created": 0.0, "model": "m", "text": "hi"}])  # doctest: +SKIP
    1
    """
    tuples = []
    for row in rows:
        if not (isinstance(row.get("key"), str) and isinstance(row.get("text"), str)):
            raise ConfigError("an answer to store needs a key and a text")
        values = {**row, "model": row.get("model") or "", "created": row.get("created") or time.time()}
        for name in ("usage", "record"):  # JSON columns: stored as text
            if values.get(name) is not None and not isinstance(values[name], str):
                values[name] = json.dumps(values[name], ensure_ascii=False)
        tuples.append(tuple(values.get(c) for c in _COLUMNS))
    return _checked(cfg, lambda conn: _store(conn, tuples))


def add_batch(row: dict[str, Any], cfg: Any = None) -> bool:
    """Remember one submitted batch (a dict of :data:`BATCH_COLUMNS`); True if stored. Never raises (a cache
    that cannot be written is told once, as for :func:`put`: the batch runs, but a re-run cannot find it).

    Examples
    --------
    >>> add_batch({"batch_id": "batch_1", "job": "j", "attempt": 1, "part": 0, "created": 0.0})  # doctest: +SKIP
    True
    """
    values = tuple(row.get(c) for c in _BATCH_COLUMNS)
    sql = f"INSERT OR REPLACE INTO batches ({', '.join(_BATCH_COLUMNS)}) VALUES ({', '.join('?' * len(values))})"
    return bool(_attempt("write", cfg, lambda conn: conn.execute(sql, values).rowcount))


def update_batch(batch_id: str, status: str, counts: dict[str, int], cfg: Any = None) -> None:
    """Note a batch's last known status and request counts (``total``, ``completed``, ``failed``)."""
    sql = "UPDATE batches SET status = ?, total = ?, completed = ?, failed = ? WHERE batch_id = ?"
    values = (status, counts.get("total"), counts.get("completed"), counts.get("failed"), batch_id)
    _attempt("write", cfg, lambda conn: conn.execute(sql, values))


def add_job(fingerprint: str, job: str, items: bytes, cfg: Any = None) -> None:
    """Remember the items of ``job`` (an opaque blob) under the call's ``fingerprint``. Never raises."""
    sql = "INSERT OR REPLACE INTO batch_jobs (fingerprint, job, created, items) VALUES (?, ?, ?, ?)"
    values = (fingerprint, job, time.time(), items)
    _attempt("write", cfg, lambda conn: conn.execute(sql, values))


def job_of(fingerprint: str, cfg: Any = None) -> tuple[str, bytes] | None:
    """(job, items blob) remembered under ``fingerprint``, or None (also when the cache cannot be read)."""
    sql = "SELECT job, items FROM batch_jobs WHERE fingerprint = ?"
    row = _attempt("read", cfg, lambda conn: conn.execute(sql, (fingerprint,)).fetchone())
    return (row[0], bytes(row[1])) if row else None


def _batch_rows(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches {where} ORDER BY created, attempt, part"
    return [dict(zip(_BATCH_COLUMNS, row, strict=True)) for row in conn.execute(sql, args)]


def batches_of(job: str, cfg: Any = None) -> list[dict[str, Any]]:
    """The batches of the latest attempt at ``job``, by part ([] when none, or when the cache cannot be read)."""
    rows = _attempt("read", cfg, lambda conn: _batch_rows(conn, "WHERE job = ?", (job,))) or []
    latest = max((r["attempt"] for r in rows), default=None)
    return [r for r in rows if r["attempt"] == latest]


def all_batches(cfg: Any = None) -> list[dict[str, Any]]:
    """Every batch remembered, oldest first. Raises :class:`ConfigError` (one line) when the file cannot be used."""
    return _checked(cfg, lambda conn: _batch_rows(conn, "", ()))


def _all_records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    found = []
    for (text,) in conn.execute("SELECT record FROM answers WHERE record IS NOT NULL"):
        with contextlib.suppress(ValueError):
            record = json.loads(text)
            if isinstance(record, dict):
                found.append(record)
    return found


def records(cfg: Any = None) -> list[dict[str, Any]]:
    """The records kept with the stored answers (see :func:`vision_magic.engine.record.record_of`); empty
    when the cache cannot be read (told once, as for :func:`get`).

    Examples
    --------
    >>> [r["prompt"] for r in records()]  # doctest: +SKIP
    ['How many shapes are there?']
    """
    return _attempt("read", cfg, _all_records) or []


def stats(cfg: Any = None) -> dict[str, Any]:
    """Where the cache is, how many answers it holds, its size on disk, and this session's hits/misses.

    Raises :class:`ConfigError` (one line) when the file cannot be used.

    Examples
    --------
    >>> sorted(stats())  # doctest: +SKIP
    ['bytes', 'entries', 'hits', 'misses', 'path']
    """
    file = path(cfg)
    entries = _checked(cfg, lambda conn: conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    with _lock:
        counts = dict(_counts)
    size = sum(p.stat().st_size for p in file.parent.glob(file.name + "*") if p.is_file())
    return {"path": str(file), "entries": int(entries), "bytes": size, **counts}


def _delete_all(conn: sqlite3.Connection) -> int:
    n = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    conn.execute("DELETE FROM answers")
    _counts.update(hits=0, misses=0)
    return int(n)


def clear(cfg: Any = None) -> int:
    """Delete every stored answer; returns how many there were. Raises :class:`ConfigError` (one line) when the
    file cannot be used.

    Examples
    --------
    >>> clear()  # doctest: +SKIP
    12
    """
    n = _checked(cfg, _delete_all)
    _use(path(cfg), lambda conn: conn.execute("VACUUM"))  # giving the space back may fail; the rows are gone
    return n


def close() -> None:
    """Close every open cache connection (tests and ``%reset``-like clean-ups)."""
    with _lock:
        for key in list(_connections):
            _drop(key)


def export(file: str | os.PathLike[str], cfg: Any = None) -> int:
    """Write every stored answer to ``file`` as JSON Lines (one object per answer: its key, the answer and
    its record; no API key, no image bytes); returns how many. :func:`load` on another machine (any
    endpoint, no key needed) replays them.

    Examples
    --------
    >>> export("answers.jsonl")  # doctest: +SKIP
    12
    """
    rows = _checked(cfg, lambda conn: conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM answers").fetchall())
    with open(file, "w", encoding="utf-8") as out:
        for row in rows:
            obj = dict(zip(_COLUMNS, row, strict=True))
            for name in ("usage", "record"):  # JSON columns: written as objects
                with contextlib.suppress(TypeError, ValueError):
                    obj[name] = json.loads(obj[name]) if obj[name] is not None else None
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return len(rows)


def load(file: str | os.PathLike[str], cfg: Any = None) -> int:
    """Add the answers of a file written by :func:`export` (existing keys are replaced); returns how many.
    A line that is not an exported answer is one :class:`ConfigError` line, and nothing is added.

    Examples
    --------
    >>> load("answers.jsonl")  # doctest: +SKIP
    12
    """
    rows = []
    try:
        with open(file, encoding="utf-8") as src:
            for n, line in enumerate(src, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict) or not all(c in obj for c in _COLUMNS[:4]):
                        raise ValueError
                except ValueError:
                    raise ConfigError(
                        f"{file} line {n} is not an exported answer: use a file from export()"
                    ) from None
                rows.append(obj)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file} cannot be read ({_reason(e) if isinstance(e, OSError) else e})") from None
    return add(rows, cfg)
