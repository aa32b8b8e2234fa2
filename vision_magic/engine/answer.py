"""The result of one question: the text, what was sent, and what it cost."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import redact
from ..images.encode import PreparedImage


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
        return markdown_math(self.body_text()) + f"\n\n<sub>{html.escape(self.footer())}</sub>"

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
