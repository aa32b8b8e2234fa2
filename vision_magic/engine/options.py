"""One frozen options object, built once by each front end and carried through the engine.

Adding an option: add a field here (None means "from ``%config VisionMagic``" when a trait of the same name
exists), use it where the request is built (:mod:`vision_magic.engine.wire`) or answered, and give it a flag
in each front end (:mod:`vision_magic.frontends.magic_arguments`, the panel). ``ask``, ``ask_many``,
``Chat.ask`` and ``estimate`` take every field as a keyword without further changes, and
``tests/test_options.py`` checks that every front end passes every field on.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ..errors import VisionMagicError

VIAS = (None, "live", "batch")  # how ask_many sends: now, or through the Batch API (half price, within 24 h)


@dataclass(frozen=True)
class AskOptions:
    """How to ask: every field None (or False) means "the ``%config VisionMagic`` default".

    Examples
    --------
    >>> from vision_magic.engine.config import VisionMagic
    >>> opts = AskOptions.from_kwargs(detail="low")
    >>> opts.detail, opts.model
    ('low', None)
    >>> opts.resolved(VisionMagic(model="gpt-4o-mini")).model
    'gpt-4o-mini'
    >>> AskOptions.from_kwargs(colour="red")
    Traceback (most recent call last):
    ...
    TypeError: unexpected option 'colour': use cache, crop, detail, dry_run, json_mode, max_tokens, model, refresh, resize, schema, seed, stream, system, temperature, via, zoom
    """

    model: str | None = None
    detail: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stream: bool | None = None
    resize: bool | None = None
    dry_run: bool | None = None
    cache: bool | None = None
    refresh: bool = False
    json_mode: bool = False
    schema: Any = None  # a pydantic model class or a JSON schema dict: structured outputs
    via: str | None = None  # "batch": ask_many hands the work to the Batch API; None / "live": sent now
    crop: Any = None  # "x0,y0,x1,y1" or four numbers (pixels, or fractions when all <= 1), for every image
    zoom: bool | int | None = None  # True or the most tiles: overview + full-resolution tiles for fine print

    @classmethod
    def names(cls) -> list[str]:
        """Every option's name, sorted."""
        return sorted(f.name for f in fields(cls))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> AskOptions:
        """Options from keyword arguments; an unknown name is a one-line ``TypeError`` listing the valid ones."""
        unknown = sorted(set(kwargs) - set(cls.names()))
        if unknown:
            s = "s" if len(unknown) > 1 else ""
            raise TypeError(
                f"unexpected option{s} {', '.join(map(repr, unknown))}: use {', '.join(cls.names())}"
            )
        return cls(**kwargs)

    def replace(self, **changes: Any) -> AskOptions:
        """A copy with ``changes`` (unknown names refused as in :meth:`from_kwargs`)."""
        AskOptions.from_kwargs(**changes)
        return dataclasses.replace(self, **changes)

    def resolved(self, cfg: Any) -> AskOptions:
        """Every unset field that is also a ``VisionMagic`` trait filled from ``cfg``; detail lower-cased."""
        filled = {
            f.name: getattr(cfg, f.name)
            for f in fields(self)
            if getattr(self, f.name) is None and cfg.has_trait(f.name)
        }
        out = dataclasses.replace(self, **filled)
        if out.detail is not None and out.detail != out.detail.lower():
            out = dataclasses.replace(out, detail=out.detail.lower())
        if out.detail is not None and out.detail not in ("auto", "low", "high", "original"):
            raise VisionMagicError(f"detail {out.detail!r} is not a level: use auto, low, high or original")
        if out.via not in VIAS:
            raise VisionMagicError(f"via {out.via!r} is not a way of sending: use 'live' or 'batch'")
        return out

    def given(self) -> dict[str, Any]:
        """The fields set to something other than their default (what the caller asked for)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    @property
    def batch(self) -> bool:
        """True when the work goes through the Batch API (``via="batch"``)."""
        return self.via == "batch"


def with_option_keywords(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``func(..., **options)`` a signature that lists every :class:`AskOptions` field as a keyword,
    so ``help()``, ``inspect.signature`` and completion show them (the function still takes ``**options``)."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in params}
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in fields(AskOptions)
        if f.name not in taken
    ]
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func
