"""The result of one question: the text, what was sent, and what it cost."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import redact
from ..images.encode import PreparedImage, human_bytes


@dataclass(repr=False)
class Answer:
    """A model's answer about images.

    Attributes
    ----------
    text : the answer as Markdown (what arrived, even when the stream broke off).
    model : the model that answered (as the server reports it).
    usage : ``{"prompt_tokens", "completion_tokens", "total_tokens"}`` as reported, or None.
    images : the images as sent (:class:`PreparedImage`: source, MIME, size, bytes, tokens).
    cost : USD computed from ``usage`` and the model profile's prices, or None when unknown.
    incomplete : True when the answer was cut off (dropped stream, interrupt, error); ``error`` says why.
    error : one line whenever something failed (also a refusal, a content filter, JSON that does not parse).
    refusal : the model's own words when it refused to answer (``text`` is then empty); never cached.
    elapsed_s : seconds from asking to the finished answer (a replay: the lookup), None for a dry run.
    record : what was asked and answered as plain data (:func:`vision_magic.engine.record.record_of`): the
        front ends save it with the answer (output metadata ``vision_magic``); None until finished.

    Examples
    --------
    >>> a = Answer(text="A red square.", model="gpt-4o", usage={"prompt_tokens": 90, "completion_tokens": 4})
    >>> a
    <Answer gpt-4o, 90 tokens in, 4 out: 'A red square.'>
    >>> str(a)
    'A red square.'
    """

    text: str = ""
    model: str = ""
    usage: dict[str, int] | None = None
    images: list[PreparedImage] = field(default_factory=list)
    prompt: str = ""
    cost: float | None = None
    incomplete: bool = False
    error: str | None = None
    finish_reason: str | None = None
    dry_run: bool = False
    request: dict[str, Any] | None = None
    replayed: bool = False
    estimated_tokens: int | None = None
    data: Any = None  # parsed structured output (JSON mode / schema)
    refusal: str | None = None
    elapsed_s: float | None = None
    record: dict[str, Any] | None = field(default=None, compare=False)
    # set by the view that drew the answer: True while showing it again would repeat it (same cell run)
    _drawn: Callable[[], bool] | None = field(default=None, compare=False)

    @property
    def tokens_in(self) -> int | None:
        return (self.usage or {}).get("prompt_tokens")

    @property
    def tokens_out(self) -> int | None:
        return (self.usage or {}).get("completion_tokens")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        if self.dry_run:
            return f"<Answer dry run: {len(self.images)} image(s), ~{self.estimated_tokens} tokens in>"
        head = self.text[:60] + ("..." if len(self.text) > 60 else "")
        flag = ", incomplete" if self.incomplete else ""
        return redact(
            f"<Answer {self.model}, {self.tokens_in} tokens in, {self.tokens_out} out{flag}: {head!r}>"
        )

    def _repr_markdown_(self) -> str | None:
        # Drawn while it streamed in this same cell run: as the cell's value it would only repeat itself.
        if self.dry_run or (self._drawn is not None and self._drawn()):
            return None  # a dry run has no text: its repr says what it holds
        return self.markdown()

    def markdown(self) -> str:
        r"""The answer as Markdown, as the notebook draws it: math delimiters rewritten, a refusal quoted,
        and the footer.

        Examples
        --------
        >>> print(Answer(text=r"Area \(\pi r^2\).", model="m").markdown())
        Area $\pi r^2$.
        <BLANKLINE>
        <sub>m</sub>
        """
        md = markdown_math(self.body_text()) + f"\n\n<sub>{escape_html(self.footer())}</sub>"
        return md + (f"\n\n{self.sent_html()}" if self.images else "")

    def plain(self) -> str:
        """The answer as plain text (terminals, exports): the text, the footer and the "sent" line."""
        text = f"{self.body_text()}\n\n-- {self.footer()}"
        return text + (
            f"\n-- {self._sent_summary()}: " + "; ".join(self._sent_items()) if self.images else ""
        )

    def sent_html(self) -> str:
        """The collapsed "sent" line under the footer: what went out (labels, sizes, tokens), in HTML that
        static renderings (GitHub, nbviewer) show without JavaScript.

        Examples
        --------
        >>> from vision_magic.images.encode import PreparedImage
        >>> img = PreparedImage("a.png", "data:,", "low", "image/png", 64, 48, nbytes=900, tokens=85)
        >>> Answer(text="A dot.", images=[img], usage={"prompt_tokens": 100, "completion_tokens": 3}).sent_html()
        '<details><summary><sub>sent: 1 image, 100 tokens</sub></summary><sub>a.png: image/png 64×48, 900 B, 85 tokens</sub></details>'
        """
        items = "<br>".join(escape_html(line) for line in self._sent_items())
        return f"<details><summary><sub>{escape_html(self._sent_summary())}</sub></summary><sub>{items}</sub></details>"

    def _sent_summary(self) -> str:
        return sent_summary(self.images, self.tokens_in)

    def _sent_items(self) -> list[str]:
        return sent_items(self.images)

    def body_text(self) -> str:
        """The text to show: the answer, the quoted refusal, or a note that there is none."""
        if self.refusal:
            quoted = "\n".join(f"> {line}" for line in self.refusal.splitlines())
            return (self.text + "\n\n" if self.text else "") + f"**Refused:**\n\n{quoted}"
        if self.text or self.incomplete:
            return self.text
        return "*(the model returned no text)*"

    def footer(self) -> str:
        """The short line under a displayed answer: model, tokens in/out, cost, and any problem."""
        parts = [self.model or "?"]
        if self.usage:
            parts.append(f"{self.tokens_in} tokens in, {self.tokens_out} out")
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        if self.replayed:
            parts.append("replayed from cache, nothing sent")
        line = " · ".join(parts)
        if self.incomplete:
            line = f"⚠ incomplete: {self.error or 'the answer was cut off'} · " + line
        elif self.error:
            line = f"⚠ {self.error} · " + line
        return line


def sent_summary(images: list[PreparedImage], tokens_in: int | None) -> str:
    """The "sent" line's summary: how many images and tokens went out (the image tokens estimated when the
    usage is unknown).

    Examples
    --------
    >>> sent_summary([], 1530)
    'sent: no images, 1,530 tokens'
    """
    n = len(images)
    what = "no images" if n == 0 else f"{n} image{'s' if n != 1 else ''}"
    if tokens_in is not None:
        return f"sent: {what}, {tokens_in:,} tokens"
    estimated = sum(img.tokens or 0 for img in images)
    return f"sent: {what}, ~{estimated:,} image tokens"


def sent_items(images: list[PreparedImage]) -> list[str]:
    """One short line per image sent: label, type, size, bytes and tokens (never the payload)."""
    lines = []
    for img in images:
        if img.is_link:
            lines.append(f"{redact(img.source)}: link, fetched by the server")
            continue
        tokens = "" if img.tokens is None else f", {img.tokens:,} tokens"
        size = f"{img.width}×{img.height}, {human_bytes(img.nbytes or 0)}"
        lines.append(f"{redact(img.source)}: {img.mime} {size}{tokens}")
    return lines


def escape_html(text: str) -> str:
    """``html.escape(text)`` (quotes too), without importing :mod:`html`, whose entity table costs ~3 ms on the
    first answer.

    Examples
    --------
    >>> escape_html('<a href="x">&</a>')
    '&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;'
    >>> escape_html("it's")
    'it&#x27;s'
    """
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.S)
_INLINE_MATH = re.compile(r"\\\((.+?)\\\)", re.S)
_DISPLAY_MATH = re.compile(r"\\\[(.+?)\\\]", re.S)


def markdown_math(text: str) -> str:
    r"""Rewrite the ``\(...\)`` and ``\[...\]`` delimiters models emit into ``$...$`` / ``$$...$$``, which
    JupyterLab's Markdown renderer typesets (a Markdown parser eats the backslashes otherwise). Code spans and
    fenced blocks are left alone.

    Examples
    --------
    >>> markdown_math(r"Energy \(E = mc^2\), code `\(x\)`")
    'Energy $E = mc^2$, code `\\(x\\)`'
    """
    pieces = _CODE.split(text)
    for i in range(0, len(pieces), 2):
        p = _DISPLAY_MATH.sub(lambda m: f"$${m.group(1)}$$", pieces[i])
        pieces[i] = _INLINE_MATH.sub(lambda m: f"${m.group(1).strip()}$", p)
    return "".join(pieces)
