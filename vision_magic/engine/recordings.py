"""Lessons that replay without a key: recorded answers loaded from a saved notebook, and ``replay_only``.

A teacher runs a notebook once with a key; every answer output carries its record (output metadata
``vision_magic``, :mod:`vision_magic.engine.record`). A student opens the saved ``.ipynb`` with no key and no
server: :func:`replay_from` puts every recorded answer into the replay store, and re-running the cells shows
them, marked as replayed, sending nothing. The replay key is endpoint-independent, so the student's base URL
and key (none) do not matter; the model, prompt, system text, options and every image's bytes do.

With ``%config VisionMagic.replay_only = True`` (or ``VISION_MAGIC_REPLAY_ONLY=1``) nothing is ever sent: a
question with no recorded answer is one line naming how it differs from the nearest recording
(:func:`unrecorded_line`).

Examples
--------
>>> import vision_magic
>>> vision_magic.replay_from("lesson.ipynb")  # doctest: +SKIP
5
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, VisionMagicError, redact
from .record import KEY, VERSION, image_identity

if TYPE_CHECKING:
    from .question import Question

NEAR = 3  # a recording that differs in at most this many things is named as "the recording"


def records_in(notebook: Any) -> list[dict[str, Any]]:
    """Every record in a notebook's JSON: the metadata of cell outputs and of Output widgets' outputs (the
    panel), one per answer; a table's metadata holds one per row (``answers``).

    Examples
    --------
    >>> nb = {"cells": [{"outputs": [{"metadata": {"vision_magic": {"request_key": "k", "answer": "A."}}}]}]}
    >>> [r["answer"] for r in records_in(nb)]
    ['A.']
    """
    found: list[dict[str, Any]] = []
    stack = [notebook]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            meta = node.get("metadata")
            record = meta.get(KEY) if isinstance(meta, dict) else None
            if isinstance(record, dict):
                rows = record.get("answers")
                found += [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else [record]
            stack.extend(v for k, v in node.items() if isinstance(v, (dict, list)))
    return found


def replayable(record: dict[str, Any]) -> bool:
    """True for the record of a complete answer (not a dry run, not cut off) in a format this version reads."""
    return (
        isinstance(record.get("version"), int)
        and record["version"] <= VERSION
        and isinstance(record.get("request_key"), str)
        and isinstance(record.get("answer"), str)
        and not record.get("dry_run")
        and not record.get("incomplete")
        and not record.get("error")
    )


def row_of(record: dict[str, Any]) -> dict[str, Any]:
    """The replay-store row of a recorded answer."""
    usage = record.get("usage") if isinstance(record.get("usage"), dict) else None
    tokens = None
    if usage:
        tin, tout = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        tokens = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
    try:
        created = datetime.fromisoformat(str(record.get("created"))).timestamp()
    except ValueError:
        created = None
    return {
        "key": record["request_key"],
        "created": created,
        "model": record.get("model") or "",
        "text": record["answer"],
        "usage": tokens,
        "finish_reason": record.get("finish_reason"),
        "prompt": redact(str(record.get("prompt") or "")),
        "n_images": len(record.get("images") or []),
        "record": record,
    }


def replay_from(path: str | os.PathLike[str], cfg: Any = None) -> int:
    """Load every answer recorded in a saved notebook into the replay store; returns how many (different
    questions: an answer recorded twice, e.g. replayed in a later cell, counts once).

    Re-running the notebook's cells then shows the recorded answers, marked as replayed, and sends nothing
    (no key or server needed). A cell matches its recording when the model, prompt, system text, options and
    the bytes of every image are the same, whatever the endpoint. A missing or unreadable file, or a notebook
    with no recorded answers, is one :class:`ConfigError` line, and the store is left as it was.

    Examples
    --------
    >>> import vision_magic
    >>> vision_magic.replay_from("lesson.ipynb")  # doctest: +SKIP
    5
    >>> %config VisionMagic.replay_only = True      # never send; say what differs  # doctest: +SKIP
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as src:
            notebook = json.load(src)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file (give the path of the saved .ipynb)") from None
    except OSError as e:
        raise ConfigError(f"{name} cannot be read ({e.strerror or e}): nothing was loaded") from None
    except ValueError as e:  # bad JSON, not UTF-8
        raise ConfigError(f"{name} is not a readable notebook ({e}): nothing was loaded") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ConfigError(f"{name} is not a notebook (it has no cells): nothing was loaded")
    found = records_in(notebook)
    unique: dict[str, dict[str, Any]] = {}  # one row per key: the first recording (a re-run replays it)
    for r in found:
        if replayable(r):
            unique.setdefault(r["request_key"], row_of(r))
    rows = list(unique.values())
    if not rows:
        why = "only dry runs or unfinished answers" if found else "no answer outputs with a record"
        raise ConfigError(
            f"{name} holds no recorded answers ({why}): run it with a key and save it, then share the .ipynb"
        )
    from . import replay_store  # sqlite3 is imported when the store is first used

    return replay_store.add(rows, cfg)


def _asked(q: Question) -> dict[str, Any]:
    """What a record says was asked, for the question ``q``."""
    o = q.options
    return {
        "model": o.model or "",
        "prompt": redact(q.prompt),
        "system": redact(o.system or ""),
        "detail": o.detail,
        "max_tokens": o.max_tokens,
        "temperature": o.temperature,
        "seed": o.seed,
        "json": bool(q.structured),
        "images": [image_identity(img) for img in q.images],
    }


def _recorded(record: dict[str, Any]) -> dict[str, Any]:
    params = record.get("params") if isinstance(record.get("params"), dict) else {}
    images = record.get("images") if isinstance(record.get("images"), list) else []
    return {
        "model": record.get("model_asked") or record.get("model") or "",
        "prompt": record.get("prompt") or "",
        "system": params.get("system") or "",
        "detail": record.get("detail"),
        **{k: params.get(k) for k in ("max_tokens", "temperature", "seed")},
        "json": bool(params.get("json")),
        "images": [i.get("pixels_sha256") if isinstance(i, dict) else None for i in images],
    }


def differences(q: Question, record: dict[str, Any]) -> list[str]:
    """What differs between the question ``q`` and a recording: "prompt", "model", "detail", "system",
    an option's name, "the number of images", or "image N's sha256 (label)"."""
    asked, recorded = _asked(q), _recorded(record)
    found = [name for name in asked if name != "images" and asked[name] != recorded[name]]
    if len(asked["images"]) != len(recorded["images"]):
        found.append(f"the number of images ({len(asked['images'])}, recorded {len(recorded['images'])})")
    else:
        for i, (mine, theirs) in enumerate(zip(asked["images"], recorded["images"], strict=True), 1):
            if mine != theirs:
                found.append(f"image {i}'s sha256 ({redact(q.images[i - 1].source)})")
    return found


def unrecorded_line(q: Question, stored: list[dict[str, Any]] | None = None) -> str:
    """The one line for a question ``replay_only`` will not send: what differs from the nearest recording.

    ``stored`` (default: the records in the replay store) are the recordings to compare with.
    """
    if not q.options.cache:
        return "no recorded answer for this cell: the replay cache is off for it (--no-cache), and replay_only never sends"
    if stored is None:
        from . import replay_store

        stored = replay_store.records(q.cfg)
    head = "no recorded answer for this cell"
    tail = "replay_only is on, so nothing was sent"
    if not stored:
        return (
            f"{head}: no recordings are loaded ({tail}); load them with vision_magic.replay_from('lesson.ipynb') "
            "or vision_magic.cache.load(file)"
        )
    nearest = min((differences(q, r) for r in stored), key=len)
    if not nearest:
        return f"{head}: it differs from the recording in the conversation before it or the schema ({tail})"
    if len(nearest) <= NEAR:
        return f"{head}: it differs from the recording in {', '.join(nearest)} ({tail})"
    return f"{head}: none of the {len(stored)} recordings is near it ({tail})"


def refuse_unrecorded(q: Question) -> None:
    """Raise the one line of :func:`unrecorded_line` when ``replay_only`` is on (the question was not
    replayed, so it would be sent)."""
    if q.cfg.replay_only:
        raise VisionMagicError(unrecorded_line(q))
