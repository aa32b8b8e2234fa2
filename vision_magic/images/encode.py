"""Turn one image (encoded bytes or a PIL image) into exactly what the model will see.

Pure: Pillow only (no IPython, no openai). The policy, in order:

1. Sniff the MIME type from the bytes; refuse what is not an image, and what is too large to decode safely,
   before decoding anything.
2. Work out the size the model really uses (:mod:`vision_magic.images.profiles`) in upright orientation.
3. If the file is already in an API format, upright, opaque or PNG, in a plain mode and no larger than that
   size, send its own bytes with metadata stripped losslessly (no decode, no re-encode).
4. Otherwise decode (JPEG draft decoding at the target scale), apply EXIF orientation, take the first frame,
   convert the mode without visible damage (alpha over white, 16-bit scaled), resize with a good filter, and
   encode by content: photos as JPEG, graphics (plots, screenshots, line art) as PNG.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..errors import SourceError
from .digest import remember_pixels
from .profiles import DEFAULT_PROFILE, ModelProfile, image_tokens, used_size
from .regions import crop_box, format_crop
from .sniff import API_MIMES, is_complete, sniff_mime, strip_jpeg, strip_png

MAX_PIXELS = 178_956_970  # Pillow's own DecompressionBombError threshold (2 x MAX_IMAGE_PIXELS)
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's per-image limit
MAX_REQUEST_BYTES = 50 * 1024 * 1024  # OpenAI's total image payload per request

_UNSUPPORTED_HINTS = {
    "image/svg+xml": "SVG is a vector format the API does not take; render it to PNG first "
    "(e.g. cairosvg.svg2png(url=path, write_to='out.png'))",
    "image/heic": "HEIC needs a decoder: pip install pillow-heif, or convert it to JPEG first",
    "image/avif": "AVIF needs a decoder: pip install pillow-avif-plugin (or a Pillow built with AVIF), "
    "or convert it to JPEG first",
    "application/pdf": "a PDF is not an image; render a page to PNG first (e.g. with pdftoppm or pypdfium2)",
    "text/html": "this is an HTML page, not an image (a web page URL instead of the image's own URL?)",
}


@dataclass
class ImageOptions:
    """How to prepare images: the model's profile, detail level, and encoding choices."""

    profile: ModelProfile = DEFAULT_PROFILE
    detail: str = "auto"
    resize: bool = True
    jpeg_quality: int = 85
    max_pixels: int = MAX_PIXELS
    webp: bool = True  # graphics as lossless WEBP when smaller than PNG (off for servers that reject WEBP)
    # the MIME types the server decodes: a file in any other (judged by its bytes) is re-encoded as PNG/JPEG
    formats: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_request_bytes: int = MAX_REQUEST_BYTES
    # x0, y0, x1, y1 in the upright image: pixels, or fractions when all four are <= 1
    crop: tuple[float, float, float, float] | None = None
    zoom: int = 0  # the most tiles a zoom sends (0: no zoom); see vision_magic.images.zoom


@dataclass(repr=False)
class PreparedImage:
    """One image as it goes on the wire, with what it costs.

    ``url`` is a ``data:`` URL (local images) or the ``http(s)`` link given; ``width``/``height``/``mime``/
    ``nbytes`` describe what is sent (None for links, which the server fetches itself).
    """

    source: str
    url: str
    detail: str
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    original_size: tuple[int, int] | None = None
    nbytes: int | None = None
    tokens: int | None = None
    notes: list[str] = field(default_factory=list)
    data: bytes | None = None
    # text sent just before the image (a zoom's overview and tiles say what they are)
    caption: str | None = None
    tile: tuple[int, int] | None = None  # (k, n): tile k of a zoom's n tiles; (0, n) for its overview

    @functools.cached_property
    def sha256(self) -> str:
        """SHA-256 (hex) of the bytes sent (of the link, for a link); computed once, kept by copies."""
        return hashlib.sha256(self.data if self.data is not None else self.url.encode("utf-8")).hexdigest()

    def part(self) -> dict[str, Any]:
        """The Chat Completions content part for this image."""
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}

    def parts(self) -> list[dict[str, Any]]:
        """The content parts for this image: its caption (a text part) when it has one, then the image."""
        text = [{"type": "text", "text": self.caption}] if self.caption else []
        return [*text, self.part()]

    @property
    def is_link(self) -> bool:
        return not self.url.startswith("data:")

    def describe(self) -> str:
        """One short line: source, MIME, size and bytes (never the payload)."""
        if self.is_link:
            return f"{self.source} (link, fetched by the server)"
        size = f"{self.width}x{self.height}"
        return f"{self.source} {self.mime} {size}, {human_bytes(self.nbytes or 0)}"

    def __repr__(self) -> str:
        return f"<PreparedImage {self.describe()}>"


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def data_url(mime: str, data: bytes) -> str:
    """A base64 ``data:`` URL.

    Examples
    --------
    >>> data_url("image/png", b"abc")
    'data:image/png;base64,YWJj'
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not make the image unusable
        return 1


def _open(data: bytes, source: str, max_pixels: int) -> Any:
    from PIL import Image, UnidentifiedImageError

    mime = sniff_mime(data)
    if not data:
        raise SourceError(source, "the file is empty")
    if mime in _UNSUPPORTED_HINTS:
        try:  # a plugin (pillow-heif, ...) may make Pillow able to read it after all
            if mime in ("image/heic", "image/avif"):
                return _checked_open(Image, io.BytesIO(data), source, max_pixels)
        except (SourceError, UnidentifiedImageError):
            pass
        raise SourceError(source, _UNSUPPORTED_HINTS[mime])
    try:
        return _checked_open(Image, io.BytesIO(data), source, max_pixels)
    except UnidentifiedImageError:
        if mime is None:
            head = bytes(data[:12])
            raise SourceError(source, f"not an image (the bytes start with {head!r})") from None
        raise SourceError(source, f"corrupt or unsupported {mime} image (Pillow cannot read it)") from None


def _checked_open(Image: Any, fp: Any, source: str, max_pixels: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(fp)
        except Image.DecompressionBombError:
            raise SourceError(
                source,
                f"the image is too large to decode safely (over {max_pixels // 1_000_000} megapixels); "
                "downscale it first",
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            if isinstance(e, Image.UnidentifiedImageError):
                raise
            raise SourceError(source, f"corrupt image ({e})") from None
    _check_pixels(img.size, source, max_pixels)
    w, h = img.size
    if w < 1 or h < 1:
        raise SourceError(source, f"the image has no pixels ({w}x{h})")
    return img


def _check_pixels(size: tuple[int, int], source: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise SourceError(
            source,
            f"the image is {w}x{h} pixels, too large to decode safely (limit {max_pixels // 1_000_000} "
            "megapixels); downscale it first",
        )


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _alpha_in_use(img: Any) -> bool:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        a = img.convert("RGBA").getchannel("A") if img.mode == "P" else img.getchannel("A")
        return a.getextrema()[0] < 255
    return "transparency" in img.info


def _passthrough(data: bytes, img: Any, mime: str, target: tuple[int, int], orientation: int) -> bytes | None:
    """The original bytes (metadata stripped) when they can go out as they are, else None."""
    if mime not in API_MIMES or orientation != 1 or target != img.size:
        return None
    if not is_complete(data, mime):
        return None  # decode it: a truncated file then fails with a clear reason instead of going out
    if getattr(img, "is_animated", False):
        return None
    if mime == "image/jpeg":
        return strip_jpeg(data) if img.mode in ("RGB", "L") else None
    if mime == "image/png":
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            return None  # 16-bit and others: convert
        if (img.mode in ("RGBA", "LA") or "transparency" in img.info) and _alpha_in_use(img):
            return None
        return strip_png(data)
    # WEBP and still GIF: no lossless stripper here; re-encode only when they carry metadata.
    if any(k in img.info for k in ("exif", "xmp", "comment", "icc_profile")):
        return None
    return data


def to_display_mode(img: Any, notes: list[str] | None = None) -> Any:
    """``img`` converted to RGB or L without visible damage: alpha composited on white, 16-bit and float
    images scaled into 8 bits (not clipped), palette and CMYK expanded.

    Examples
    --------
    >>> from PIL import Image
    >>> to_display_mode(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    from PIL import Image

    notes = notes if notes is not None else []
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _scale_high_depth(img, notes)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if mode == "RGBA" else img.convert("RGBA")  # no copy of an RGBA image (matplotlib's PNGs)
        if rgba.getchannel("A").getextrema()[0] < 255:
            notes.append("transparency composited on white")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            bg.alpha_composite(rgba)
            rgba = bg
        return rgba.convert("L" if mode in ("LA", "La") else "RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return img.convert("RGB")


def _scale_high_depth(img: Any, notes: list[str]) -> Any:
    """16/32-bit integer or float gray to 8-bit: divide by the bit depth the data really uses."""
    if img.mode not in ("I", "F"):
        img = img.convert("I")
    lo, hi = img.getextrema()
    if img.mode == "F":
        if lo >= 0 and hi <= 1:  # float in [0, 1]
            scale, offset = 255.0, 0.0
        else:
            span = (hi - lo) or 1.0
            scale, offset = 255.0 / span, -lo * 255.0 / span
            notes.append(f"float values {lo:g}..{hi:g} scaled to 0..255")
        return img.point(lambda v: v * scale + offset).convert("L")
    bits = max(8, math.ceil(math.log2(max(hi, 1) + 1)))
    if bits > 8:
        notes.append(f"{bits}-bit values scaled to 8 bits")
    top = (1 << bits) - 1
    return img.point(lambda v: v * (255.0 / top)).convert("L")


def looks_like_photo(img: Any) -> bool:
    """True for continuous-tone content (photos, renders), False for graphics with large flat areas
    (plots, screenshots, diagrams, line art), judged on a small nearest-neighbour sample."""
    from PIL import Image

    sample = img if img.mode in ("RGB", "L") else img.convert("RGB")
    sample = sample.resize((min(128, sample.width), min(128, sample.height)), Image.Resampling.NEAREST)
    total = sample.width * sample.height
    colors = sample.getcolors(maxcolors=total) or []
    if len(colors) <= 256:
        return False
    top = sum(sorted((c for c, _ in colors), reverse=True)[:16])
    return top / total < 0.5


def encode(img: Any, *, photo: bool, quality: int = 85, webp: bool = False) -> tuple[bytes, str]:
    """Encode ``img`` (RGB or L) as JPEG when ``photo``, else as PNG or, with ``webp``, lossless WEBP when
    that is smaller (both keep text and thin lines exact); returns (bytes, MIME).

    Examples
    --------
    >>> from PIL import Image
    >>> from PIL import ImageDraw
    >>> img = Image.new("RGB", (1200, 800), "white")
    >>> for y in range(0, 800, 12): ImageDraw.Draw(img).text((5, y), "File Edit View 0123456789 " * 8, "black")
    >>> encode(img, photo=False, webp=True)[1]
    'image/webp'
    >>> encode(Image.new("RGB", (300, 200), "white"), photo=True)[1]
    'image/jpeg'
    """
    buf = io.BytesIO()
    if photo:
        img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
        return buf.getvalue(), "image/jpeg"
    alt = _lossless_webp(img) if webp and _webp_first(img) else None
    if alt is not None and len(alt) > _WEBP_SKIP_PNG_BYTES:
        # Graphics this large: fast lossless WEBP is far smaller than PNG (2-3x on screenshots and plots), so
        # the PNG is not even made (it would cost more time than the WEBP itself).
        return alt, "image/webp"
    png = _png(img)
    if webp and len(png) > _WEBP_MIN_BYTES:
        alt = alt or _lossless_webp(img)
        if alt is not None and len(alt) < len(png) * 0.9:
            return alt, "image/webp"
    return png, "image/png"


def _png(img: Any) -> bytes:
    """PNG bytes of ``img``. Large images are first deflated with run-length matching only (zlib's Z_RLE), about
    twice as fast as the default and within a few per cent of its size for plots, screenshots and flat graphics,
    whose rows are runs of one colour or antialiased edges. Where rows repeat at a distance (blocks of text: up
    to 4x the default's size) the default strategy is used instead: when the RLE output is above
    :data:`_RLE_MAX_BYTES_PER_PIXEL`, two bands of the image are deflated both ways to tell (a few ms, instead
    of always encoding the whole image a second time). The pixels are the same either way.

    Examples
    --------
    >>> from PIL import Image
    >>> flat = Image.new("RGB", (1024, 768), "teal")
    >>> len(_png(flat)) < 5000
    True
    """
    if img.width * img.height >= _RLE_MIN_PIXELS:
        rle = _deflated(img, _Z_RLE)
        if len(rle) <= img.width * img.height * _RLE_MAX_BYTES_PER_PIXEL or rle_holds_up(img):
            return rle
    return _deflated(img, None)


def _deflated(img: Any, strategy: int | None) -> bytes:
    """``img`` as PNG at zlib level 6 with the deflate ``strategy`` (None: zlib's default)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6, **({} if strategy is None else {"compress_type": strategy}))
    return buf.getvalue()


def rle_holds_up(img: Any) -> bool:
    """Whether Z_RLE deflates ``img`` to at most :data:`_RLE_MAX_OVER_DEFAULT` times the default strategy's
    size, judged on two bands of rows (at a third and two thirds of the height, each a 32nd of it).

    Examples
    --------
    >>> from PIL import Image, ImageDraw
    >>> text = Image.new("L", (1024, 768), 255)
    >>> for y in range(0, 768, 12): ImageDraw.Draw(text).text((4, y), "Total 1234.50 EUR " * 8, 0)
    >>> rle_holds_up(text)  # the same glyphs again and again: only the default strategy finds them
    False
    >>> rle_holds_up(Image.linear_gradient("L").resize((1024, 768)))
    True
    """
    rows = max(16, img.height // 32)
    bands = [
        img.crop((0, top, img.width, min(img.height, top + rows)))
        for top in (img.height // 3, 2 * img.height // 3)
    ]
    rle = sum(len(_deflated(band, _Z_RLE)) for band in bands)
    return rle <= sum(len(_deflated(band, None)) for band in bands) * _RLE_MAX_OVER_DEFAULT


_Z_RLE = 3  # zlib.Z_RLE
_RLE_MIN_PIXELS = 512 * 512  # smaller images deflate in a few milliseconds either way
# Z_RLE output per pixel below which it is kept unchecked: a bar chart ~0.01, a flat image ~0.005; antialiased
# plots and screenshots (~0.17-0.2) are checked on two bands (RLE ~1-7 % larger than the default there), as is
# text (aliased ~0.2, 4x the default's size; antialiased ~0.7)
_RLE_MAX_BYTES_PER_PIXEL = 0.1
_RLE_MAX_OVER_DEFAULT = 1.15  # RLE kept when at most this much larger than the default strategy (bands)


# PNG is the most widely accepted format: switch to WEBP only where it saves something worth having.
_WEBP_MIN_BYTES = 8192
_WEBP_SKIP_PNG_BYTES = 32768


def _webp_first(img: Any) -> bool:
    """Whether a graphic is large and busy enough (text, lines, antialiasing) for its PNG to be big: then
    lossless WEBP is made first. Small or flat ones get PNG first, which is often small enough to keep."""
    from PIL import Image

    if img.width * img.height < 512 * 512:
        return False
    sample = img.resize((min(64, img.width), min(64, img.height)), Image.Resampling.NEAREST)
    return sample.getcolors(maxcolors=32) is None  # more than 32 colours in a 64x64 sample


def _lossless_webp(img: Any) -> bytes | None:
    if max(img.size) > 16383:  # the WEBP format's own limit
        return None
    buf = io.BytesIO()
    try:
        # Registers WEBP alone: saving a format Pillow has not loaded yet would import all of its ~40 plugins
        # first (~100 ms on the first image of a session; bench/cold_start.py).
        from PIL import WebPImagePlugin  # noqa: F401

        # method 0: 5-7x faster than method 2 (30 ms against 190 ms for a 1365x768 screenshot) for files
        # about a third larger, still 2-3x smaller than PNG; preparing fast matters more (bench/prepare.py)
        img.save(buf, format="WEBP", lossless=True, method=0, exact=True)
    except (ImportError, OSError, ValueError, KeyError):  # a Pillow built without WEBP
        return None
    return buf.getvalue()


def fit_bytes(
    img: Any, data: bytes, mime: str, max_bytes: int, quality: int, notes: list[str], why: str
) -> tuple[Any, bytes, str]:
    """Re-encode ``img`` (RGB or L) until the encoded size is at most ``max_bytes``: lower JPEG quality
    first (photos), then smaller sizes; each step is noted. Returns (image, bytes, MIME).

    Examples
    --------
    >>> import numpy as np; from PIL import Image
    >>> noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    >>> notes = []
    >>> img, data, mime = fit_bytes(noise, b"x" * 10**6, "image/png", 50_000, 85, notes, "test limit")
    >>> len(data) <= 50_000, mime, bool(notes)
    (True, 'image/jpeg', True)
    """
    from PIL import Image

    if len(data) <= max_bytes:
        return img, data, mime
    before = len(data)
    if mime != "image/jpeg" and looks_like_photo(img):
        mime = "image/jpeg"
    q = quality
    while len(data) > max_bytes:
        if mime == "image/jpeg" and q > 60:
            q = max(60, q - 10)
        elif max(img.size) > 16:
            s = max(0.5, min(0.9, math.sqrt(max_bytes / len(data)) * 0.95))
            size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
            img = img.resize(size, Image.Resampling.LANCZOS)
        else:
            break
        data, mime = encode(img, photo=mime == "image/jpeg", quality=q, webp=mime == "image/webp")
    quality_note = f", JPEG quality {q}" if mime == "image/jpeg" and q != quality else ""
    notes.append(
        f"shrunk to {img.width}x{img.height}{quality_note} ({human_bytes(before)} -> {human_bytes(len(data))}) "
        f"to stay under the {why}"
    )
    return img, data, mime


def prepare_bytes(data: bytes, source: str, options: ImageOptions | None = None) -> PreparedImage:
    """Prepare encoded image bytes (any format Pillow reads) for sending.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (4000, 3000), "red").save(buf, "JPEG")
    >>> img = prepare_bytes(buf.getvalue(), "red.jpg", ImageOptions(detail="high"))
    >>> (img.mime, img.width, img.height, img.tokens)
    ('image/jpeg', 1024, 768, 765)
    """
    options = options or ImageOptions()
    data = bytes(data)
    img = _open(data, source, options.max_pixels)
    mime = sniff_mime(data) or _pil_mime(img)
    orientation = _orientation(img)
    upright = _upright(img.size, orientation)
    box = crop_box(options.crop, upright, source) if options.crop else None
    region = _box_size(box) if box else upright
    target = used_size(*region, options.profile, options.detail) if options.resize else region
    try:
        out = (
            None if box or mime not in options.formats else _passthrough(data, img, mime, target, orientation)
        )
        if out is not None and len(out) > options.max_image_bytes:
            out = None  # too big to send as it is: decode and shrink
        if out is not None and mime == "image/png" and options.webp and len(out) > _WEBP_MIN_BYTES:
            out, mime = _smaller_lossless(img, out)
        if out is not None:
            return _finish(source, out, mime, target, upright, options, [])
        if mime == "image/jpeg" and target != region:
            # Decode at 1/2, 1/4 or 1/8 scale, never below the size we resize to (in file orientation); with a
            # crop, the whole image at the scale that leaves the cropped part at least that size.
            need = (
                math.ceil(target[0] * upright[0] / region[0]),
                math.ceil(target[1] * upright[1] / region[1]),
            )
            img.draft(img.mode if img.mode in ("RGB", "L") else "RGB", _upright(need, orientation))
        return _pipeline(
            img, source, options, orientation, target, upright, photo=mime == "image/jpeg", box=box
        )
    except SourceError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise SourceError(source, f"corrupt {mime} image ({e})") from None


def load_codecs() -> None:
    """Import Pillow and the codecs it loads for the first image it opens or saves (``Image.preinit``: BMP,
    GIF, JPEG, PPM, PNG), ahead of the first image.

    Examples
    --------
    >>> load_codecs()
    >>> import sys; "PIL.PngImagePlugin" in sys.modules
    True
    """
    from PIL import Image, ImageOps  # noqa: F401 - ImageOps: EXIF rotation

    Image.preinit()


def _pil_mime(img: Any) -> str:
    from PIL import Image

    return Image.MIME.get(img.format or "", "application/octet-stream")


def _pipeline(
    img: Any,
    source: str,
    options: ImageOptions,
    orientation: int,
    target: tuple[int, int],
    upright: tuple[int, int],
    *,
    photo: bool = False,
    box: tuple[int, int, int, int] | None = None,
) -> PreparedImage:
    """The one decode-to-wire path: first frame, upright, cropped to ``box`` (upright pixels of the full
    image), display mode, resized to ``target``, encoded by content (JPEG for photos, PNG or lossless WEBP for
    graphics), shrunk to the byte limit."""
    notes: list[str] = []
    img = upright_pixels(img, source, orientation, notes, box=box, full_size=upright)
    region = _box_size(box) if box else upright
    return encode_pixels(
        img, source, options, upright, notes, photo=photo or None, target=target, from_size=region
    )


def full_pixels(obj: Any, source: str, options: ImageOptions) -> tuple[Any, list[str], tuple[int, int], bool]:
    """Encoded bytes or a PIL image at full resolution, upright, cropped to ``options.crop``, in RGB or L:
    ``(pixels, notes, upright size before the crop, whether it came as a JPEG)``. For zooming, which needs
    every pixel (no draft decoding).

    Examples
    --------
    >>> from PIL import Image
    >>> pixels, notes, size, jpeg = full_pixels(Image.new("RGB", (60, 40)), "a", ImageOptions(crop=(0, 0, 0.5, 1)))
    >>> pixels.size, size, jpeg
    ((30, 40), (60, 40), False)
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        img = _open(data, source, options.max_pixels)
        jpeg = (sniff_mime(data) or _pil_mime(img)) == "image/jpeg"
    else:
        img, jpeg = obj, False
    orientation = _orientation(img)
    upright = _upright(img.size, orientation)
    _check_pixels(upright, source, options.max_pixels)
    box = crop_box(options.crop, upright, source) if options.crop else None
    notes: list[str] = []
    try:
        return (
            upright_pixels(img, source, orientation, notes, box=box, full_size=upright),
            notes,
            upright,
            jpeg,
        )
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise SourceError(source, f"corrupt image ({e})") from None


def upright_pixels(
    img: Any,
    source: str,
    orientation: int,
    notes: list[str],
    *,
    box: tuple[int, int, int, int] | None = None,
    full_size: tuple[int, int] | None = None,
) -> Any:
    """``img`` decoded as the model should see it, before any resize: its first frame, upright, cropped to
    ``box`` (in pixels of the upright ``full_size``; scaled when ``img`` was draft-decoded smaller), in RGB or
    L. What was done is added to ``notes``.

    Examples
    --------
    >>> from PIL import Image
    >>> notes = []
    >>> upright_pixels(Image.new("RGBA", (40, 30)), "a", 1, notes, box=(0, 0, 20, 10)).size, notes
    ((20, 10), ['cropped to 0,0,20,10 of 40x30', 'transparency composited on white'])
    """
    if getattr(img, "is_animated", False):
        notes.append(f"first of {getattr(img, 'n_frames', '?')} frames")
        img.seek(0)
    img.load()
    if orientation != 1:
        from PIL import ImageOps  # here, not above: ~3 ms of imports most images never need

        img = ImageOps.exif_transpose(img)
        notes.append(f"rotated upright (EXIF orientation {orientation})")
    if box is not None:
        full = full_size or img.size
        sx, sy = img.width / full[0], img.height / full[1]
        scaled = (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
        img = img.crop(scaled)
        notes.append(f"cropped to {format_crop(box)} of {full[0]}x{full[1]}")
    return to_display_mode(img, notes)


def encode_pixels(
    img: Any,
    source: str,
    options: ImageOptions,
    original: tuple[int, int],
    notes: list[str],
    *,
    photo: bool | None = None,
    target: tuple[int, int] | None = None,
    from_size: tuple[int, int] | None = None,
) -> PreparedImage:
    """Upright RGB or L pixels (see :func:`upright_pixels`) resized to ``target`` (default: the size the
    model uses), encoded by content (``photo`` None: judged from the pixels) and shrunk to the byte limit.
    ``original`` is the size reported as the image's own; ``from_size`` the size a resize note names (default:
    the pixels' own, which is smaller when a JPEG was draft-decoded).

    Examples
    --------
    >>> from PIL import Image
    >>> encode_pixels(Image.new("RGB", (4000, 1000), "white"), "a", ImageOptions(), (4000, 1000), []).describe()
    'a image/png 2048x512, 4 KB'
    """
    from PIL import Image

    if target is None:
        target = used_size(*img.size, options.profile, options.detail) if options.resize else img.size
    if img.size != target:
        size = from_size or img.size
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        notes.append(f"resized {size[0]}x{size[1]} -> {target[0]}x{target[1]}")
    photo = looks_like_photo(img) if photo is None else photo
    photo = photo or "image/png" not in options.formats  # a server without PNG
    out, mime = encode(img, photo=photo, quality=options.jpeg_quality, webp=options.webp)
    img, out, mime = fit_bytes(
        img, out, mime, options.max_image_bytes, options.jpeg_quality, notes, _limit_name(options)
    )
    if mime != "image/jpeg" and img.mode in ("RGB", "L"):  # PNG or lossless WEBP: the pixels are these
        remember_pixels(out, img)  # the replay key's digest then needs no second decode
    return _finish(source, out, mime, img.size, original, options, notes)


def _box_size(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _limit_name(options: ImageOptions) -> str:
    return f"{human_bytes(options.max_image_bytes)} per-image limit"


def _smaller_lossless(img: Any, png: bytes) -> tuple[bytes, str]:
    """A PNG's lossless WEBP twin when it is smaller (same pixels), else the PNG."""
    # Only called for PNGs whose alpha is unused (see _passthrough): dropping it keeps every pixel.
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1") or "transparency" in img.info:
        return png, "image/png"
    img.load()
    alt = _lossless_webp(img if img.mode in ("RGB", "L") else img.convert("L" if img.mode == "LA" else "RGB"))
    if alt is not None and len(alt) < len(png) * 0.9:
        return alt, "image/webp"
    return png, "image/png"


def prepare_image(img: Any, source: str, options: ImageOptions | None = None) -> PreparedImage:
    """Prepare an in-memory ``PIL.Image.Image`` (EXIF orientation in its ``getexif()`` is applied).

    Examples
    --------
    >>> from PIL import Image
    >>> prepare_image(Image.new("RGBA", (300, 200)), "img").describe().startswith("img image/png 300x200, ")
    True
    """
    options = options or ImageOptions()
    orientation = _orientation(img)
    upright = _upright(img.size, orientation)
    _check_pixels(upright, source, options.max_pixels)
    box = crop_box(options.crop, upright, source) if options.crop else None
    region = _box_size(box) if box else upright
    target = used_size(*region, options.profile, options.detail) if options.resize else region
    return _pipeline(img, source, options, orientation, target, upright, box=box)


def fit_request(images: list[PreparedImage], options: ImageOptions) -> list[PreparedImage]:
    """Shrink the largest images until all of them together are at most ``options.max_request_bytes``
    (the API's total image payload limit), with a note on each image that changed.

    Examples
    --------
    >>> from PIL import Image
    >>> imgs = [prepare_image(Image.new("RGB", (64, 64)), "a")]
    >>> fit_request(imgs, ImageOptions()) == imgs
    True
    """
    from PIL import Image

    limit = options.max_request_bytes
    out = list(images)
    for _ in range(8):
        total = sum(img.nbytes or 0 for img in out)
        if total <= limit:
            return out
        i = max(range(len(out)), key=lambda k: out[k].nbytes or 0)
        img = out[i]
        if not img.data:
            break
        others = total - (img.nbytes or 0)
        budget = max(1024, min(limit - others, (img.nbytes or 0) * 3 // 4))
        notes = list(img.notes)
        pil = to_display_mode(Image.open(io.BytesIO(img.data)))
        why = f"{human_bytes(limit)} total limit of a request"
        mime = img.mime or "image/png"
        pil, data, mime = fit_bytes(pil, img.data, mime, budget, options.jpeg_quality, notes, why)
        out[i] = _finish(img.source, data, mime, pil.size, img.original_size or pil.size, options, notes)
    return out


def _finish(
    source: str,
    data: bytes,
    mime: str,
    size: tuple[int, int],
    upright: tuple[int, int],
    options: ImageOptions,
    notes: list[str],
) -> PreparedImage:
    tokens = image_tokens(*size, options.profile, options.detail)
    return PreparedImage(
        source=source,
        url=data_url(mime, data),
        detail=options.detail,
        mime=mime,
        width=size[0],
        height=size[1],
        original_size=upright,
        nbytes=len(data),
        tokens=tokens,
        notes=notes,
        data=data,
    )


def prepare_link(url: str, source: str, options: ImageOptions | None = None) -> PreparedImage:
    """An ``http(s)`` image link, sent as-is for the server to fetch (size and tokens unknown)."""
    options = options or ImageOptions()
    return PreparedImage(source=source, url=url, detail=options.detail)


def decode_data_url(url: str, source: str) -> bytes:
    """The bytes inside a base64 ``data:`` URL."""
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise SourceError(source, "only base64 data: URLs are supported (data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise SourceError(source, "the data: URL's base64 payload is malformed") from None
