"""Thousands of images through OpenAI's Batch API (``ask_many(..., via="batch")``), or vLLM's ``run-batch``.

:func:`submit` prepares each image exactly as a live request would (one image in memory at a time), writes the
requests as JSON Lines (one ``custom_id`` per image, the same on every run: its position and its replay key),
splits them into as many input files as the endpoint's limits need (``batch_max_requests``,
``batch_max_bytes``: 50,000 requests and 200 MB at OpenAI), uploads them (``/v1/files``, purpose ``batch``) and
creates the batches (``/v1/batches``, endpoint ``/v1/chat/completions``, window ``24h``). It returns a
:class:`BatchJob` at once.

The batch ids are kept in the replay cache's database (:func:`vision_magic.engine.replay_store.add_batch`), under
the job's identity (the endpoint and every image's ``custom_id``): running the same cell again, after a kernel
restart or on another day, reattaches to them instead of submitting again. Images whose answer is already in
the replay cache are not sent, and the answers a batch brings back are stored there, so a later live
``ask_many`` over the same images sends nothing. A job whose batches all ended without finishing (expired,
cancelled, failed) is submitted again on the next run, for the images still without an answer.

:func:`batch_file` writes the same JSON Lines for one's own GPUs (``vllm run-batch``) and
:func:`read_batch_output` reads an output file of either engine into the same DataFrame.

Examples
--------
>>> job = vision_magic.ask_many("Is there a legend?", "figures/", via="batch")  # doctest: +SKIP
>>> job  # doctest: +SKIP
<BatchJob 1 batch, in_progress: 120/5000 done, 0 failed>
>>> df = job.wait().result()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import APIError, SourceError, VisionMagicError, one_line, redact
from ..images.profiles import ModelProfile, cost, profile_for
from .answer import Answer
from .options import AskOptions, with_option_keywords

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
POLL_START = 2.0  # seconds between the first polls of .wait(); then 1.5 times longer each time, up to:
POLL_MAX = 60.0
EXPIRED = (
    "expired: the Batch API's 24 h window ended before this request ran (run the cell again to resubmit it)"
)
CANCELLED = "cancelled: the batch was cancelled before this request ran (run the cell again to resubmit it)"
NOT_DONE = "not finished yet: the batch is still running (job.wait(), then job.result())"
NO_OUTPUT = "no answer in the batch's output files"


@dataclass
class Item:
    """One image of a job, without its pixels: what a row needs once the answer is back."""

    index: int
    label: str
    custom_id: str
    key: str | None = None  # its replay key (None: it could not be prepared)
    error: str | None = None  # why it was not sent (an unreadable image, a request too large)
    question: dict[str, Any] | None = None  # vision_magic.engine.record.question_record
    profile: ModelProfile | None = None
    model: str = ""


@dataclass
class Part:
    """One input file being written: its path, how many requests and bytes it holds."""

    path: Path
    requests: int = 0
    nbytes: int = 0


def custom_id(index: int, key: str) -> str:
    """The request's ``custom_id``: its position and the start of its replay key (the same on every run).

    Examples
    --------
    >>> custom_id(7, "ab" * 32)
    'vm-000007-abababababababababababab'
    """
    return f"vm-{index:06d}-{key[:24]}"


def request_line(cid: str, body: dict[str, Any]) -> str:
    """One line of a Batch API input file (with its newline).

    Examples
    --------
    >>> request_line("vm-1", {"model": "m", "messages": []})
    '{"custom_id": "vm-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}\\n'
    """
    return (
        json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body}, ensure_ascii=False)
        + "\n"
    )


def prepared_lines(
    prompt: str, sources: Any, options: AskOptions, cfg: Any, progress: bool = False
) -> Iterator[tuple[Item, dict[str, Any] | None]]:
    """(item, request body) per image of ``sources``, prepared one at a time as a live ``ask_many`` would (the
    body is None when the image could not be prepared: the item holds the error); ``progress``: a bar."""
    from .rows import expand_sources

    opts = options.replace(stream=False)  # the body of a live ask_many: the same replay key
    expanded = expand_sources(sources)
    with _progress_bar(len(expanded), progress, "preparing", "image") as bar:
        for item, body in _prepared(prompt, expanded, opts, cfg):
            yield item, body
            del body
            bar.update(1)


def _prepared(
    prompt: str, expanded: list[tuple[str, Any]], opts: AskOptions, cfg: Any
) -> Iterator[tuple[Item, dict[str, Any] | None]]:
    """:func:`prepared_lines` without the bar."""
    from .question import build_question
    from .record import question_record, request_key

    for i, (label, src) in enumerate(expanded):
        try:
            if isinstance(src, SourceError):
                raise src
            q = build_question(prompt, [src], opts, labels=[label], cfg=cfg, remember=False)
        except Exception as e:  # one bad image is a row with its error; the others still run
            yield Item(i, redact(label), f"vm-{i:06d}-unprepared", error=one_line(e)), None
            continue
        key = request_key(q)
        item = Item(i, redact(label), custom_id(i, key), key, None, question_record(q), q.profile, q.model)
        body = q.body
        del q  # not held while the next image is prepared
        yield item, body
        del body


class Writer:
    """JSON Lines input files in ``folder``: a new file whenever the next line would pass ``max_requests`` or
    ``max_bytes``. Holds one line in memory at a time."""

    def __init__(self, folder: Path, max_requests: int, max_bytes: int) -> None:
        self.folder, self.max_requests, self.max_bytes = folder, max_requests, max_bytes
        self.parts: list[Part] = []
        self._out: Any = None

    def add(self, data: bytes) -> str | None:
        """Write one line; the reason when it is too large for any file (then it is not written)."""
        if len(data) > self.max_bytes:
            return (
                f"this request is {len(data):,} bytes, more than a batch input file may hold "
                f"({self.max_bytes:,}): use a lower detail"
            )
        part = self.parts[-1] if self.parts else None
        if part is None or part.requests >= self.max_requests or part.nbytes + len(data) > self.max_bytes:
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            part = Part(self.folder / f"batch_input_{len(self.parts):03d}.jsonl")
            self.parts.append(part)
            self._out = open(part.path, "wb")  # noqa: SIM115 - closed by the next part or close()
        self._out.write(data)
        part.requests += 1
        part.nbytes += len(data)
        return None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def write_lines(
    lines: Iterable[tuple[Item, dict[str, Any] | None]], writer: Writer, skip: Any = None
) -> list[Item]:
    """Write the requests of ``lines`` with ``writer``; every item (sent or not). ``skip(item)``: True for an
    item not to send (its answer is in the replay cache)."""
    items: list[Item] = []
    try:
        for item, body in lines:
            items.append(item)
            if body is None or (skip is not None and skip(item)):
                continue
            data = request_line(item.custom_id, body).encode("utf-8")
            del body  # the image's base64 goes as soon as its line is written
            item.error = writer.add(data)
    finally:
        writer.close()
    return items


def rewrite(parts: list[Part], drop: set[str], writer: Writer) -> list[Part]:
    """The lines of ``parts`` whose ``custom_id`` is not in ``drop``, written again with ``writer``."""
    try:
        for part in parts:
            with open(part.path, "rb") as src:
                for data in src:
                    if json.loads(data)["custom_id"] not in drop:
                        writer.add(data)
    finally:
        writer.close()
    return writer.parts


def job_identity(base_url: str, items: list[Item]) -> str:
    """The job's identity: the endpoint and every image's ``custom_id`` (or label, for one not prepared)."""
    from .record import public_endpoint

    blob = json.dumps([public_endpoint(base_url), [i.custom_id if i.key else i.label for i in items]])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@with_option_keywords
def submit(
    prompt: str,
    sources: Any,
    *,
    progress: bool = True,
    label: str | None = None,
    concurrency: int | None = None,
    retries: int | None = None,
    **options: Any,
) -> BatchJob:
    """Hand one question about each image of ``sources`` to the Batch API (or reattach to the batches an
    earlier run of the same call submitted); a :class:`BatchJob` at once. ``ask_many(..., via="batch")``.

    ``concurrency`` and ``retries`` are live ``ask_many``'s and mean nothing here (the server schedules).

    Examples
    --------
    >>> job = submit("Is there a legend?", "figures/*.png")  # doctest: +SKIP
    >>> job.wait().result().head()  # doctest: +SKIP
    """
    from . import replay_store
    from .endpoints import endpoint_in_force
    from .session import current

    cfg = current().settings
    opts = AskOptions.from_kwargs(**options).replace(via="batch")
    if opts.dry_run:
        raise VisionMagicError(
            "ask_many sends nothing in a dry run: use estimate(..., via='batch') (or --cost --batch)"
        )
    resolved = opts.resolved(cfg)
    endpoint = endpoint_in_force(cfg)
    if not endpoint.batch_api:
        raise VisionMagicError(
            f"{endpoint.name or endpoint.server} at {endpoint.base_url} has no Batch API: use ask_many without "
            "via='batch', or vision_magic.batch_file for vllm run-batch (or set batch_api in "
            "%config VisionMagic.endpoints)"
        )
    use_cache = bool(resolved.cache) and not opts.refresh

    def cached(item: Item) -> bool:
        return use_cache and item.key is not None and replay_store.get(item.key, cfg) is not None

    def writer(folder: Path) -> Writer:
        return Writer(folder, endpoint.batch_max_requests, endpoint.batch_max_bytes)

    def named(items: list[Item]) -> str:
        return (
            label or f"{' '.join(prompt.split())[:60]} ({len(items)} image{'s' if len(items) != 1 else ''})"
        )

    call = call_fingerprint(prompt, sources, resolved, endpoint, cfg)
    found = replay_store.job_of(call, cfg) if call is not None and not opts.refresh else None
    if found is not None:  # the same call over unchanged files: reattach without preparing any image
        items = items_from(found[1], cfg)
        known = replay_store.batches_of(found[0], cfg)
        if known:
            earlier = BatchJob(
                items, [r["batch_id"] for r in known], opts, cfg, label=named(items), job=found[0]
            )
            earlier.reattached, earlier.progress = True, progress
            if not earlier.refresh().ended_unfinished():
                return earlier

    with tempfile.TemporaryDirectory(prefix="vision_magic-batch-") as tmp:
        first = writer(Path(tmp) / "input")
        items = write_lines(prepared_lines(prompt, sources, opts, cfg, progress), first, skip=cached)
        parts = first.parts
        job = job_identity(endpoint.base_url, items)
        label = named(items)
        if call is not None:
            replay_store.add_job(call, job, items_blob(items), cfg)
        known = [] if opts.refresh else replay_store.batches_of(job, cfg)
        if known:
            earlier = BatchJob(items, [row["batch_id"] for row in known], opts, cfg, label=label, job=job)
            earlier.reattached, earlier.progress = True, progress
            earlier.refresh()
            if not earlier.ended_unfinished():
                return earlier
            earlier.store_answers()  # keep what the ended batches answered; submit the rest again
            parts = rewrite(parts, {i.custom_id for i in items if cached(i)}, writer(Path(tmp) / "again"))
        attempt = max((row["attempt"] for row in known), default=0) + 1
        handle = BatchJob(items, [], opts, cfg, label=label, job=job, progress=progress)
        handle.batch_ids = upload(handle, parts, attempt, endpoint)
    return handle


def call_fingerprint(prompt: str, sources: Any, options: AskOptions, endpoint: Any, cfg: Any) -> str | None:
    """A SHA-256 of the call (prompt, resolved options, endpoint, image settings, and each file's path, size,
    mtime and inode, or each link), or None when a source is not a file or link (an in-memory image must be
    prepared to be known). No image is read."""
    from .. import __version__
    from . import structured
    from .rows import expand_sources

    entries: list[Any] = []
    for label, src in expand_sources(sources):
        if isinstance(src, SourceError):
            entries.append(["missing", label])
            continue
        if not isinstance(src, (str, os.PathLike)):
            return None
        text = os.fspath(src)
        if text.startswith(("http://", "https://", "data:")):
            entries.append(["link", hashlib.sha256(text.encode("utf-8")).hexdigest()])
            continue
        try:
            st = os.stat(text)
        except OSError:
            return None
        entries.append(["file", os.path.abspath(text), label, st.st_size, st.st_mtime_ns, st.st_ino])
    asked = {
        "version": __version__,
        "prompt": prompt,
        "options": {k: repr(v) for k, v in sorted(options.given().items()) if k not in ("refresh", "cache")},
        "format": structured.response_format(options.schema, options.json_mode),
        "endpoint": repr(endpoint),
        "image": [cfg.jpeg_quality, repr(sorted(cfg.profiles.items())), os.getcwd()],
        "sources": entries,
    }
    return hashlib.sha256(json.dumps(asked, default=str).encode("utf-8")).hexdigest()


def items_blob(items: list[Item]) -> bytes:
    """The items of a job as compressed JSON (what a re-run needs of them, no pixels)."""
    rows = [[i.index, i.label, i.custom_id, i.key, i.error, i.model, i.question] for i in items]
    return zlib.compress(json.dumps(rows, ensure_ascii=False).encode("utf-8"))


def items_from(blob: bytes, cfg: Any) -> list[Item]:
    """The items kept by :func:`items_blob`, their model profiles looked up again."""
    items = []
    for index, label, cid, key, error, model, question in json.loads(zlib.decompress(blob)):
        profile = profile_for(model, cfg.profiles) if key else None
        items.append(Item(index, label, cid, key, error, question, profile, model))
    return items


def upload(handle: BatchJob, parts: list[Part], attempt: int, endpoint: Any) -> list[str]:
    """Upload each input file and create its batch; then remember the batches in the replay cache's database.

    All or nothing: when an upload or a create fails (or the stop button is pressed) part-way, the batches
    created so far are cancelled and nothing is remembered, so the next run submits the whole job again
    instead of reattaching to a part of it.
    """
    from . import replay_store
    from .record import public_endpoint

    client = handle.client()
    rows: list[dict[str, Any]] = []
    try:
        for n, part in enumerate(parts):
            with api_errors(endpoint.base_url):
                with open(part.path, "rb") as f:
                    uploaded = client.files.create(file=(part.path.name, f), purpose="batch")
                created = client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=ENDPOINT,
                    completion_window=WINDOW,
                    metadata={
                        "vision_magic_job": handle.job[:64],
                        "part": str(n),
                        "label": handle.label[:500],
                    },
                )
            handle.states[created.id] = created
            rows.append(
                {
                    "batch_id": created.id,
                    "job": handle.job,
                    "attempt": attempt,
                    "part": n,
                    "endpoint": public_endpoint(endpoint.base_url),
                    "created": time.time(),
                    "status": created.status,
                    "total": part.requests,
                    "completed": 0,
                    "failed": 0,
                    "label": handle.label,
                    "input_file_id": uploaded.id,
                }
            )
    except BaseException:
        for row in rows:  # best effort: a half-submitted job is not left running unseen
            with contextlib.suppress(Exception):
                client.batches.cancel(row["batch_id"])
        raise
    for row in rows:
        replay_store.add_batch(row, handle.cfg)
    return [row["batch_id"] for row in rows]


@contextlib.contextmanager
def api_errors(base_url: str) -> Iterator[None]:
    """Turn an SDK error into one :class:`APIError` line (a server without a Batch API says so)."""
    try:
        yield
    except VisionMagicError:
        raise
    except Exception as e:
        from .send import describe_error

        err = describe_error(e, base_url)
        if err.status == 404:
            err = APIError(
                f"{err}: this server may have no Batch API; use ask_many without via='batch', or "
                "vision_magic.batch_file for vllm run-batch",
                404,
            )
        raise err from None


@dataclass
class Outcome:
    """What the output and error files say of one request: its answer body, or its error line."""

    body: dict[str, Any] | None = None
    error: str | None = None


class BatchJob:
    """The handle of one job on the Batch API: its batches' progress, waiting, the results, cancelling.

    Attributes
    ----------
    batch_ids : the ids of its batches (one per input file).
    reattached : True when this run found the batches an earlier run submitted (nothing was uploaded).
    label : what :func:`batches` calls it.

    Examples
    --------
    >>> job = vision_magic.ask_many("Describe.", "photos/", via="batch")  # doctest: +SKIP
    >>> job.counts  # doctest: +SKIP
    {'total': 5000, 'completed': 1200, 'failed': 3}
    >>> job.wait().result()  # doctest: +SKIP
    """

    def __init__(
        self,
        items: list[Item],
        batch_ids: list[str],
        options: AskOptions,
        cfg: Any,
        *,
        label: str = "",
        job: str = "",
        progress: bool = True,
    ) -> None:
        self.items, self.batch_ids, self.options, self.cfg = items, list(batch_ids), options, cfg
        self.label, self.job, self.progress = label, job, progress
        self.reattached = False
        self.states: dict[str, Any] = {}  # batch id -> the server's Batch object, as last retrieved
        self._client: Any = None
        self._outcomes: dict[str, Outcome] | None = None
        self._table: Any = None
        self._records: list[dict[str, Any]] = []
        self._stored = False

    # -- the server's view ---------------------------------------------------------------------------

    def client(self) -> Any:
        """The client of the endpoint in force (made on first use)."""
        if self._client is None:
            from .endpoints import endpoint_in_force, make_client

            self._client = make_client(self.cfg, endpoint_in_force(self.cfg))
        return self._client

    @property
    def base_url(self) -> str:
        return str(self.client().base_url).rstrip("/")

    def refresh(self) -> BatchJob:
        """Ask the server how each unfinished batch is doing (and note it in the replay cache's database)."""
        from . import replay_store

        for bid in self.batch_ids:
            state = self.states.get(bid)
            if state is not None and state.status in TERMINAL:
                continue
            with api_errors(self.base_url):
                state = self.states[bid] = self.client().batches.retrieve(bid)
            replay_store.update_batch(bid, state.status, _counts(state), self.cfg)
        return self

    @property
    def status(self) -> str:
        """``completed`` when every batch completed; else the first unfinished batch's status, else how the
        first unfinished one ended (``failed``, ``expired``, ``cancelled``). No batches: ``completed``."""
        statuses = [self.states[b].status if b in self.states else "validating" for b in self.batch_ids]
        running = [s for s in statuses if s not in TERMINAL]
        if running:
            return running[0]
        ended = [s for s in statuses if s != "completed"]
        return ended[0] if ended else "completed"

    @property
    def done(self) -> bool:
        """True when every batch has ended (completed, failed, expired or cancelled)."""
        return self.status in TERMINAL

    def ended_unfinished(self) -> bool:
        """True when every batch has ended and at least one did not complete (a re-run submits the rest)."""
        return self.done and self.status != "completed"

    @property
    def counts(self) -> dict[str, int]:
        """Requests in all, completed and failed, summed over the batches (as the server last said)."""
        total = {"total": 0, "completed": 0, "failed": 0}
        for bid in self.batch_ids:
            if bid in self.states:
                for k, v in _counts(self.states[bid]).items():
                    total[k] += v
        return total

    # -- waiting and results -------------------------------------------------------------------------

    def wait(
        self, timeout: float | None = None, poll: float = POLL_START, progress: bool | None = None
    ) -> BatchJob:
        """Poll until every batch has ended, waiting ``poll`` seconds, then 1.5 times longer each time (at most
        :data:`POLL_MAX`), with a progress bar; ``timeout`` (seconds): give up waiting then (the batches go on).
        The stop button stops waiting, not the batches: run the cell again to reattach."""
        bar = _progress_bar(self.counts["total"], self.progress if progress is None else progress)
        started, delay = time.monotonic(), poll
        try:
            while True:
                self.refresh()
                counts = self.counts
                bar.total = counts["total"]
                bar.n = counts["completed"] + counts["failed"]
                bar.set_postfix_str(self.status, refresh=False)
                bar.refresh()
                if self.done:
                    self.store_answers()  # a later live ask_many over these images sends nothing
                    return self
                if timeout is not None and time.monotonic() - started + delay > timeout:
                    raise VisionMagicError(
                        f"the batch is still {self.status} after {timeout:g} s: wait again later (it goes on)"
                    )
                time.sleep(delay)
                delay = min(max(delay * 1.5, 0.0), POLL_MAX)
        except KeyboardInterrupt:
            raise VisionMagicError(
                "Stopped waiting; the batch goes on at the server: run the cell again to reattach"
            ) from None
        finally:
            bar.close()

    def cancel(self) -> BatchJob:
        """Cancel every unfinished batch (the server stops within minutes; what was answered is kept)."""
        for bid in self.batch_ids:
            state = self.states.get(bid)
            if state is not None and state.status in TERMINAL:
                continue
            with api_errors(self.base_url):
                self.states[bid] = self.client().batches.cancel(bid)
        return self

    def outcomes(self) -> dict[str, Outcome]:
        """``custom_id`` -> what the ended batches' output and error files say (read once)."""
        if self._outcomes is None:
            found: dict[str, Outcome] = {}
            for bid in self.batch_ids:
                state = self.states.get(bid)
                if state is None or state.status not in TERMINAL:
                    continue
                for file_id in (state.output_file_id, state.error_file_id):
                    if file_id:
                        with api_errors(self.base_url):
                            text = self.client().files.content(file_id).text
                        for line in text.splitlines():
                            if line.strip():
                                cid, outcome = outcome_of(json.loads(line))
                                found[cid] = outcome
            if not self.done:
                return found
            self._outcomes = found
        return self._outcomes

    def answers(self) -> list[tuple[Item, Answer | None, str | None]]:
        """(item, answer, error) per image, in input order."""
        from . import replay_store

        outcomes = self.outcomes()
        resolved = self.options.resolved(self.cfg)
        use_cache = bool(resolved.cache) and not self.options.refresh
        ended = self.status
        out: list[tuple[Item, Answer | None, str | None]] = []
        for item in self.items:
            if item.error or item.key is None:
                out.append((item, None, item.error))
                continue
            outcome = outcomes.get(item.custom_id)
            if outcome is not None and outcome.body is not None:
                out.append((item, answer_from(outcome.body, item, self.options), None))
                continue
            if outcome is not None:
                out.append((item, None, outcome.error))
                continue
            hit = replay_store.get(item.key, self.cfg) if use_cache else None
            if hit is not None:
                answer = Answer(text=hit["text"], model=hit["model"] or item.model, usage=hit["usage"])
                answer.finish_reason, answer.replayed = hit["finish_reason"], True
                finish_answer(answer, item, self.options, price_factor=1.0)
                out.append((item, answer, None))
            elif not self.done:
                out.append((item, None, NOT_DONE))
            elif ended == "completed":
                out.append((item, None, NO_OUTPUT))
            else:
                why = {"expired": EXPIRED, "cancelled": CANCELLED}.get(ended) or _failed_line(self)
                out.append((item, None, why))
        return out

    def store_answers(self, answers: list[tuple[Item, Answer | None, str | None]] | None = None) -> int:
        """Put the answers the batches brought back into the replay cache (unless ``cache=False``); how many."""
        from . import replay_store

        if self._stored or not self.options.resolved(self.cfg).cache:
            return 0
        n = 0
        for item, answer, error in self.answers() if answers is None else answers:
            if answer is not None and not error and not answer.replayed and item.key:
                n += replay_store.put(item.key, answer, self.cfg)
        self._stored = self.done
        return n

    def result(self, wait: bool = True) -> Any:
        """The DataFrame ``ask_many`` gives: one row per image, in input order (``source, answer, [fields],
        tokens, cost, error, replayed``); costs at the Batch API price. Waits for the batches first (``wait=False``:
        the rows so far, the others ``not finished yet``). Stores the answers in the replay cache."""
        from .record import VERSION
        from .rows import table_of, table_row
        from .session import current

        if wait and not self.done:
            self.wait()
        rows, records = [], []
        triples = self.answers()
        for item, answer, error in triples:
            rows.append(table_row(item.label, answer, error))
            if answer is not None and answer.record:
                records.append(answer.record)
        self.store_answers(triples)
        table = table_of(rows)
        self._table, self._records = table, records
        session = current()
        session.last_table, session.last_table_records = table, {"version": VERSION, "answers": records}
        return table

    def summary(self) -> str:
        """One line: status and counts; once the results are read, the real usage and cost too.

        Examples
        --------
        >>> job.summary()  # doctest: +SKIP
        'completed: 6/6 done, 0 failed · 1,020 tokens in, 60 out · $0.0013 (Batch API price)'
        """
        counts = self.counts
        n = len(self.batch_ids)
        head = (
            f"{self.status}: {counts['completed']}/{counts['total']} done, {counts['failed']} failed"
            if n
            else f"nothing to send: {len(self.items)} image(s) answered from the replay cache or not preparable"
        )
        if self._table is not None:
            sent = [r for r in self._records if not r.get("replayed")]
            tokens_in = sum((r.get("usage") or {}).get("input_tokens") or 0 for r in sent)
            tokens_out = sum((r.get("usage") or {}).get("output_tokens") or 0 for r in sent)
            costs = [r["cost_usd"] for r in sent if r.get("cost_usd") is not None]
            price = f"${sum(costs):.4f} (Batch API price)" if costs else "no price known"
            head += f" · {tokens_in:,} tokens in, {tokens_out:,} out · {price}"
            replayed = len(self._records) - len(sent)
            if replayed:
                head += f" · {replayed} answered from the replay cache"
        return head

    def __repr__(self) -> str:
        n = len(self.batch_ids)
        again = ", reattached" if self.reattached else ""
        return f"<BatchJob {n} batch{'es' if n != 1 else ''}{again}, {self.summary()}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        counts = self.counts
        done = counts["completed"] + counts["failed"]
        ids = ", ".join(html.escape(b) for b in self.batch_ids) or "none"
        return (
            "<div class='vision-magic-batch'>"
            f"<b>Batch API</b> ({html.escape(self.label)}){' reattached' if self.reattached else ''}: "
            f"<progress value='{done}' max='{max(counts['total'], 1)}'></progress> "
            f"{html.escape(self.summary())}<br><small>batches: {ids}. job.wait() polls until done, "
            "job.result() gives the table; re-running the cell reattaches.</small></div>"
        )


def _counts(state: Any) -> dict[str, int]:
    rc = getattr(state, "request_counts", None)
    return {
        "total": int(getattr(rc, "total", 0) or 0),
        "completed": int(getattr(rc, "completed", 0) or 0),
        "failed": int(getattr(rc, "failed", 0) or 0),
    }


def _failed_line(job: BatchJob) -> str:
    """The error of a batch that failed as a whole: the server's own reasons."""
    reasons = []
    for bid in job.batch_ids:
        errors = getattr(job.states.get(bid), "errors", None)
        for e in getattr(errors, "data", None) or []:
            reasons.append(f"{e.code}: {e.message}" if getattr(e, "code", None) else str(e.message))
    why = "; ".join(reasons[:3]) or "no reason given"
    return redact(f"the batch failed ({why})")


def outcome_of(line: dict[str, Any]) -> tuple[str, Outcome]:
    """(custom_id, outcome) of one line of an output or error file (OpenAI's Batch API or ``vllm run-batch``).

    Examples
    --------
    >>> outcome_of({"custom_id": "a", "response": None, "error": {"code": "batch_expired", "message": "late"}})[1].error[:8]
    'expired:'
    >>> outcome_of({"custom_id": "b", "response": {"status_code": 400, "body": {"error": {"message": "Bad image"}}}})
    ('b', Outcome(body=None, error='The server answered 400: Bad image'))
    """
    cid = str(line.get("custom_id"))
    error = line.get("error")
    if isinstance(error, dict) and error:
        code = error.get("code")
        if code == "batch_expired":
            return cid, Outcome(error=EXPIRED)
        if code == "batch_cancelled":
            return cid, Outcome(error=CANCELLED)
        return cid, Outcome(
            error=redact(f"{code}: {error.get('message')}" if code else str(error.get("message")))
        )
    response = line.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        return cid, Outcome(body=body)
    message = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(message, dict):
        message = message.get("message")
    return cid, Outcome(error=redact(" ".join(f"The server answered {status}: {message}".split())))


def answer_from(
    body: dict[str, Any], item: Item, options: AskOptions, price_factor: float | None = None
) -> Answer:
    """The finished :class:`Answer` of one ``chat.completion`` body from an output file (read leniently: an
    OpenAI-compatible engine may leave fields out)."""
    from .send import fill_from_completion

    answer = Answer(model=item.model, prompt=(item.question or {}).get("prompt", ""))
    try:
        fill_from_completion(Fields(body), answer, item.model)
    except Exception as e:  # a line that is not a chat completion: that row's error
        answer.error = f"the output line is not a chat completion ({one_line(e)})"
        return answer
    return finish_answer(answer, item, options, price_factor)


class Fields:
    """A JSON object read by attribute, as the SDK's response objects are; a missing field is None.

    Examples
    --------
    >>> body = Fields({"choices": [{"message": {"content": "Red."}}]})
    >>> body.choices[0].message.content, body.choices[0].finish_reason, body.usage
    ('Red.', None, None)
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _fields(self._data.get(name))


def _fields(value: Any) -> Any:
    if isinstance(value, dict):
        return Fields(value)
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value


def finish_answer(
    answer: Answer, item: Item, options: AskOptions, price_factor: float | None = None
) -> Answer:
    """Cost (at the Batch API price unless ``price_factor`` says otherwise), structured data and record of an
    answer from a batch: what :func:`vision_magic.engine.finish.finish` does for a live one."""
    from .record import answered_record

    profile = item.profile or profile_for(answer.model)
    factor = profile.batch_price if price_factor is None else price_factor
    usage = answer.usage or {}
    base = (
        cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), profile)
        if answer.usage
        else None
    )
    answer.cost = None if base is None else base * factor
    if (options.json_mode or options.schema is not None) and answer.text and not answer.incomplete:
        from .structured import parse

        try:
            answer.data = parse(answer.text, options.schema)
        except ValueError as e:
            answer.error = str(e)
    if item.question is not None:
        answer.record = answered_record(item.question, answer)
    return answer


def _progress_bar(total: int, enabled: bool, desc: str = "batch", unit: str = "request") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=desc == "batch")


def batches(refresh: bool = False) -> Any:
    """The Batch API jobs this replay cache knows: one row per batch (``id, created, status, completed, failed,
    total, label, endpoint``), newest last. ``refresh=True`` asks the server in force about unfinished ones.

    Examples
    --------
    >>> vision_magic.batches()  # doctest: +SKIP
                        id              created     status  completed  failed  total                label ...
    """
    import pandas as pd

    from . import replay_store
    from .session import current

    cfg = current().settings
    rows = replay_store.all_batches(cfg)
    if refresh:
        from .endpoints import endpoint_in_force, make_client

        client = make_client(cfg, endpoint_in_force(cfg))
        for row in rows:
            if row["status"] not in TERMINAL:
                with api_errors(str(client.base_url)):
                    state = client.batches.retrieve(row["batch_id"])
                row.update(status=state.status, **_counts(state))
                replay_store.update_batch(row["batch_id"], state.status, _counts(state), cfg)
    table = pd.DataFrame(
        [
            {
                "id": r["batch_id"],
                "created": pd.Timestamp(r["created"], unit="s", tz="UTC").floor("s"),
                "status": r["status"],
                "completed": r["completed"],
                "failed": r["failed"],
                "total": r["total"],
                "label": r["label"],
                "endpoint": r["endpoint"],
            }
            for r in rows
        ],
        columns=["id", "created", "status", "completed", "failed", "total", "label", "endpoint"],
    )
    return table


@dataclass
class BatchFile:
    """What :func:`batch_file` wrote: the file, its requests and bytes, and the images that could not go in."""

    path: Path
    requests: int
    nbytes: int
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        bad = f", {len(self.errors)} image(s) not included (see .errors)" if self.errors else ""
        return f"<BatchFile {self.path}: {self.requests} requests, {self.nbytes:,} bytes{bad}>"


@with_option_keywords
def batch_file(
    prompt: str, sources: Any, path: str | os.PathLike[str], *, model: str, **options: Any
) -> BatchFile:
    """Write the Batch API requests of one question about each image of ``sources`` to ``path`` (JSON Lines),
    for ``vllm run-batch`` on one's own GPUs (or an upload of one's own). Images are prepared exactly as for a
    live request, one at a time; ``custom_id`` is the one ``ask_many(..., via="batch")`` uses.

    Examples
    --------
    >>> vision_magic.batch_file("Describe.", "photos/", "requests.jsonl", model="Qwen/Qwen2.5-VL-7B-Instruct")  # doctest: +SKIP
    <BatchFile requests.jsonl: 5000 requests, 212,345,678 bytes>

    Then ``vllm run-batch -i requests.jsonl -o results.jsonl --model Qwen/Qwen2.5-VL-7B-Instruct`` and
    ``vision_magic.read_batch_output("results.jsonl", "photos/")``.
    """
    from .session import current

    cfg = current().settings
    opts = AskOptions.from_kwargs(model=model, **options)
    target = Path(path)
    requests = nbytes = 0
    errors: list[tuple[str, str]] = []
    with open(target, "wb") as out:
        for item, body in prepared_lines(prompt, sources, opts, cfg):
            if body is None:
                errors.append((item.label, item.error or ""))
                continue
            data = request_line(item.custom_id, body).encode("utf-8")
            del body
            out.write(data)
            requests += 1
            nbytes += len(data)
    return BatchFile(target, requests, nbytes, errors)


def read_batch_output(path: str | os.PathLike[str], sources: Any = None, **options: Any) -> Any:
    """The DataFrame ``ask_many`` gives, from an output (or error) file of the Batch API or ``vllm run-batch``.

    ``sources`` (the ones given to :func:`batch_file`) names the rows by image and keeps their order, with a row
    for each image that has no line; without it, the rows are named by ``custom_id``, in the file's order.
    Costs use the model table's Batch API price (None for a model without a price). ``json_mode`` / ``schema``
    parse the answers as ``ask_many`` does. Several files: pass a list of paths.

    Examples
    --------
    >>> df = vision_magic.read_batch_output("results.jsonl", "photos/")  # doctest: +SKIP
    """
    from .rows import expand_sources, table_of, table_row

    opts = AskOptions.from_kwargs(**options)
    outcomes: dict[str, Outcome] = {}
    files = path if isinstance(path, (list, tuple)) else [path]
    for file in files:
        try:
            with open(file, encoding="utf-8") as src:
                for n, line in enumerate(src, 1):
                    if not line.strip():
                        continue
                    try:
                        cid, outcome = outcome_of(json.loads(line))
                    except (ValueError, AttributeError):
                        raise VisionMagicError(
                            f"{file} line {n} is not a batch output line: give an output file of the Batch API "
                            "or of vllm run-batch"
                        ) from None
                    outcomes[cid] = outcome
        except OSError as e:
            raise VisionMagicError(f"{file} cannot be read ({e.strerror or e})") from None
    by_index = {_index_of(cid): cid for cid in outcomes}
    if sources is not None:
        labelled = [(i, redact(label)) for i, (label, _src) in enumerate(expand_sources(sources))]
    else:
        labelled = [(_index_of(cid), cid) for cid in outcomes]
    rows = []
    for index, label in labelled:
        cid = by_index.get(index) if sources is not None else label
        outcome = outcomes.get(cid) if cid is not None else None
        if outcome is None:
            rows.append(table_row(label, None, "no line for this image in the output file(s)"))
        elif outcome.body is None:
            rows.append(table_row(label, None, outcome.error))
        else:
            item = Item(
                index if index is not None else -1, label, cid or "", model=str(outcome.body.get("model", ""))
            )
            rows.append(table_row(label, answer_from(outcome.body, item, opts), None))
    return table_of(rows)


def _index_of(cid: str) -> int | None:
    """The image's position in a ``custom_id`` made by :func:`custom_id` (None for another kind of id)."""
    parts = cid.split("-")
    if len(parts) >= 2 and parts[0] == "vm" and parts[1].isdigit():
        return int(parts[1])
    return None
