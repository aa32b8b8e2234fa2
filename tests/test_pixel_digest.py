"""The replay key's image identity (images/digest.py): equal across lossless formats, unchanged by the
shortcuts, and seeded from the pixels in memory when the sent image was encoded losslessly (no second decode)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from vision_magic.images import digest
from vision_magic.images.digest import pixel_digest, remember_pixels
from vision_magic.images.encode import ImageOptions, prepare_bytes


def _reference(data: bytes) -> str:
    """The digest as first defined: decoded, through RGBA, RGB when every pixel is opaque."""
    with Image.open(io.BytesIO(data)) as img:
        rgba = img.convert("RGBA")
    pixels = rgba.convert("RGB") if rgba.getextrema()[3] == (255, 255) else rgba
    head = f"{pixels.mode} {pixels.size[0]}x{pixels.size[1]}\n".encode()
    return hashlib.sha256(head + pixels.tobytes()).hexdigest()


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    alpha = rgb.convert("RGBA")
    alpha.putalpha(Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "RGB": rgb,
        "L": rgb.convert("L"),
        "RGBA": alpha,
        "RGBA opaque": rgb.convert("RGBA"),
        "LA": alpha.convert("LA"),
        "P": palette,
        "1": rgb.convert("1"),
    }


@pytest.fixture(autouse=True)
def empty_memo():
    digest._memo.clear()
    yield
    digest._memo.clear()


@pytest.mark.parametrize("mode", list(_images()))
def test_digest_is_unchanged_and_equal_for_png_and_lossless_webp(mode):
    img = _images()[mode]
    png = _encoded(img, "PNG")
    webp = _encoded(
        img.convert("RGBA") if img.mode in ("P", "1", "LA") else img, "WEBP", lossless=True, exact=True
    )
    assert pixel_digest(png) == _reference(png)  # recorded replay keys stay valid
    digest._memo.clear()
    assert pixel_digest(webp) == pixel_digest(png)


def test_undecodable_bytes_are_identified_by_their_sha256():
    assert pixel_digest(b"not an image") == hashlib.sha256(b"not an image").hexdigest()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_seeded_digest_equals_the_decoded_one(mode):
    img = _images()[mode]
    png = _encoded(img, "PNG")
    seeded = remember_pixels(png, img)
    digest._memo.clear()
    assert seeded == pixel_digest(png) == _reference(png)


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pixel_digest decoded the image again")

    monkeypatch.setattr(Image, "open", refuse)


def test_a_prepared_png_needs_no_second_decode_for_its_digest(monkeypatch):
    # a drawing (judged not a photo), resized on the way: the sent PNG was encoded from pixels in memory
    src = Image.new("RGB", (1600, 1200), "white")
    src.paste((20, 40, 200), (100, 100, 900, 700))
    prepared = prepare_bytes(_encoded(src, "PNG"), "drawing.png", ImageOptions(detail="high"))
    assert prepared.mime in ("image/png", "image/webp") and (prepared.width, prepared.height) == (1024, 768)
    expected = _reference(prepared.data)
    _no_decoding(monkeypatch)
    assert pixel_digest(prepared.data, prepared.sha256) == expected


def test_a_jpeg_is_not_seeded_from_the_pixels_before_encoding(monkeypatch):
    # lossy: the pixels the model sees are the decoded JPEG's, not those before encoding
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    prepared = prepare_bytes(_encoded(photo, "JPEG", quality=95), "photo.jpg", ImageOptions(detail="high"))
    assert prepared.mime == "image/jpeg" and prepared.width == 1024
    assert bytes.fromhex(prepared.sha256) not in digest._memo
    assert pixel_digest(prepared.data) == _reference(prepared.data)
