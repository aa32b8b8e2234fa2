"""The items of a batch and the rows of its table: one (label, source) per image of a glob, directory, list or
Series, and one row per image (``ask_many``'s live batches, :mod:`vision_magic.engine.batch`, and the Batch
API's, :mod:`vision_magic.engine.batch_api`, share them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import SourceError, VisionMagicError, redact
from .answer import Answer
from .outputs import is_reference, reference_items


def expand_sources(sources: Any) -> list[tuple[str, Any]]:
    """(label, source) per image of a glob, directory, list, pandas Series (a DataFrame column) or one source.

    A spec that resolves to nothing (no such file, a glob without matches) becomes one item whose source is
    a :class:`SourceError`, so it gets its own error row.

    Examples
    --------
    >>> expand_sources(["a.png", "https://example.org/b.png"])[1]
    ('https://example.org/b.png', 'https://example.org/b.png')
    """
    from ..images.regions import split_crop
    from ..images.resolve import labelled_files

    if type(sources).__name__ == "DataFrame":
        raise VisionMagicError("ask_many takes one DataFrame column (e.g. df['path']), not a whole DataFrame")
    if type(sources).__name__ == "Series":
        name = sources.name if sources.name is not None else "row"
        return [
            (os.fspath(v) if isinstance(v, (str, os.PathLike)) else f"{name}[{idx}]", _single(v))
            for idx, v in sources.items()
        ]
    if is_reference(sources):  # @N: each image of an earlier cell's outputs is its own row
        from .session import current

        return reference_items(sources, current().output_store())
    if isinstance(sources, (str, os.PathLike)):
        text = os.fspath(sources)
        if text.startswith(("http://", "https://", "data:")):
            label = text if not text.startswith("data:") else f"data URL ({len(text)} chars)"
            return [(label, text)]
        try:
            return [(label, p) for p, label in labelled_files(text, text)]
        except SourceError as e:
            if split_crop(text) is not None:
                return [(text, text)]  # `scan.png[0,0,0.5,0.5]`: one part of one file, read by the converter
            return [(text, e)]
    if (
        isinstance(sources, Iterable)
        and not isinstance(sources, (bytes, bytearray))
        and not _is_image(sources)
    ):
        out: list[tuple[str, Any]] = []
        for i, item in enumerate(sources):
            if isinstance(item, (str, os.PathLike)):
                out.extend(expand_sources(item))
            else:
                out.append((f"image {i}", item))
        return out
    return [("image 0", sources)]


def _single(v: Any) -> Any:
    return Path(v) if isinstance(v, os.PathLike) else v


def _is_image(obj: Any) -> bool:
    from ..images.resolve import source_kind

    return source_kind(obj) is not None


_TAIL = ("tokens", "cost", "error", "replayed")


def table_of(rows: list[dict[str, Any]]) -> Any:
    """The DataFrame of rows made by :func:`table_row`: ``source, answer, [fields...], tokens, cost, error,
    replayed`` (the Batch API's results, :mod:`vision_magic.engine.batch_api`, use it too)."""
    import pandas as pd

    columns = ["source", "answer"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in _TAIL]
    return pd.DataFrame(rows, columns=[*columns, *_TAIL])


def table_row(label: str, answer: Answer | None, error: str | None) -> dict[str, Any]:
    """One row of the table: the source's label, the answer (and its structured fields), tokens, cost, the
    one-line error of a failed item, and whether it was replayed."""
    row: dict[str, Any] = {"source": redact(label), "answer": None}
    if answer is not None and answer.text and not error:
        row["answer"] = answer.text
    data = answer.data if answer is not None else None
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    if isinstance(data, dict):
        for k, v in data.items():
            row[k if k not in ("source", "answer", *_TAIL) else f"data_{k}"] = v
    elif data is not None:
        row["data"] = data
    if answer is not None and answer.error and not error:
        error = answer.error
    row["tokens"] = (answer.usage or {}).get("total_tokens") if answer is not None and not error else None
    row["cost"] = answer.cost if answer is not None and not error else None
    row["error"] = error
    row["replayed"] = bool(answer is not None and answer.replayed)
    return row
