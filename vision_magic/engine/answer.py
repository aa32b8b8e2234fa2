"""The result of one question: the text, what was sent, and what it cost."""

from __future__ import annotations

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
    _shown: bool = field(default=False, compare=False)

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
        # Shown once while streaming; as a cell's last value it would only repeat itself.
        return None if self._shown else self.text

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
        return line
