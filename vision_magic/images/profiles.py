"""Per-model facts as data: how each model family scales images and counts their tokens.

Pure module (standard library only). The numbers come from OpenAI's "Images and vision" guide and are
collected in ``PROFILES``; users override or add entries with ``%config VisionMagic.profiles = {...}``
(or the ``profiles=`` argument of the functions here).

Examples
--------
>>> image_tokens(1024, 1024, profile_for("gpt-4o"), "high")
765
>>> used_size(2048, 4096, profile_for("gpt-4o"), "high")
(768, 1536)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

DETAILS = ("auto", "low", "high", "original")


@dataclass(frozen=True)
class ModelProfile:
    """How one model family looks at images.

    ``rule`` is ``"tile"`` (512-px tiles after fitting in ``max_side`` and shrinking the short side to
    ``short_side``), ``"patch"`` (32-px patches under a ``patch_budget``) or ``"fixed"`` (no known rule:
    images go out at most ``max_side`` px and cost ``base`` tokens each).
    """

    name: str
    rule: str = "tile"
    base: int = 85
    tile: int = 170
    max_side: int = 2048
    short_side: int = 768
    low_side: int = 512
    patch: int = 32
    patch_budget: int = 1536
    multiplier: float = 1.0
    original_budget: int = 0  # patches allowed at detail="original"; 0: the family has no "original"
    original_side: int = 6000
    price_in: float | None = None  # USD per million input tokens
    price_out: float | None = None  # USD per million output tokens
    batch_price: float = 0.5  # a Batch API request costs this fraction of price_in / price_out
    known: bool = True

    @property
    def has_original(self) -> bool:
        return self.original_budget > 0


def _p(name: str, **kw: Any) -> ModelProfile:
    return ModelProfile(name=name, **kw)


# Longest matching prefix wins: "gpt-4o-mini-2024-07-18" -> "gpt-4o-mini", "gpt-4o-2024-08-06" -> "gpt-4o".
PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in [
        _p("gpt-4o", base=85, tile=170, price_in=2.5, price_out=10.0),
        _p("gpt-4o-mini", base=2833, tile=5667, price_in=0.15, price_out=0.6),
        _p("gpt-4.1", base=85, tile=170, price_in=2.0, price_out=8.0),
        _p("gpt-4.5", base=85, tile=170, price_in=75.0, price_out=150.0),
        _p("gpt-4.1-mini", rule="patch", multiplier=1.62, price_in=0.4, price_out=1.6),
        _p("gpt-4.1-nano", rule="patch", multiplier=2.46, price_in=0.1, price_out=0.4),
        _p("o4-mini", rule="patch", multiplier=1.72, price_in=1.1, price_out=4.4),
        _p("gpt-5", base=70, tile=140, price_in=1.25, price_out=10.0),
        _p("gpt-5-chat-latest", base=70, tile=140, price_in=1.25, price_out=10.0),
        _p("gpt-5-mini", rule="patch", multiplier=1.2, price_in=0.25, price_out=2.0),
        # gpt-5-nano's multiplier and the gpt-5.4/5.5 multipliers are not published in our sources: placeholders
        # to override in %config VisionMagic.profiles; gpt-5.4/5.5 have no price here (the estimate says so).
        _p("gpt-5-nano", rule="patch", multiplier=1.5, price_in=0.05, price_out=0.4),
        _p(
            "gpt-5.4",
            rule="patch",
            patch_budget=2500,
            multiplier=1.0,
            original_budget=10000,
        ),
        _p(
            "gpt-5.5",
            rule="patch",
            patch_budget=2500,
            multiplier=1.0,
            original_budget=10000,
        ),
        _p("o1", base=75, tile=150, price_in=15.0, price_out=60.0),
        _p("o1-pro", base=75, tile=150, price_in=150.0, price_out=600.0),
        _p("o3", base=75, tile=150, price_in=2.0, price_out=8.0),
    ]
}

# Used for models not in the table (local servers, other vendors): gpt-4o's tile rule, no price.
DEFAULT_PROFILE = ModelProfile(name="default", base=85, tile=170, known=False)


def profile_for(model: str | None, overrides: dict[str, Any] | None = None) -> ModelProfile:
    """The profile of ``model``: the longest table prefix that matches, else ``DEFAULT_PROFILE``.

    ``overrides`` maps a model name (or prefix) to a dict of ``ModelProfile`` fields; an entry for a name
    already in the table changes only the fields it gives.

    Examples
    --------
    >>> profile_for("gpt-4o-mini-2024-07-18").name
    'gpt-4o-mini'
    >>> profile_for("llava:13b").known
    False
    >>> profile_for("llava:13b", {"llava": {"rule": "fixed", "base": 576, "max_side": 672}}).base
    576
    """
    table = dict(PROFILES)
    valid = {f.name for f in fields(ModelProfile)}
    for name, spec in (overrides or {}).items():
        if isinstance(spec, ModelProfile):
            table[name] = replace(spec, name=name)
            continue
        unknown = set(spec) - valid
        if unknown:
            raise ValueError(f"profile {name!r}: unknown field(s) {sorted(unknown)}; valid: {sorted(valid)}")
        table[name] = replace(table.get(name, replace(DEFAULT_PROFILE, known=True)), name=name, **spec)
    key = (model or "").lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" (routers) -> "gpt-4o"
    best = ""
    for name in table:
        if key.startswith(name.lower()) and len(name) > len(best):
            best = name
    return table[best] if best else DEFAULT_PROFILE


def _fit(w: int, h: int, limit: int) -> tuple[int, int]:
    """Scale (w, h) down (never up) to fit inside limit x limit."""
    if max(w, h) <= limit:
        return w, h
    s = limit / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _patch_resize(w: int, h: int, patch: int, budget: int) -> tuple[int, int]:
    """The patch rule's downscale: the guide's algorithm, verbatim."""
    if math.ceil(w / patch) * math.ceil(h / patch) <= budget:
        return w, h
    r = math.sqrt(patch * patch * budget / (w * h))
    r = r * min(math.floor(w * r / patch) / (w * r / patch), math.floor(h * r / patch) / (h * r / patch))
    return max(1, math.floor(w * r)), max(1, math.floor(h * r))


def effective_detail(profile: ModelProfile, detail: str) -> str:
    """``detail`` as the model applies it: ``auto`` counts as ``high`` (the upper bound), ``original``
    falls back to ``high`` where the family has no such level."""
    if detail == "auto" or (detail == "original" and not profile.has_original):
        return "high"
    return detail


def used_size(w: int, h: int, profile: ModelProfile, detail: str = "auto") -> tuple[int, int]:
    """The pixel size the model really looks at for a ``w`` x ``h`` image.

    Examples
    --------
    >>> used_size(4032, 3024, profile_for("gpt-4o"), "high")
    (1024, 768)
    >>> used_size(1800, 2400, profile_for("gpt-4.1-mini"))
    (1056, 1408)
    >>> used_size(4096, 8192, profile_for("gpt-4o"), "low")
    (256, 512)
    """
    detail = effective_detail(profile, detail)
    if detail == "low":
        return _fit(w, h, profile.low_side)
    if profile.rule == "tile":
        w, h = _fit(w, h, profile.max_side)
        if min(w, h) > profile.short_side:
            s = profile.short_side / min(w, h)
            w, h = (
                (profile.short_side, max(1, round(h * s)))
                if w <= h
                else (max(1, round(w * s)), profile.short_side)
            )
        return w, h
    if profile.rule == "patch":
        if detail == "original":
            w, h = _fit(w, h, profile.original_side)
            return _patch_resize(w, h, profile.patch, profile.original_budget)
        if profile.original_budget:  # newer families cap "high" at 2048 px too
            w, h = _fit(w, h, profile.max_side)
        return _patch_resize(w, h, profile.patch, profile.patch_budget)
    return _fit(w, h, profile.max_side)


def image_tokens(w: int, h: int, profile: ModelProfile, detail: str = "auto") -> int:
    """Input tokens billed for one ``w`` x ``h`` image (the size before the model's own resize).

    Examples
    --------
    >>> image_tokens(2048, 4096, profile_for("gpt-4o"), "high")
    1105
    >>> image_tokens(4096, 8192, profile_for("gpt-4o"), "low")
    85
    >>> image_tokens(1024, 1024, profile_for("gpt-4.1-mini"))  # 1024 patches x 1.62
    1659
    """
    eff = effective_detail(profile, detail)
    if profile.rule == "tile":
        if eff == "low":
            return profile.base
        uw, uh = used_size(w, h, profile, eff)
        return profile.base + profile.tile * math.ceil(uw / 512) * math.ceil(uh / 512)
    if profile.rule == "patch":
        uw, uh = used_size(w, h, profile, eff)
        patches = math.ceil(uw / profile.patch) * math.ceil(uh / profile.patch)
        return math.ceil(patches * profile.multiplier)
    return profile.base


def patches(w: int, h: int, profile: ModelProfile, detail: str = "auto") -> int:
    """Number of 32-px patches of the used size (patch-rule models)."""
    uw, uh = used_size(w, h, profile, detail)
    return math.ceil(uw / profile.patch) * math.ceil(uh / profile.patch)


def cost(tokens_in: int, tokens_out: int, profile: ModelProfile) -> float | None:
    """USD for the given usage, or None when the profile has no prices."""
    if profile.price_in is None or profile.price_out is None:
        return None
    return (tokens_in * profile.price_in + tokens_out * profile.price_out) / 1_000_000
