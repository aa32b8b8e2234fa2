"""Batches: one question about each of many images, concurrently, into a pandas DataFrame.

asyncio over ``openai.AsyncOpenAI`` with at most ``concurrency`` requests in flight; 429, 408 and 5xx
answers and dropped connections are retried with exponential backoff that honours ``Retry-After``; a failed
item records its error in its row and never aborts the batch; items already in the replay cache are not sent,
so re-running after a crash finishes only what is missing. An interrupt (the stop button, Ctrl-C) cancels the
requests in flight within a moment and keeps the finished rows (:class:`Batch`, :func:`ask_many`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

from ..errors import APIError, BatchInterrupted, SourceError, VisionMagicError, one_line, redact
from .answer import Answer
from .options import AskOptions, with_option_keywords
from .outputs import is_reference, reference_items
from .record import VERSION


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


NOT_RUN = "not run: interrupted"
WIND_DOWN = 2.0  # seconds an interrupted batch gets to cancel its requests and close its clients


class Batch:
    """One batch: its items, what is known of each so far, and its table, complete or partial.

    An item's answer or error is recorded the moment it is finished (a sent answer is also stored in the
    replay cache then), so an interrupted batch keeps every finished row and re-running it sends only the rest.
    """

    @with_option_keywords
    def __init__(
        self,
        prompt: str,
        sources: Any,
        *,
        concurrency: int = 8,
        retries: int = 6,
        progress: bool = True,
        **options: Any,
    ) -> None:
        import pandas  # noqa: F401 - now (~1 s the first time), not when an interrupt needs the table

        opts = AskOptions.from_kwargs(**options).replace(stream=False)
        if opts.dry_run:
            raise VisionMagicError(
                "ask_many sends nothing in a dry run: use estimate(...) (or --cost) instead"
            )
        if concurrency < 1:
            raise VisionMagicError(f"concurrency must be at least 1, not {concurrency}")
        self.prompt, self.opts = prompt, opts
        self.concurrency, self.retries, self.progress = concurrency, retries, progress
        self.items = expand_sources(sources)
        self.answers: list[Answer | None] = [None] * len(self.items)
        self.errors: list[str | None] = [None] * len(self.items)
        self.finished: list[bool] = [False] * len(self.items)

    async def run(self) -> Any:
        """Ask about every item, at most ``concurrency`` at a time; the table, also kept as the session's
        ``last_table``. Cancelled, it cancels the requests in flight, sends nothing more, closes its progress
        bar and clients, and still keeps the partial table."""
        from .session import current

        cfg = current().settings
        semaphore = asyncio.Semaphore(self.concurrency)
        clients = _Clients(cfg)
        bar = _progress_bar(len(self.items), self.progress)

        async def one(i: int, label: str, src: Any) -> None:
            async with semaphore:
                try:
                    await self._ask(i, label, src, cfg, clients)
                except Exception as e:  # one bad item never aborts the batch
                    self.errors[i] = one_line(e)
                self.finished[i] = True
                bar.update(1)

        tasks = [asyncio.ensure_future(one(i, label, src)) for i, (label, src) in enumerate(self.items)]
        try:
            await asyncio.gather(*tasks)
        finally:
            pending = [t for t in tasks if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
            table = self.keep()
            bar.close()
            await clients.close()
        return table

    async def _ask(self, i: int, label: str, src: Any, cfg: Any, clients: _Clients) -> None:
        from .finish import finish, new_answer, replay, store_key
        from .question import build_question
        from .recordings import refuse_unrecorded
        from .send import Budget, send_with_retries
        from .server_models import advise

        if isinstance(src, SourceError):
            raise src
        started = time.monotonic()
        q = await asyncio.to_thread(  # decoding and resizing stay off the event loop
            build_question, self.prompt, [src], self.opts, labels=[label], cfg=cfg
        )
        answer = self.answers[i] = new_answer(q)
        key = store_key(q)
        if replay(q, answer, key, started):
            return
        refuse_unrecorded(q)  # replay_only: this row's error, nothing sent
        budget = Budget.from_settings(cfg, retries=self.retries)
        try:
            await send_with_retries(await clients.get(q), q.body, answer, budget, api=q.endpoint.api)
        except APIError as e:  # the models the server offers, a 413's cause (may ask GET /v1/models once)
            raise await asyncio.to_thread(advise, e, q) from None
        finish(q, answer, key, started)

    def table(self) -> Any:
        """One row per item, in input order; an unfinished item has the error ``"not run: interrupted"``."""
        import pandas as pd

        rows = [
            _row(label, self.answers[i], self.errors[i]) if self.finished[i] else _row(label, None, NOT_RUN)
            for i, (label, _src) in enumerate(self.items)
        ]
        columns = ["source", "answer"]
        for row in rows:
            columns += [k for k in row if k not in columns and k not in _TAIL]
        return pd.DataFrame(rows, columns=[*columns, *_TAIL])

    def keep(self) -> Any:
        """The table, kept as the session's ``last_table`` with its answers' records beside it (not in
        ``table.attrs``: pandas deep-copies those on every operation on the table)."""
        from .session import current

        session = current()
        session.last_table, session.last_table_records = self.table(), self.records()
        return session.last_table

    def records(self) -> dict[str, Any]:
        """The records of the finished answers (:func:`vision_magic.engine.record.record_of`), as the table's
        output metadata: ``{"version": 1, "answers": [record, ...]}`` (kept as the session's ``last_table_records``)."""
        done = [
            a.record for i, a in enumerate(self.answers) if self.finished[i] and a is not None and a.record
        ]
        return {"version": VERSION, "answers": done}

    def run_blocking(self) -> Any:
        """Run the batch from synchronous code; its table. Inside Jupyter (the kernel's loop is running) the
        batch runs on its own loop in a worker thread. An interrupt (the stop button, Ctrl-C) cancels it and
        raises :class:`~vision_magic.errors.BatchInterrupted`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # 3.11+: Ctrl-C cancels the batch's task; 3.10: it stops the loop and asyncio.run cancels the rest.
            run = asyncio.run
        else:
            run = _run_on_worker_thread
        try:
            return run(self.run())
        except KeyboardInterrupt:
            raise self.interrupted() from None

    def interrupted(self) -> BatchInterrupted:
        """The error of an interrupted batch, holding the partial table (also kept as ``last_table``)."""
        from .session import current

        session = current()
        table = self.keep()
        cache = self.opts.resolved(session.settings).cache
        answered = int(table["error"].isna().sum())
        return BatchInterrupted(
            table, answered, len(self.items), resumable=bool(cache and not self.opts.refresh)
        )


class _Clients:
    """The batch's one async client, made on the first miss (a fully cached batch needs no key)."""

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def get(self, q: Any) -> Any:
        from .endpoints import make_client

        async with self._lock:
            if self._client is None:
                self._client = make_client(self._cfg, q.endpoint, asynchronous=True, max_retries=0)
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class _LoopThread:
    """Runs one coroutine on a new event loop in a daemon thread; :meth:`cancel` works from any thread."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self._settled = threading.Event()
        self._outcome: tuple[bool, Any] = (False, RuntimeError("the batch's thread ended without a result"))
        threading.Thread(target=self._thread, name="vision_magic-batch", daemon=True).start()

    def _thread(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self._settled.set()

    async def _main(self) -> None:
        with self._lock:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            if self._cancelled:
                self._task.cancel()
        try:
            self._outcome = (True, await self._coro)
        except BaseException as e:  # noqa: BLE001 - handed over to the waiting thread
            self._outcome = (False, e)
        finally:
            self._settled.set()

    def wait(self) -> Any:
        """The coroutine's result (or exception), waited for in slices that a KeyboardInterrupt can break."""
        while not self._settled.wait(0.1):
            pass
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def cancel(self, wind_down: float = WIND_DOWN) -> None:
        """Cancel the coroutine, then give it up to ``wind_down`` seconds to finish cancelling."""
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed: nothing is left to cancel
                    self._loop.call_soon_threadsafe(self._task.cancel)
        with contextlib.suppress(KeyboardInterrupt):  # a second press ends this wait, not the clean-up
            self._settled.wait(wind_down)


def _run_on_worker_thread(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on its own loop in a worker thread while this thread waits; a KeyboardInterrupt here (the
    kernel's stop button) cancels it at once, instead of waiting for every request to be sent."""
    worker = _LoopThread(coro)
    try:
        return worker.wait()
    except KeyboardInterrupt:
        worker.cancel()
        raise


async def ask_many_async(prompt: str, sources: Any, **kwargs: Any) -> Any:
    """The coroutine behind :func:`ask_many` (await it from async code). Cancelling it cancels the requests in
    flight; the rows finished so far are kept in ``vision_magic.last_table``.

    Examples
    --------
    >>> df = await vision_magic.engine.batch.ask_many_async("Describe.", ["a.png", "b.png"])  # doctest: +SKIP
    """
    return await Batch(prompt, sources, **kwargs).run()


ask_many_async.__signature__ = inspect.signature(Batch).replace(return_annotation="pandas.DataFrame")  # type: ignore[attr-defined]


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
    item has its one-line ``error`` and no answer. ``vision_magic.last_table`` holds it too.

    Raises
    ------
    BatchInterrupted : on an interrupt (the stop button, Ctrl-C): the requests in flight are cancelled and
        nothing more is sent; ``.table`` (and ``vision_magic.last_table``) holds the finished rows, the others
        with the error ``"not run: interrupted"``. Re-running sends only those: finished answers are replayed.

    Examples
    --------
    >>> df = vision_magic.ask_many("Is there a legend?", "figures/*.png", concurrency=16)  # doctest: +SKIP
    >>> df[["source", "answer", "error"]].head()  # doctest: +SKIP
    """
    return Batch(prompt, sources, **kwargs).run_blocking()


ask_many.__signature__ = ask_many_async.__signature__  # type: ignore[attr-defined]


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
