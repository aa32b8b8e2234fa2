"""What a question will cost before it is sent: per image the size, bytes and tokens, plus the input cost.

No IPython, no network: images are prepared exactly as :func:`vision_magic.ask` would prepare them, so
the numbers describe the bytes that would go on the wire, not the files on disk.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from ..images.encode import PreparedImage, human_bytes
from ..images.profiles import ModelProfile
from ..images.zoom import zoom_summary
from .options import AskOptions, with_option_keywords

# Without a tokenizer (tiktoken is optional and not required) text is counted at ~4 characters a token.
_CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 7  # role markers and priming of a one-message chat request


@dataclass
class ImageEstimate:
    """One image as it would be sent: ``sent_size`` and ``nbytes`` are what goes on the wire (None for a
    link the server fetches itself), ``b64_chars`` the length of its base64 payload, ``tokens`` the billed
    image tokens (None when unknown)."""

    source: str
    mime: str | None
    original_size: tuple[int, int] | None
    sent_size: tuple[int, int] | None
    nbytes: int | None
    b64_chars: int | None
    tokens: int | None
    detail: str
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_prepared(cls, img: PreparedImage) -> ImageEstimate:
        sent = (img.width, img.height) if img.width and img.height else None
        b64 = None if img.nbytes is None else 4 * math.ceil(img.nbytes / 3)
        return cls(
            img.source,
            img.mime,
            img.original_size,
            sent,
            img.nbytes,
            b64,
            img.tokens,
            img.detail,
            list(img.notes),
        )


@dataclass
class Estimate:
    """The estimated input of one question: per-image rows, text tokens, total tokens and cost.

    ``cost`` is USD for the input tokens at the profile's price (None when the model has no price), times
    ``price_factor`` (the profile's ``batch_price``, a half, for ``via="batch"``); ``notes`` says what is
    approximate (unknown model, links of unknown size, text counted by characters).
    """

    model: str
    detail: str
    profile: ModelProfile
    images: list[ImageEstimate]
    text_tokens: int
    notes: list[str] = field(default_factory=list)
    price_factor: float = 1.0

    @property
    def image_tokens(self) -> int:
        return sum(img.tokens or 0 for img in self.images)

    @property
    def input_tokens(self) -> int:
        return self.image_tokens + self.text_tokens

    @property
    def nbytes(self) -> int:
        return sum(img.nbytes or 0 for img in self.images)

    @property
    def cost(self) -> float | None:
        if self.profile.price_in is None:
            return None
        return self.input_tokens * self.profile.price_in * self.price_factor / 1_000_000

    def _cost_text(self) -> str:
        if self.cost is None:
            return "no price known"
        return f"${self.cost:.4f}" + (" (Batch API price)" if self.price_factor != 1.0 else "")

    def summary(self) -> str:
        """One line: images, tokens, bytes and cost."""
        return (
            f"{self.model} detail={self.detail}: {len(self.images)} image(s), {human_bytes(self.nbytes)}, "
            f"about {self.input_tokens} input tokens ({self.image_tokens} image + {self.text_tokens} text), "
            f"{self._cost_text()} input"
        )

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image (for ``pandas.DataFrame(est.rows())``)."""
        return [
            {
                "source": img.source,
                "type": img.mime or "link",
                "original": _size(img.original_size),
                "sent": _size(img.sent_size) or "fetched by server",
                "bytes": img.nbytes,
                "base64 chars": img.b64_chars,
                "tokens": img.tokens,
                "notes": "; ".join(img.notes),
            }
            for img in self.images
        ]

    def __str__(self) -> str:
        rows = self.rows()
        head = ["source", "type", "original", "sent", "bytes", "tokens", "notes"]
        cells = [[str(r[h] if r[h] is not None else "?") for h in head] for r in rows]
        for r, c in zip(rows, cells, strict=True):
            c[4] = human_bytes(r["bytes"]) if r["bytes"] is not None else "?"
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() for c in cells]
        return "\n".join([self.summary(), *lines, *self.notes])

    def __repr__(self) -> str:
        return f"<Estimate {self.summary()}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        head = ["source", "type", "original", "sent", "bytes", "tokens", "notes"]
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(human_bytes(r[h]) if h == 'bytes' and r[h] is not None else str(r[h] or ''))}</td>"
                for h in head
            )
            + "</tr>"
            for r in self.rows()
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<div class='vision-magic-estimate'><p><b>{html.escape(self.summary())}</b>. Nothing was sent.</p>"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


def _size(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else ""


def text_tokens(text: str) -> int:
    """Approximate tokens of ``text`` (about 4 characters a token; an estimate, not a tokenizer).

    Examples
    --------
    >>> text_tokens("What is in this photo?")
    6
    """
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


@with_option_keywords
def estimate(
    *sources: Any,
    prompt: str | None = None,
    labels: list[str] | None = None,
    profiles: dict[str, Any] | None = None,
    **options: Any,
) -> Estimate:
    """Prepare ``sources`` exactly as :func:`vision_magic.ask` would, send nothing, and return per image the
    sent size, bytes and tokens plus the total estimated input cost.

    Takes :func:`vision_magic.ask`'s options; those that change what is sent (model, detail, resize, system)
    change the estimate. Unset ones come from ``%config VisionMagic`` (model, detail, resize, jpeg_quality,
    profiles). Models not in the profile table are counted with the default (gpt-4o's tile rule, no price)
    and the estimate says so.

    Examples
    --------
    >>> from PIL import Image
    >>> est = estimate(Image.new("RGB", (2048, 4096), "red"), model="gpt-4o", detail="high")
    >>> est.images[0].sent_size, est.image_tokens
    ((768, 1536), 1105)
    >>> round(est.cost, 6)
    0.00278
    >>> round(estimate(Image.new("RGB", (2048, 4096), "red"), model="gpt-4o", detail="high", via="batch").cost, 6)
    0.00139
    >>> estimate(Image.new("RGB", (64, 64)), model="llava:13b").notes[0]
    "llava:13b is not in the model table: counted with the default profile (gpt-4o's tile rule, no price); add it with %config VisionMagic.profiles"
    """
    from ..images.resolve import prepare_sources
    from .endpoints import endpoint_in_force
    from .question import default_images, image_options, resolve_references
    from .session import current

    cfg = current().settings
    opts = AskOptions.from_kwargs(**options).resolved(cfg)
    formats = endpoint_in_force(cfg).mimes  # the same encoding as when sending
    profile, image = image_options(opts, cfg, profiles=profiles, formats=formats)
    sources = resolve_references(sources)
    prepared = prepare_sources(sources, image, labels=labels) if sources else default_images(image)
    return from_prepared(prepared, opts, profile, prompt or "")


def from_prepared(
    prepared: list[PreparedImage], options: AskOptions, profile: ModelProfile, prompt: str
) -> Estimate:
    """The :class:`Estimate` of images already prepared for resolved ``options`` (the panel's live estimate
    and :func:`estimate` share it)."""
    model, detail = options.model or "", options.detail or "auto"
    images = [ImageEstimate.from_prepared(img) for img in prepared]
    notes: list[str] = []
    if not profile.known:
        notes.append(
            f"{model} is not in the model table: counted with the default profile (gpt-4o's tile rule, "
            "no price); add it with %config VisionMagic.profiles"
        )
    elif profile.price_in is None:
        notes.append(f"no price known for {model}: add price_in to its profile")
    if detail == "auto" and profile.rule == "tile":
        notes.append("detail=auto counted as high (the upper bound; the server may pick low)")
    links = [img.source for img in images if img.tokens is None]
    if links:
        notes.append(f"{len(links)} link(s) fetched by the server: their size and tokens are unknown here")
    zoomed = zoom_summary(prepared)
    if zoomed:
        notes.append(zoomed)
    captions = "".join(img.caption or "" for img in prepared)  # a zoom's tile captions are text sent too
    tokens = text_tokens(prompt + (options.system or "") + captions) + MESSAGE_OVERHEAD
    notes.append("text tokens approximated at 4 characters a token")
    factor = profile.batch_price if options.batch else 1.0
    if options.batch and profile.price_in is not None:
        notes.append(f"via the Batch API: {factor:g} of the table price, answers within 24 h")
    return Estimate(model, detail, profile, images, tokens, notes, factor)
