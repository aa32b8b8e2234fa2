"""Parts of an image: crop boxes, and the tile grid a zoom sends so fine print is seen at full resolution.

Pure: the standard library only (the pixels are cut in :mod:`vision_magic.images.encode`).

A crop is ``(x0, y0, x1, y1)`` in the upright image: pixels (``x1``/``y1`` exclusive, as in Pillow), or
fractions of the width and height when all four are at most 1. A zoom sends an overview (the whole image at
the model's size) plus tiles that the model sees without downscaling, at most ``max_tiles`` of them.

Examples
--------
>>> from vision_magic.images.profiles import profile_for
>>> crop_box(parse_crop("0,0,.5,.5"), (3000, 2000), "a.png")
(0, 0, 1500, 1000)
>>> plan = plan_tiles(3000, 2000, profile_for("gpt-4o"), "high", 12)
>>> plan.columns, plan.rows, plan.boxes[1]
(6, 1, (500, 0, 1000, 2000))
>>> tile_caption(2, 6, (1000, 0, 2000, 1000), (3000, 2000))
'tile 2 of 6, rows 1-1000, columns 1001-2000 of a 3000x2000 image'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import SourceError, VisionMagicError
from .profiles import ModelProfile, image_tokens, used_size

ZOOM_THRESHOLD = 1.5  # zoom only when the model would shrink the image more than this
DEFAULT_MAX_TILES = 12

Box = tuple[float, float, float, float]

# ``name[x0,y0,x1,y1]``: four numbers in brackets at the very end of a source
_CROP_SUFFIX = re.compile(r"^(?P<source>.+?)\[(?P<box>\s*[-+]?[\d.]+\s*(?:,\s*[-+]?[\d.]+\s*){3})\]$", re.S)


def parse_crop(value: object) -> Box:
    """A crop from ``"x0,y0,x1,y1"`` or four numbers; a malformed one is a one-line error.

    Examples
    --------
    >>> parse_crop("10, 20, 300, 400"), parse_crop((0, 0, 0.5, 1))
    ((10.0, 20.0, 300.0, 400.0), (0.0, 0.0, 0.5, 1.0))
    >>> parse_crop("10,20,300")
    Traceback (most recent call last):
    ...
    vision_magic.errors.VisionMagicError: crop '10,20,300' is not four numbers: use X0,Y0,X1,Y1 (pixels, or fractions 0..1), e.g. 0,0,0.5,0.5
    """
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(float(v) for v in items)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        shown = value if isinstance(value, str) else repr(value)
        raise VisionMagicError(
            f"crop {shown!r} is not four numbers: use X0,Y0,X1,Y1 (pixels, or fractions 0..1), e.g. 0,0,0.5,0.5"
        )
    return numbers  # type: ignore[return-value]


def split_crop(token: str) -> tuple[str, Box] | None:
    """``("name", box)`` when ``token`` ends in ``[x0,y0,x1,y1]`` (four numbers), else None.

    The caller decides precedence: a token that names an existing file (or a glob that matches) is a path
    first; only then is a trailing box a crop. Glob classes (``img[0-9].png``) and URLs never end in four
    comma-separated numbers in brackets.

    Examples
    --------
    >>> split_crop("fig[0,0,0.5,0.5]"), split_crop("shots/img[0-9].png"), split_crop("a[1]")
    (('fig', (0.0, 0.0, 0.5, 0.5)), None, None)
    """
    match = _CROP_SUFFIX.match(token)
    if match is None:
        return None
    try:
        return match["source"], parse_crop(match["box"])
    except VisionMagicError:
        return None


def format_crop(box: Box) -> str:
    """``x0,y0,x1,y1`` with whole numbers shown without a decimal point.

    Examples
    --------
    >>> format_crop((0.0, 0.0, 0.5, 100.0))
    '0,0,0.5,100'
    """
    return ",".join(f"{v:g}" for v in box)


def crop_box(box: Box, size: tuple[int, int], label: str) -> tuple[int, int, int, int]:
    """``box`` in whole pixels of an image of ``size`` (fractions when all four are at most 1); a crop that
    is empty or reaches outside the image is a one-line :class:`SourceError`.

    Examples
    --------
    >>> crop_box((100, 50, 400, 250), (640, 480), "a")
    (100, 50, 400, 250)
    >>> crop_box((0, 0, 800, 100), (640, 480), "a")
    Traceback (most recent call last):
    ...
    vision_magic.errors.SourceError: a: crop 0,0,800,100 is outside the 640x480 image (x1 800 > width 640); crop within 0,0,640,480 or give fractions 0..1
    """
    w, h = size
    x0, y0, x1, y1 = box
    text = format_crop(box)
    if x1 <= x0 or y1 <= y0:
        raise SourceError(label, f"crop {text} is empty: x1 must be greater than x0 and y1 greater than y0")
    if all(0 <= v <= 1 for v in box):
        x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
    else:
        for name, v in (("x0", x0), ("y0", y0)):
            if v < 0:
                raise SourceError(label, f"crop {text} is outside the {w}x{h} image ({name} {v:g} < 0)")
        for name, v, limit, side in (("x1", x1, w, "width"), ("y1", y1, h, "height")):
            if v > limit:
                raise SourceError(
                    label,
                    f"crop {text} is outside the {w}x{h} image ({name} {v:g} > {side} {limit}); "
                    f"crop within 0,0,{w},{h} or give fractions 0..1",
                )
    px = (round(x0), round(y0), round(x1), round(y1))
    if px[2] <= px[0] or px[3] <= px[1]:
        raise SourceError(label, f"crop {text} is empty at {w}x{h} pixels (less than one pixel wide or high)")
    return px


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one zoom: a ``columns`` x ``rows`` grid of ``boxes`` (x0, y0, x1, y1; row by row) over a
    ``width`` x ``height`` image, each shrunk by ``shrink`` (1.0: seen at full resolution)."""

    width: int
    height: int
    columns: int
    rows: int
    boxes: list[tuple[int, int, int, int]]
    shrink: float
    tokens: int

    def describe(self) -> str:
        """One line: the grid and the tile size.

        Examples
        --------
        >>> from vision_magic.images.profiles import profile_for
        >>> plan_tiles(3000, 2000, profile_for("gpt-4o"), "high", 12).describe()
        '6 x 1 tiles of 500x2000 px, each seen at full resolution'
        """
        x0, y0, x1, y1 = self.boxes[0]
        seen = (
            "each seen at full resolution" if self.shrink <= 1.0 else f"each still shrunk {self.shrink:.2f}x"
        )
        return f"{self.columns} x {self.rows} tiles of {x1 - x0}x{y1 - y0} px, {seen}"


def _edges(length: int, parts: int) -> list[int]:
    return [round(length * i / parts) for i in range(parts + 1)]


def shrink_factor(w: int, h: int, profile: ModelProfile, detail: str) -> float:
    """How much the model shrinks a ``w`` x ``h`` image (1.0: not at all).

    Examples
    --------
    >>> from vision_magic.images.profiles import profile_for
    >>> shrink_factor(3000, 2000, profile_for("gpt-4o"), "high")
    2.6041666666666665
    """
    uw, uh = used_size(w, h, profile, detail)
    return max(w / uw, h / uh)


def plan_tiles(w: int, h: int, profile: ModelProfile, detail: str, max_tiles: int) -> TilePlan:
    """The grid of at most ``max_tiles`` tiles (at least 2) that the model sees least shrunk, then with the
    fewest tokens, then with the fewest tiles. Tiles cover the image exactly, without overlap."""
    best: tuple[tuple[float, int, int], TilePlan] | None = None
    for columns in range(1, max_tiles + 1):
        for rows in range(1, max_tiles // columns + 1):
            if columns * rows < 2 or columns > w or rows > h:
                continue
            xs, ys = _edges(w, columns), _edges(h, rows)
            boxes = [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(rows) for c in range(columns)]
            shrink = max(shrink_factor(x1 - x0, y1 - y0, profile, detail) for x0, y0, x1, y1 in boxes)
            tokens = sum(image_tokens(x1 - x0, y1 - y0, profile, detail) for x0, y0, x1, y1 in boxes)
            key = (round(shrink, 3), tokens, columns * rows)
            if best is None or key < best[0]:
                best = (key, TilePlan(w, h, columns, rows, boxes, shrink, tokens))
    if best is None:
        raise SourceError("zoom", f"a {w}x{h} image cannot be cut into tiles")
    return best[1]


def tile_caption(index: int, count: int, box: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    """The text that goes before a tile in the prompt (rows and columns 1-based, inclusive)."""
    x0, y0, x1, y1 = box
    return (
        f"tile {index} of {count}, rows {y0 + 1}-{y1}, columns {x0 + 1}-{x1} of a {size[0]}x{size[1]} image"
    )


def overview_caption(size: tuple[int, int], sent: tuple[int, int], count: int) -> str:
    """The text that goes before a zoom's overview in the prompt.

    Examples
    --------
    >>> overview_caption((3000, 2000), (1152, 768), 4)
    'overview of a 3000x2000 image (shown at 1152x768); the 4 tiles after it show its parts at full resolution'
    """
    return (
        f"overview of a {size[0]}x{size[1]} image (shown at {sent[0]}x{sent[1]}); the {count} tiles after it "
        "show its parts at full resolution"
    )


def max_tiles_of(zoom: object) -> int:
    """The tile bound a ``zoom`` option asks for: 0 (off) for None/False, :data:`DEFAULT_MAX_TILES` for True,
    else the number (at least 2).

    Examples
    --------
    >>> max_tiles_of(None), max_tiles_of(True), max_tiles_of(6), max_tiles_of("20")
    (0, 12, 6, 20)
    >>> max_tiles_of(1)
    Traceback (most recent call last):
    ...
    vision_magic.errors.VisionMagicError: zoom=1: give True or the most tiles to send (2 to 64), e.g. --zoom 6
    """
    if zoom is None or zoom is False:
        return 0
    if zoom is True:
        return DEFAULT_MAX_TILES
    try:
        n = int(zoom)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        n = -1
    if isinstance(zoom, float) or not 2 <= n <= 64:
        raise VisionMagicError(f"zoom={zoom}: give True or the most tiles to send (2 to 64), e.g. --zoom 6")
    return n
