"""The persistent replay cache: a re-run of an identical question shows the stored answer and sends nothing.

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

from .errors import ConfigError

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
    >>> from vision_magic.config import VisionMagic
    >>> str(path(VisionMagic(cache_path="/tmp/x.sqlite3")))
    '/tmp/x.sqlite3'
    """
    if cfg is None:
        from .config import settings

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
    >>> from vision_magic.answer import Answer
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
        answer.prompt,
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


# -- the ask path -------------------------------------------------------------------------------------------


def key_for(q: Any) -> str:
    """The cache key of a prepared :class:`~vision_magic.asking.Question`."""
    return request_key(q.body, q.base_url)


def _parse_structured(q: Any, answer: Any) -> None:
    if not getattr(q, "structured", False) or not answer.text or answer.incomplete:
        return
    from .structured import parse

    try:
        answer.data = parse(answer.text, q.schema)
    except ValueError as e:
        answer.error = str(e)


def replay(key: str, q: Any, answer: Any, *, display: bool = True, publish: Any = None) -> bool:
    """Fill ``answer`` from the cache and show it at once, marked as replayed; False when not cached."""
    hit = get(key, q.cfg)
    if hit is None:
        return False
    from .profiles import cost

    answer.text = hit["text"]
    answer.model = hit["model"] or answer.model
    answer.usage = hit["usage"]
    answer.finish_reason = hit["finish_reason"]
    answer.replayed = True
    usage = answer.usage or {}
    answer.cost = (
        cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), q.profile)
        if answer.usage
        else None
    )
    _parse_structured(q, answer)
    if display:
        from .render import answer_bundle, show_answer

        if publish is not None:
            publish(answer_bundle(answer.text, answer.footer()), False)
            answer._shown = True
        else:
            show_answer(answer)
    return True


def finish(key: str | None, q: Any, answer: Any) -> None:
    """After a real answer: parse structured output, then store it when complete."""
    _parse_structured(q, answer)
    if key is not None:
        put(key, answer, q.cfg)


# -- prepared images of unchanged files, so a re-run does not re-encode them -----------------------------

_MEMO_BYTES = 64 * 1024 * 1024
_memo: dict[tuple[Any, ...], list[Any]] = {}


def _fingerprint(sources: Any) -> tuple[Any, ...] | None:
    """(path, size, mtime, inode) of every source when each names one existing file; else None."""
    out = []
    for src in sources:
        if isinstance(src, (bytes, bytearray)):
            out.append(("bytes", hashlib.sha256(src).hexdigest()))
            continue
        if not isinstance(src, (str, os.PathLike)):
            return None
        text = os.fspath(src)
        if text.startswith(("http://", "https://", "data:")) or any(ch in text for ch in "*?["):
            return None
        try:
            st = Path(text).expanduser().resolve().stat()
        except OSError:
            return None
        if not Path(text).expanduser().is_file():
            return None
        out.append((str(Path(text).expanduser().resolve()), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def remember_prepared(sources: Any, options: Any, labels: Any, prepare: Any) -> list[Any]:
    """``prepare()``'s images, reused while the files (size, mtime, inode) and options are unchanged.

    Re-running a cell then costs a stat per file instead of a decode and re-encode (tens of ms per image).
    In memory only, at most 64 MB of image bytes.
    """
    prints = _fingerprint(sources)
    if prints is None:
        return prepare()
    key = (prints, repr(options), tuple(labels) if labels is not None else None, os.getcwd())
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        import copy

        return [copy.copy(img) for img in hit]
    images = prepare()
    size = sum(len(img.data or b"") + len(img.url) for img in images)
    if size < _MEMO_BYTES // 4:
        with _lock:
            while (
                _memo
                and sum(len(i.data or b"") + len(i.url) for v in _memo.values() for i in v) + size
                > _MEMO_BYTES
            ):
                _memo.pop(next(iter(_memo)))
            _memo[key] = images
    return images
