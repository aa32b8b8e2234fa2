"""SVG to PNG: the API takes no vector images, so an SVG is rasterised first (with cairosvg, when installed).

Pure: cairosvg is optional and imported only here, when an SVG is met.
"""

from __future__ import annotations

import io

from ..errors import SourceError

NO_CAIROSVG = "an SVG output cannot be sent as it is: pip install cairosvg to rasterise it"
SMALLEST_SIDE = 512  # an SVG drawn smaller than this (longest side, px) is drawn at TARGET_SIDE instead
LARGEST_SIDE = 4096  # ... and one drawn larger than this, at TARGET_SIDE too
TARGET_SIDE = 1536


def rasterise_svg(data: bytes, label: str) -> bytes:
    """PNG bytes of an SVG drawing at a sensible size: its own size when its longest side is 512 to 4096 px,
    else scaled so the longest side is 1536 px (a vector drawing loses nothing; the model's resize follows).

    Raises :class:`SourceError` (one line naming ``label``) without cairosvg or for an SVG it cannot draw.

    Examples
    --------
    >>> svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>'
    >>> from PIL import Image
    >>> Image.open(io.BytesIO(rasterise_svg(svg, "@3:1"))).size  # doctest: +SKIP
    (1536, 768)
    """
    try:
        import cairosvg
    except (ImportError, OSError):  # OSError: the package is there, the cairo library is not
        raise SourceError(label, NO_CAIROSVG) from None
    try:
        png = cairosvg.svg2png(bytestring=data)
        from PIL import Image

        side = max(Image.open(io.BytesIO(png)).size)
        if side and not SMALLEST_SIDE <= side <= LARGEST_SIDE:
            png = cairosvg.svg2png(bytestring=data, scale=TARGET_SIDE / side)
    except Exception as e:  # cairosvg raises many kinds (XML, parse, value errors)
        raise SourceError(label, f"the SVG could not be drawn ({type(e).__name__}: {e})") from None
    return png
