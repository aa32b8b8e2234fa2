"""A corpus of awkward and broken image files, generated on the fly into a directory (no binary fixtures).

``make_corpus(tmp_path)`` writes every file and returns ``{name: Path}``. Each generator is small and
deterministic, so a test can also rebuild one case on its own (``CASES[name](directory)``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image


def _save(path: Path, img: Image.Image, fmt: str, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


def _jpeg_bytes(size=(64, 48)) -> bytes:
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes(size=(64, 48)) -> bytes:
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` RGB pixels (one tiny IDAT, then IEND)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def empty(d: Path) -> Path:
    p = d / "empty.png"
    p.write_bytes(b"")
    return p


def text_png(d: Path) -> Path:
    p = d / "notes.png"
    p.write_text("these are my notes, not an image\n")
    return p


def truncated_jpeg(d: Path) -> Path:
    data = _jpeg_bytes((400, 300))
    p = d / "truncated.jpg"
    p.write_bytes(data[: len(data) // 3])
    return p


def truncated_png(d: Path) -> Path:
    data = _png_bytes((400, 300))
    p = d / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    return p


def _photo(size=(200, 150)) -> Image.Image:
    return Image.radial_gradient("L").resize(size).convert("RGB")


def truncated_webp(d: Path) -> Path:
    buf = io.BytesIO()
    _photo().save(buf, "WEBP", quality=80)
    p = d / "truncated.webp"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def truncated_gif(d: Path) -> Path:
    buf = io.BytesIO()
    _photo().save(buf, "GIF")
    p = d / "truncated.gif"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def cmyk_jpeg(d: Path) -> Path:
    # Pure cyan in CMYK: (255, 0, 0, 0) -> RGB (0, 255, 255)
    return _save(d / "cmyk.jpg", Image.new("CMYK", (64, 48), (255, 0, 0, 0)), "JPEG", quality=95)


def gradient16(size=(256, 32)) -> Image.Image:
    """A 16-bit horizontal gradient 0..65535 (mode I;16)."""
    w, h = size
    row = b"".join(struct.pack("<H", round(x * 65535 / (w - 1))) for x in range(w))
    return Image.frombytes("I;16", size, row * h)


def png16(d: Path) -> Path:
    return _save(d / "gray16.png", gradient16(), "PNG")


def tiff16(d: Path) -> Path:
    return _save(d / "gray16.tif", gradient16(), "TIFF")


def rgba(d: Path) -> Path:
    """Left half fully transparent (black underneath), right half opaque red."""
    img = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (32, 0, 64, 32))
    return _save(d / "rgba.png", img, "PNG")


def palette_transparent(d: Path) -> Path:
    """Palette image: index 0 (black) transparent on the left, index 1 (blue) on the right."""
    img = Image.new("P", (64, 32), 0)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (32, 0, 64, 32))
    return _save(d / "palette.png", img, "PNG", transparency=0)


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (48, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]


def animated_gif(d: Path) -> Path:
    f = _frames()
    return _save(d / "anim.gif", f[0], "GIF", save_all=True, append_images=f[1:], duration=100, loop=0)


def animated_webp(d: Path) -> Path:
    f = _frames()
    return _save(
        d / "anim.webp", f[0], "WEBP", save_all=True, append_images=f[1:], duration=100, lossless=True
    )


def multipage_tiff(d: Path) -> Path:
    f = _frames()
    return _save(d / "pages.tif", f[0], "TIFF", save_all=True, append_images=f[1:])


def bmp(d: Path) -> Path:
    return _save(d / "green.bmp", Image.new("RGB", (40, 30), (0, 200, 0)), "BMP")


def svg(d: Path) -> Path:
    p = d / "drawing.svg"
    p.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n')
    return p


def _ftyp(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand + bytes(64)


def heic(d: Path) -> Path:
    p = d / "phone.heic"
    p.write_bytes(_ftyp(b"heic"))
    return p


def avif(d: Path) -> Path:
    p = d / "web.avif"
    p.write_bytes(_ftyp(b"avif"))
    return p


def huge_png(d: Path) -> Path:
    p = d / "huge.png"
    p.write_bytes(huge_png_header())
    return p


def one_pixel(d: Path) -> Path:
    return _save(d / "pixel.png", Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")


def strip(d: Path) -> Path:
    img = Image.linear_gradient("L").transpose(Image.Transpose.TRANSPOSE).resize((20000, 40)).convert("RGB")
    return _save(d / "strip.png", img, "PNG")


def empty_dir(d: Path) -> Path:
    p = d / "no_images"
    p.mkdir(exist_ok=True)
    (p / "readme.txt").write_text("nothing to see")
    return p


CASES: dict[str, Callable[[Path], Path]] = {
    "empty": empty,
    "text_png": text_png,
    "truncated_jpeg": truncated_jpeg,
    "truncated_png": truncated_png,
    "truncated_webp": truncated_webp,
    "truncated_gif": truncated_gif,
    "cmyk_jpeg": cmyk_jpeg,
    "png16": png16,
    "tiff16": tiff16,
    "rgba": rgba,
    "palette_transparent": palette_transparent,
    "animated_gif": animated_gif,
    "animated_webp": animated_webp,
    "multipage_tiff": multipage_tiff,
    "bmp": bmp,
    "svg": svg,
    "heic": heic,
    "avif": avif,
    "huge_png": huge_png,
    "one_pixel": one_pixel,
    "strip": strip,
    "empty_dir": empty_dir,
}

# Cases that must be refused with a SourceError, and a fragment of the reason.
BAD = {
    "empty": "empty",
    "text_png": "not an image",
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "truncated_webp": "corrupt",
    "truncated_gif": "corrupt",
    "svg": "SVG",
    "heic": "HEIC",
    "avif": "AVIF",
    "huge_png": "too large",
    "empty_dir": "no images",
}


def make_corpus(directory: Path) -> dict[str, Path]:
    """Write every case into ``directory``; ``{name: path}``."""
    directory.mkdir(parents=True, exist_ok=True)
    return {name: make(directory) for name, make in CASES.items()}
