"""The persistent replay store: storage only (get, put, stats, clear, export, load); it knows nothing of
questions or displays (:mod:`vision_magic.engine.finish` decides what is stored and replayed).

A re-run of an identical question is answered from here and sends nothing.

One SQLite file (default ``<user cache dir>/vision_magic/replay.sqlite3``; ``VISION_MAGIC_CACHE_DIR`` or
``%config VisionMagic.cache_path`` move it), keyed by a SHA-256 of the exact request: endpoint URL, model,
parameters, messages with every image's bytes as sent. Only the transport flags (``stream``,
``stream_options``) are left out of the key, so streaming and non-streaming runs share answers. The API key is
never part of the key or the row. WAL journaling and a busy timeout make it safe with several kernels at once,
and a kernel killed mid-write leaves the file intact (SQLite transactions are atomic).

Examples
--------
>>> import vision_magic
>>> vision_magic.cache.stats()  # doctest: +SKIP
{'path': '/home/me/.cache/vision_magic/replay.sqlite3', 'entries': 12, 'bytes': 49152, 'hits': 3, 'misses': 9}
>>> vision_magic.cache.clear()  # doctest: +SKIP
12
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, redact

FILE_NAME = "replay.sqlite3"
_TRANSPORT_ONLY = ("stream", "stream_options")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    usage TEXT,
    finish_reason TEXT,
    prompt TEXT,
    n_images INTEGER
)
"""

_lock = threading.Lock()
_connections: dict[str, sqlite3.Connection] = {}
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


def request_key(body: dict[str, Any], base_url: str) -> str:
    """SHA-256 of the endpoint and the request body (sorted JSON), without the transport-only fields.

    Examples
    --------
    >>> a = request_key({"model": "m", "messages": [], "stream": True}, "http://x/v1")
    >>> a == request_key({"messages": [], "model": "m"}, "http://x/v1/")
    True
    >>> a == request_key({"messages": [], "model": "m2"}, "http://x/v1")
    False
    """
    wanted = {k: v for k, v in body.items() if k not in _TRANSPORT_ONLY}
    blob = json.dumps(
        {"endpoint": base_url.rstrip("/"), "body": wanted}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _connect(file: Path) -> sqlite3.Connection:
    key = str(file)
    conn = _connections.get(key)
    if conn is not None:
        return conn
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(key, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_SCHEMA)
    except (sqlite3.Error, OSError) as e:
        raise ConfigError(
            f"The replay cache {file} cannot be opened ({e}): set %config VisionMagic.cache_path to a "
            "writable file, or use --no-cache"
        ) from None
    _connections[key] = conn
    return conn


def get(key: str, cfg: Any = None) -> dict[str, Any] | None:
    """The stored answer for ``key`` (``text``, ``model``, ``usage``, ``finish_reason``), or None.

    Examples
    --------
    >>> get("0" * 64) is None  # doctest: +SKIP
    True
    """
    with _lock:
        row = (
            _connect(path(cfg))
            .execute("SELECT text, model, usage, finish_reason FROM answers WHERE key = ?", (key,))
            .fetchone()
        )
        _counts["hits" if row else "misses"] += 1
    if row is None:
        return None
    return {
        "text": row[0],
        "model": row[1],
        "usage": json.loads(row[2]) if row[2] else None,
        "finish_reason": row[3],
    }


def put(key: str, answer: Any, cfg: Any = None) -> None:
    """Store a complete answer under ``key`` (incomplete or failed answers are never stored).

    Examples
    --------
    >>> from vision_magic.engine.answer import Answer
    >>> put("0" * 64, Answer(text="hi", model="m"))  # doctest: +SKIP
    """
    if answer.incomplete or answer.error or answer.dry_run:
        return
    row = (
        key,
        time.time(),
        answer.model or "",
        answer.text,
        json.dumps(answer.usage) if answer.usage else None,
        answer.finish_reason,
        redact(answer.prompt),  # informational only; the key is a hash, so no URL is stored as it is
        len(answer.images),
    )
    with _lock:
        _connect(path(cfg)).execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def stats(cfg: Any = None) -> dict[str, Any]:
    """Where the cache is, how many answers it holds, its size on disk, and this session's hits/misses.

    Examples
    --------
    >>> sorted(stats())  # doctest: +SKIP
    ['bytes', 'entries', 'hits', 'misses', 'path']
    """
    file = path(cfg)
    with _lock:
        entries = _connect(file).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        counts = dict(_counts)
    size = sum(p.stat().st_size for p in file.parent.glob(file.name + "*") if p.is_file())
    return {"path": str(file), "entries": int(entries), "bytes": size, **counts}


def clear(cfg: Any = None) -> int:
    """Delete every stored answer; returns how many there were.

    Examples
    --------
    >>> clear()  # doctest: +SKIP
    12
    """
    with _lock:
        conn = _connect(path(cfg))
        n = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        conn.execute("DELETE FROM answers")
        _counts.update(hits=0, misses=0)
    with _lock:
        conn.execute("VACUUM")
    return int(n)


def close() -> None:
    """Close every open cache connection (tests and ``%reset``-like clean-ups)."""
    with _lock:
        for conn in _connections.values():
            conn.close()
        _connections.clear()


_COLUMNS = ("key", "created", "model", "text", "usage", "finish_reason", "prompt", "n_images")


def export(file: str | os.PathLike[str], cfg: Any = None) -> int:
    """Write every stored answer to ``file`` as JSON Lines (one object per answer); returns how many.

    Examples
    --------
    >>> export("answers.jsonl")  # doctest: +SKIP
    12
    """
    with _lock:
        rows = _connect(path(cfg)).execute(f"SELECT {', '.join(_COLUMNS)} FROM answers").fetchall()
    with open(file, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(dict(zip(_COLUMNS, row, strict=True)), ensure_ascii=False) + "\n")
    return len(rows)


def load(file: str | os.PathLike[str], cfg: Any = None) -> int:
    """Add the answers of a file written by :func:`export` (existing keys are replaced); returns how many.

    Examples
    --------
    >>> load("answers.jsonl")  # doctest: +SKIP
    12
    """
    rows = []
    with open(file, encoding="utf-8") as src:
        for n, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rows.append(tuple(obj[c] for c in _COLUMNS))
            except (ValueError, KeyError, TypeError):
                raise ConfigError(
                    f"{file} line {n} is not an exported answer: use a file from export()"
                ) from None
    placeholders = ", ".join("?" * len(_COLUMNS))
    with _lock:
        _connect(path(cfg)).executemany(f"INSERT OR REPLACE INTO answers VALUES ({placeholders})", rows)
    return len(rows)
