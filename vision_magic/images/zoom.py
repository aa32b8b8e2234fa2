"""Zoom: an overview plus tiles the model sees at full resolution, for fine print it cannot read shrunk.

Pure: Pillow only. The grid comes from :func:`vision_magic.images.regions.plan_tiles`; each tile goes out with a
caption (a text part just before it) saying where it is, e.g. ``tile 2 of 6, rows 1-2000, columns 501-1000
of a 3000x2000 image``.
"""

from __future__ import annotations

from typing import Any

from .encode import ImageOptions, PreparedImage, encode_pixels, full_pixels, looks_like_photo
from .regions import ZOOM_THRESHOLD, overview_caption, plan_tiles, shrink_factor, tile_caption


def prepare_zoomed(obj: Any, source: str, options: ImageOptions) -> list[PreparedImage]:
    """Encoded bytes or a PIL image as an overview plus at most ``options.zoom`` tiles, when the model would
    shrink it more than :data:`ZOOM_THRESHOLD`; else as one image, with a note saying no zoom was needed.

    Examples
    --------
    >>> from PIL import Image
    >>> from vision_magic.images.profiles import profile_for
    >>> options = ImageOptions(profile=profile_for("gpt-4o"), detail="high", zoom=12)
    >>> [(p.width, p.height, p.tile) for p in prepare_zoomed(Image.new("RGB", (3000, 2000)), "t", options)][:3]
    [(1152, 768, (0, 6)), (500, 2000, (1, 6)), (500, 2000, (2, 6))]
    >>> prepare_zoomed(Image.new("RGB", (900, 600)), "s", options)[0].notes
    ['no zoom needed: the model sees this 900x600 image at full size (zoom starts above 1.5x); sent as one image']
    """
    pixels, notes, full, jpeg = full_pixels(obj, source, options)
    size = pixels.size
    profile, detail = options.profile, options.detail
    shrink = shrink_factor(*size, profile, detail)  # with resize off the server shrinks it all the same
    photo = jpeg or looks_like_photo(pixels)
    if shrink <= ZOOM_THRESHOLD:
        seen = "at full size" if shrink <= 1.0 else f"shrunk only {shrink:.2f}x"
        notes.append(
            f"no zoom needed: the model sees this {size[0]}x{size[1]} image {seen} "
            f"(zoom starts above {ZOOM_THRESHOLD:g}x); sent as one image"
        )
        return [encode_pixels(pixels, source, options, full, notes, photo=photo)]
    plan = plan_tiles(*size, profile, detail, options.zoom)
    count = len(plan.boxes)
    overview = encode_pixels(pixels, source, options, full, notes, photo=photo)
    overview.caption = overview_caption(size, (overview.width or 0, overview.height or 0), count)
    overview.tile = (0, count)
    tiles = []
    for k, box in enumerate(plan.boxes, 1):
        caption = tile_caption(k, count, box, size)
        part = pixels.crop(box)
        tile = encode_pixels(part, f"{source} tile {k}/{count}", options, part.size, [caption], photo=photo)
        tile.caption, tile.tile = caption, (k, count)
        tiles.append(tile)
    added = sum(t.tokens or 0 for t in tiles)
    overview.notes.append(f"zoom: overview + {plan.describe()}; the tiles add {added} tokens")
    if plan.shrink > 1.0:
        overview.notes.append(
            f"at most {options.zoom} tiles: each is still shrunk {plan.shrink:.2f}x; allow more tiles "
            "(--zoom N, zoom=N) or crop first to see every pixel"
        )
    return [overview, *tiles]


def zoom_summary(images: list[PreparedImage]) -> str | None:
    """One line saying what zooming adds to a request (tiles and their tokens), or None without tiles.

    Examples
    --------
    >>> from PIL import Image
    >>> from vision_magic.images.profiles import profile_for
    >>> options = ImageOptions(profile=profile_for("gpt-4o"), detail="high", zoom=12)
    >>> zoom_summary(prepare_zoomed(Image.new("RGB", (3000, 2000)), "t", options))
    'zoom adds 6 tiles to 1 overview: +4590 image tokens (the overview alone: 1105)'
    """
    tiles = [img for img in images if img.tile and img.tile[0] > 0]
    if not tiles:
        return None
    overviews = [img for img in images if img.tile and img.tile[0] == 0]
    added = sum(t.tokens or 0 for t in tiles)
    base = sum(o.tokens or 0 for o in overviews)
    s = "s" if len(overviews) != 1 else ""
    return (
        f"zoom adds {len(tiles)} tiles to {len(overviews)} overview{s}: +{added} image tokens "
        f"(the overview{s} alone: {base})"
    )
