"""Batches: one question about each of many images, concurrently, into a pandas DataFrame.

asyncio over ``openai.AsyncOpenAI`` with at most ``concurrency`` requests in flight; 429, 408 and 5xx
answers and dropped connections are retried with exponential backoff that honours ``Retry-After``; a failed
item records its error in its row and never aborts the batch; items already in the replay cache are not sent,
so re-running after a crash finishes only what is missing.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import SourceError, VisionMagicError, one_line, redact
from .answer import Answer
from .options import AskOptions, with_option_keywords


def expand_sources(sources: Any) -> list[tuple[str, Any]]:
    """(label, source) per image of a glob, directory, list, pandas Series (a DataFrame column) or one source.

    A spec that resolves to nothing (no such file, a glob without matches) becomes one item whose source is
    a :class:`SourceError`, so it gets its own error row.

    Examples
    --------
    >>> expand_sources(["a.png", "https://example.org/b.png"])[1]
    ('https://example.org/b.png', 'https://example.org/b.png')
    """
    from ..images.resolve import labelled_files

    if type(sources).__name__ == "DataFrame":
        raise VisionMagicError("ask_many takes one DataFrame column (e.g. df['path']), not a whole DataFrame")
    if type(sources).__name__ == "Series":
        name = sources.name if sources.name is not None else "row"
        return [
            (os.fspath(v) if isinstance(v, (str, os.PathLike)) else f"{name}[{idx}]", _single(v))
            for idx, v in sources.items()
        ]
    if isinstance(sources, (str, os.PathLike)):
        text = os.fspath(sources)
        if text.startswith(("http://", "https://", "data:")):
            label = text if not text.startswith("data:") else f"data URL ({len(text)} chars)"
            return [(label, text)]
        try:
            return [(label, p) for p, label in labelled_files(text, text)]
        except SourceError as e:
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


@with_option_keywords
async def ask_many_async(
    prompt: str,
    sources: Any,
    *,
    concurrency: int = 8,
    retries: int = 6,
    progress: bool = True,
    **options: Any,
) -> Any:
    """The coroutine behind :func:`ask_many` (await it from async code).

    Examples
    --------
    >>> df = await vision_magic.engine.batch.ask_many_async("Describe.", ["a.png", "b.png"])  # doctest: +SKIP
    """
    import pandas as pd

    from .endpoints import make_client
    from .finish import finish, new_answer, replay, store_key
    from .question import build_question
    from .send import Budget, send_with_retries
    from .session import current

    opts = AskOptions.from_kwargs(**options).replace(stream=False)
    if opts.dry_run:
        raise VisionMagicError("ask_many sends nothing in a dry run: use estimate(...) (or --cost) instead")
    if concurrency < 1:
        raise VisionMagicError(f"concurrency must be at least 1, not {concurrency}")
    cfg = current().settings
    items = expand_sources(sources)
    answers: list[Answer | None] = [None] * len(items)
    errors: list[str | None] = [None] * len(items)
    semaphore = asyncio.Semaphore(concurrency)
    clients: list[Any] = []
    client_lock = asyncio.Lock()
    bar = _progress_bar(len(items), progress)

    async def client_for(q: Any) -> Any:
        async with client_lock:  # made on the first miss: a fully cached batch needs no key
            if not clients:
                clients.append(make_client(cfg, q.endpoint, asynchronous=True, max_retries=0))
            return clients[0]

    async def one(i: int, label: str, src: Any) -> None:
        async with semaphore:
            try:
                if isinstance(src, SourceError):
                    raise src
                q = await asyncio.to_thread(  # decoding and resizing stay off the event loop
                    build_question, prompt, [src], opts, labels=[label], cfg=cfg
                )
                answer = answers[i] = new_answer(q)
                key = store_key(q)
                if replay(q, answer, key):
                    return
                budget = Budget.from_settings(cfg, retries=retries)
                await send_with_retries(await client_for(q), q.body, answer, budget)
                finish(q, answer, key)
            except Exception as e:  # one bad item never aborts the batch
                errors[i] = one_line(e)
            finally:
                bar.update(1)

    try:
        await asyncio.gather(*(one(i, label, src) for i, (label, src) in enumerate(items)))
    finally:
        bar.close()
        for c in clients:
            await c.close()
    rows = [_row(label, answers[i], errors[i]) for i, (label, _src) in enumerate(items)]
    columns = ["source", "answer"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in _TAIL]
    return pd.DataFrame(rows, columns=[*columns, *_TAIL])


def ask_many(prompt: str, sources: Any, **kwargs: Any) -> Any:
    """Ask the same question about each image; one row per image, in input order.

    Parameters
    ----------
    prompt : the question, asked about each image on its own.
    sources : a glob (``"figs/*.png"``), a directory, a list of sources, or a pandas Series (a DataFrame
        column) of paths/URLs/images.
    concurrency : at most this many requests in flight.
    retries : retries per item of 429/5xx/408 answers and dropped connections (honouring Retry-After).
    progress : show a progress bar (a widget in Jupyter, text elsewhere).
    **options : as for :func:`vision_magic.ask` (model, detail, system, max_tokens, ...; defaults from
        ``%config VisionMagic``). ``schema``: structured outputs, its fields become columns; ``json_mode``: the
        keys of each answer's object become columns; ``cache=False`` bypasses the replay store (cached items
        are not sent); ``refresh=True`` asks again and stores the new answers.

    Returns
    -------
    pandas.DataFrame with columns ``source, answer, [fields...], tokens, cost, error, replayed``; a failed
    item has its one-line ``error`` and no answer.

    Examples
    --------
    >>> df = vision_magic.ask_many("Is there a legend?", "figures/*.png", concurrency=16)  # doctest: +SKIP
    >>> df[["source", "answer", "error"]].head()  # doctest: +SKIP
    """
    coro = ask_many_async(prompt, sources, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Inside Jupyter the kernel's loop is already running: run the batch on its own loop in a worker thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="vision_magic-batch") as pool:
        return pool.submit(asyncio.run, coro).result()


ask_many.__signature__ = inspect.signature(ask_many_async)  # type: ignore[attr-defined]


_TAIL = ("tokens", "cost", "error", "replayed")


def _row(label: str, answer: Answer | None, error: str | None) -> dict[str, Any]:
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


def _progress_bar(total: int, enabled: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the install

        class _Null:
            def update(self, n: int) -> None: ...

            def close(self) -> None: ...

        return _Null()
    return tqdm(total=total, desc="ask_many", unit="image", disable=not enabled, leave=True)
