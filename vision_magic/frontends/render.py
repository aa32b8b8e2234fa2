"""Draw answers and dry runs in the notebook; knows IPython display, not openai.

An answer is one display (one ``display_id``) updated in place as tokens arrive, at most every
``interval`` seconds, with a bundle of ``text/markdown`` and a readable ``text/plain``. The finished answer
(also a replayed one) and a dry run carry the answer's record as output metadata under ``vision_magic``
(:func:`vision_magic.engine.record.record_of`), which Jupyter saves in the ``.ipynb`` as it is:
``vision_magic.replay_from`` reads it back. :class:`NotebookView` is the engine's
:class:`~vision_magic.engine.views.AnswerView` for notebooks.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from ..engine.answer import Answer, escape_html, markdown_math
from ..engine.record import KEY
from ..errors import redact
from ..images.encode import PreparedImage, data_url, human_bytes
from ..images.thumbnail import thumbnail


def record_metadata(answer: Answer) -> dict[str, Any]:
    """The output metadata of a drawn answer: its record under ``vision_magic`` (empty before it has one).

    Examples
    --------
    >>> record_metadata(Answer(text="A."))
    {}
    """
    return {KEY: answer.record} if answer.record else {}


def finished_bundle(answer: Answer) -> dict[str, str]:
    """The mime bundle of a finished answer: its Markdown (footer and "sent" line) and plain text."""
    return {"text/markdown": answer.markdown(), "text/plain": answer.plain()}


def answer_bundle(text: str) -> dict[str, str]:
    """The mime bundle of an answer while it streams in (a placeholder before the first words)."""
    if not text:
        return {"text/markdown": "*⏳ waiting for the model…*", "text/plain": "(waiting for the model...)"}
    return {"text/markdown": markdown_math(text), "text/plain": text}


class NotebookView:
    """One display updated in place while text streams in, throttled to one render per ``interval``.

    ``publish(bundle, update, metadata)`` draws somewhere else than the cell's output (the panel's output
    widget). A finished answer shown without :meth:`start` (replayed, dry run) is displayed once.

    Examples
    --------
    >>> d = NotebookView(interval=0.1, publish=lambda bundle, update, metadata: None)
    >>> d.start(); d.update("Hel"); d.update("Hello"); d.finish(Answer(text="Hello", model="m"))
    >>> d.renders
    2
    """

    def __init__(self, interval: float | None = None, publish: Any = None) -> None:
        if interval is None:
            from ..engine.session import settings

            interval = settings().render_interval
        self.interval = interval
        self.renders = 0
        self._last = 0.0
        self._started = False
        self._handle: Any = None
        self._publish = publish

    def _show(self, bundle: dict[str, str], update: bool, metadata: dict[str, Any] | None = None) -> None:
        self.renders += 1
        metadata = metadata or {}
        if self._publish is not None:
            self._publish(bundle, update, metadata)
            return
        from IPython.display import display

        if update and self._handle is not None:
            self._handle.update(bundle, raw=True, metadata=metadata)
        else:
            self._handle = display(bundle, raw=True, display_id=True, metadata=metadata)

    def start(self) -> None:
        self._show(answer_bundle(""), update=False)
        self._started = True
        self._last = time.monotonic()

    def update(self, text: str) -> None:
        now = time.monotonic()
        # Not started (a --no-stream answer arrives whole): finish draws it, once, with its record.
        if self._started and now - self._last >= self.interval:
            self._show(answer_bundle(text), update=True)
            self._last = now

    def finish(self, answer: Answer) -> None:
        self._show(finished_bundle(answer), update=self._started, metadata=record_metadata(answer))
        if self._publish is None:
            answer._drawn = _in_this_cell_run()

    def dry_run(self, answer: Answer, note: str) -> None:
        self._show(dry_run_bundle(answer, note), update=False, metadata=record_metadata(answer))
        if self._publish is None:
            answer._drawn = _in_this_cell_run()

    def discard(self) -> None:
        """Blank the placeholder (the question failed before any text; its one-line error says why)."""
        if self._started:
            self._show({"text/markdown": "", "text/plain": ""}, update=True)


def _in_this_cell_run() -> Any:
    """A test that is True while the cell that drew an answer is still running (its value would repeat it)."""
    from ..engine.session import current

    session = current()
    run = session.cell_runs
    return lambda: session.cell_runs == run


def elide_request(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of the request body with every base64 payload replaced by its size.

    Examples
    --------
    >>> b = {"messages": [{"role": "user", "content": [{"type": "image_url",
    ...       "image_url": {"url": "data:image/png;base64," + "A" * 4000}}]}]}
    >>> elide_request(b)["messages"][0]["content"][0]["image_url"]["url"]
    'data:image/png;base64,<4000 base64 chars elided>'
    >>> r = {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}
    >>> elide_request(r)["input"][0]["content"][0]["image_url"]
    'data:image/png;base64,<4 base64 chars elided>'
    """
    out = copy.deepcopy(body)
    messages = out.get("messages", []) + (out["input"] if isinstance(out.get("input"), list) else [])
    for msg in messages:  # Chat Completions messages, or Responses API input items
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            holder, key = (
                (part["image_url"], "url") if isinstance(part.get("image_url"), dict) else (part, "image_url")
            )
            url = holder.get(key)
            if isinstance(url, str) and url.startswith("data:"):
                head, _, payload = url.partition(",")
                holder[key] = f"{head},<{len(payload)} base64 chars elided>"
    return out


def _thumbnail_url(img: PreparedImage, side: int = 160) -> str | None:
    small = thumbnail(img.data, side, "JPEG")
    return data_url("image/jpeg", small) if small else None


def dry_run_bundle(answer: Answer, note: str = "") -> dict[str, str]:
    """HTML (thumbnails, sizes, bytes, tokens, the elided request) and plain text for a dry run; secrets in
    image URLs (passwords, signed-URL tokens) redacted."""
    rows_html = []
    rows_text = []
    for img in answer.images:
        thumb = _thumbnail_url(img)
        cell = f'<img src="{thumb}" style="max-width:160px;max-height:160px">' if thumb else "(link)"
        size = f"{img.width}x{img.height}" if img.width else "fetched by server"
        orig = f"{img.original_size[0]}x{img.original_size[1]}" if img.original_size else ""
        nbytes = human_bytes(img.nbytes) if img.nbytes is not None else ""
        tokens = "" if img.tokens is None else str(img.tokens)
        notes = "; ".join(img.notes)
        rows_html.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    cell,
                    escape_html(redact(img.source)),
                    escape_html(img.mime or "link"),
                    orig,
                    size,
                    nbytes,
                    img.detail,
                    tokens,
                    escape_html(notes),
                )
            )
            + "</tr>"
        )
        rows_text.append(
            f"  {redact(img.source)}: {img.mime or 'link'} {size} {nbytes} detail={img.detail} tokens={tokens} {notes}".rstrip()
        )
    # what is shown, not what is sent: image URLs lose their passwords and signed-URL tokens
    request = redact(json.dumps(elide_request(answer.request or {}), indent=2, ensure_ascii=False))
    head = (
        f"Dry run: nothing was sent. {len(answer.images)} image(s), "
        f"about {answer.estimated_tokens} image tokens for {answer.model}."
    )
    header = "".join(
        f"<th>{h}</th>"
        for h in ("", "source", "type", "original", "sent", "bytes", "detail", "tokens", "notes")
    )
    page = (
        f"<div class='vision-magic-dry-run'><p><b>{escape_html(head)}</b> {escape_html(note)}</p>"
        f"<table><tr>{header}</tr>{''.join(rows_html)}</table>"
        f"<details><summary>request JSON (base64 elided)</summary><pre>{escape_html(request)}</pre></details></div>"
    )
    plain = "\n".join(
        [head + (" " + note if note else ""), *rows_text, "request JSON (base64 elided):", request]
    )
    return {"text/html": page, "text/plain": plain}
