"""The pure converter: sources in, content parts out (no IPython, no openai, no network)."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vision_magic
from vision_magic.errors import SourceErrors
from vision_magic.images.sniff import sniff_mime


def decode(part: dict) -> Image.Image:
    url = part["image_url"]["url"]
    head, _, payload = url.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64")
    data = base64.b64decode(payload)
    assert sniff_mime(data) == head[5:-7], "MIME in the URL must match the bytes"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def jpeg_with_exif(path: Path, size=(400, 300), orientation=6) -> Path:
    img = Image.new("RGB", size, "white")
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))  # left half red, as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    exif[0x010F] = "PhoneMaker"
    img.save(path, exif=exif, quality=95)
    return path


def test_parts_shape_and_order(tmp_path):
    Image.new("RGB", (10, 10), "red").save(tmp_path / "a.png")
    Image.new("RGB", (20, 10), "blue").save(tmp_path / "b.jpg")
    parts = vision_magic.content_parts(
        tmp_path / "b.jpg",
        str(tmp_path / "a.png"),
        "https://example.org/c.png",
        prompt="Compare",
        detail="low",
    )
    assert parts[0] == {"type": "text", "text": "Compare"}
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert decode(parts[1]).size == (20, 10)
    assert decode(parts[2]).size == (10, 10)
    assert parts[3] == {
        "type": "image_url",
        "image_url": {"url": "https://example.org/c.png", "detail": "low"},
    }
    assert all(p["image_url"]["detail"] == "low" for p in parts[1:])


def test_no_prompt_no_text_part():
    parts = vision_magic.content_parts(Image.new("L", (8, 8)))
    assert [p["type"] for p in parts] == ["image_url"]


def test_mime_sniffed_from_bytes_not_name(tmp_path):
    Image.new("RGB", (30, 30), "green").save(tmp_path / "really_png.jpg", format="PNG")
    (part,) = vision_magic.content_parts(tmp_path / "really_png.jpg")
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_exif_orientation_applied_and_metadata_stripped(tmp_path):
    path = jpeg_with_exif(tmp_path / "phone.jpg")
    (part,) = vision_magic.content_parts(path)
    img = decode(part)
    assert img.size == (300, 400), "orientation 6 turns a 400x300 sensor image upright"
    # Stored left half red -> after rotating 90 degrees clockwise the top half is red.
    assert img.getpixel((150, 50))[0] > 200 and img.getpixel((150, 50))[1] < 60
    assert img.getpixel((150, 350)) > (200, 200, 200)
    raw = base64.b64decode(part["image_url"]["url"].partition(",")[2])
    assert b"PhoneMaker" not in raw and b"Exif" not in raw
    assert not img.getexif()


def test_metadata_stripped_without_reencoding(tmp_path):
    """An upright JPEG that needs no resize keeps its compressed data byte for byte, minus EXIF."""
    img = Image.new("RGB", (64, 48), "navy")
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}
    exif[0x010F] = "SecretCam"
    img.save(tmp_path / "up.jpg", exif=exif, quality=90)
    data = (tmp_path / "up.jpg").read_bytes()
    (part,) = vision_magic.content_parts(tmp_path / "up.jpg")
    sent = base64.b64decode(part["image_url"]["url"].partition(",")[2])
    assert b"SecretCam" not in sent and len(sent) < len(data)
    assert sent[-300:] == data[-300:], "the entropy-coded image data is untouched"


def test_png_text_chunks_stripped(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jane Secret")
    Image.new("RGB", (32, 32), "white").save(tmp_path / "t.png", pnginfo=info)
    (part,) = vision_magic.content_parts(tmp_path / "t.png")
    assert b"Jane Secret" not in base64.b64decode(part["image_url"]["url"].partition(",")[2])


def test_resized_to_what_the_model_uses(tmp_path):
    Image.new("RGB", (4000, 3000), "gray").save(tmp_path / "big.jpg")
    (high,) = vision_magic.content_parts(tmp_path / "big.jpg", detail="high", model="gpt-4o")
    (low,) = vision_magic.content_parts(tmp_path / "big.jpg", detail="low", model="gpt-4o")
    (orig,) = vision_magic.content_parts(tmp_path / "big.jpg", detail="high", resize=False)
    assert decode(high).size == (1024, 768)
    assert decode(low).size == (512, 384)
    assert decode(orig).size == (4000, 3000)


@pytest.mark.parametrize(
    "mode,color",
    [("RGBA", (0, 0, 0, 0)), ("LA", (0, 0)), ("CMYK", (0, 0, 0, 0)), ("P", 0), ("1", 1)],
)
def test_modes_become_api_formats(tmp_path, mode, color):
    img = Image.new(mode, (40, 30), color)
    if mode == "P":
        img.putpalette([0, 0, 0] * 256)
        img.info["transparency"] = 0
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode in ("LA",) else "PNG")
    img.save(tmp_path / f"x.{fmt.lower()}", format=fmt)
    (part,) = vision_magic.content_parts(tmp_path / f"x.{fmt.lower()}")
    out = decode(part)
    assert out.format in ("PNG", "JPEG")
    if mode in ("RGBA", "LA", "P"):  # fully transparent -> composited on white, not black
        px = out.convert("RGB").getpixel((5, 5))
        assert px == (255, 255, 255), px


def test_16bit_scaled_not_saturated(tmp_path):
    arr = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 256).astype(np.uint16)  # 0..65280
    Image.fromarray(arr).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    (part,) = vision_magic.content_parts(tmp_path / "deep.png")
    out = np.asarray(decode(part).convert("L"))
    assert out.min() == 0 and out.max() >= 250
    assert len(np.unique(out)) > 200, "a gradient stays a gradient (no clipping to white)"


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    (part,) = vision_magic.content_parts(tmp_path / "anim.gif")
    out = decode(part).convert("RGB")
    assert getattr(out, "is_animated", False) is False
    r, g, b = out.getpixel((10, 10))
    assert r > 200 and g < 50 and b < 50


def test_tiff_and_bmp_converted(tmp_path):
    Image.new("RGB", (50, 40), "yellow").save(tmp_path / "a.tif")
    Image.new("RGB", (50, 40), "cyan").save(tmp_path / "b.bmp")
    parts = vision_magic.content_parts(tmp_path / "a.tif", tmp_path / "b.bmp")
    assert [decode(p).format for p in parts] == ["PNG", "PNG"]


def test_in_memory_sources(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([1, 2, 3])
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "PNG")
    sources = [
        Image.new("RGB", (33, 22), "white"),
        fig,
        ax,
        np.zeros((10, 12, 3), dtype=np.uint8),
        np.linspace(0, 1, 100).reshape(10, 10),
        np.zeros((5, 6, 4), dtype=np.uint8),
        buf.getvalue(),
        bytearray(buf.getvalue()),
        tmp_path,
    ]
    Image.new("RGB", (7, 7)).save(tmp_path / "z.png")
    parts = vision_magic.content_parts(*sources)
    sizes = [decode(p).size for p in parts]
    assert sizes[0] == (33, 22)
    assert 300 < sizes[1][0] <= 400  # tight bbox of a 400x300 figure
    # the Axes alone (issue 15): its own tight box, here the figure's only axes, so within a pixel of it
    assert all(abs(a - b) <= 2 for a, b in zip(sizes[1], sizes[2], strict=True))
    assert sizes[3:] == [(12, 10), (10, 10), (6, 5), (16, 16), (16, 16), (7, 7)]
    plt.close(fig)


def test_lists_globs_directories_sorted(tmp_path):
    for name in ("c.png", "a.png", "b.jpg", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            Image.new("RGB", (len(name), 4)).save(tmp_path / name)
    import os

    os.chdir(tmp_path)
    dir_parts = vision_magic.content_parts(str(tmp_path))
    glob_parts = vision_magic.content_parts("*.png")
    list_parts = vision_magic.content_parts(["a.png", ["c.png"]])
    assert len(dir_parts) == 3 and len(glob_parts) == 2 and len(list_parts) == 2
    assert [decode(p).size for p in glob_parts] == [(5, 4), (5, 4)]


def test_all_problems_listed_together(tmp_path):
    (tmp_path / "notimage.png").write_text("hello, I am text")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SourceErrors) as info:
        vision_magic.content_parts(
            tmp_path / "missing.png",
            tmp_path / "notimage.png",
            tmp_path / "empty.png",
            np.full((3, 3), 2.0),
            str(tmp_path / "*.webp"),
            object(),
        )
    msg = str(info.value)
    assert "\n" not in msg and "6 sources could not be used" in msg
    for needle in (
        "missing.png: file not found",
        "notimage.png: not an image",
        "empty.png: the file is empty",
        "[0, 1]",
        "no files match",
        "not an image source",
    ):
        assert needle in msg, needle


def test_svg_and_huge_header_refused_quickly(tmp_path):
    (tmp_path / "v.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(SourceErrors, match=r"v\.svg: SVG .* render it to PNG.*bomb\.png: .*too large"):
        vision_magic.content_parts(tmp_path / "v.svg", tmp_path / "bomb.png")


def test_converter_imports_no_ipython_or_openai():
    code = (
        "import sys, vision_magic\n"
        "from PIL import Image\n"
        "vision_magic.content_parts(Image.new('RGB', (8, 8)))\n"
        "bad = [m for m in ('IPython', 'openai', 'ipywidgets', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prepared_image_repr_has_no_payload():
    from vision_magic.images.resolve import prepare_sources

    (img,) = prepare_sources([Image.new("RGB", (100, 50))])
    assert repr(img).startswith("<PreparedImage image 0 image/png 100x50, ") and len(repr(img)) < 60
    assert "base64" not in repr(img)


def _plot_rgb(size=(1024, 768)) -> Image.Image:
    """A matplotlib line plot (antialiased curves, text, legend), 1600x1200, resized like a retina plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=200)
    x = np.linspace(0, 10, 400)
    for k in range(4):
        ax.plot(x, np.sin(x + k) * (k + 1), label=f"series {k}")
    ax.set(title="Four series", xlabel="time (s)", ylabel="value")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(buf).convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _deflated(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6, **kw)
    return buf.getvalue()


def test_png_strategy_by_content():
    """Plots go out run-length deflated (fast; within 15% of the default's size); blocks of repeated text,
    where only the default strategy finds the repeats, go out with the default. The pixels are the same."""
    from PIL import ImageDraw

    from vision_magic.images.encode import _png

    plot = _plot_rgb()
    rle, default = _deflated(plot, compress_type=3), _deflated(plot)
    assert len(rle) > 0.1 * plot.width * plot.height  # above the unchecked threshold: the bands decide
    assert _png(plot) == rle and len(rle) <= 1.15 * len(default)

    text = Image.new("RGB", (1024, 768), "white")
    for y in range(0, 768, 12):
        ImageDraw.Draw(text).text((4, y), "Total 1234.50 EUR " * 8, "black")
    rle, default = _deflated(text, compress_type=3), _deflated(text)
    assert len(rle) > 2 * len(default)
    assert _png(text) == default
    for img in (plot, text):
        assert Image.open(io.BytesIO(_png(img))).convert("RGB").tobytes() == img.tobytes()


def test_a_users_rgba_image_is_left_as_it_was():
    """Compositing a half-transparent image on white works on the pixels sent, never on the caller's image."""
    from vision_magic.images.encode import prepare_image

    img = Image.new("RGBA", (1200, 900), (200, 30, 30, 128))
    before = img.tobytes()
    sent = prepare_image(img, "img")
    assert img.tobytes() == before and img.mode == "RGBA"
    assert "transparency composited on white" in sent.notes
    pixel = (
        Image.open(io.BytesIO(base64.b64decode(sent.url.split(",", 1)[1]))).convert("RGB").getpixel((5, 5))
    )
    assert all(abs(a - b) <= 2 for a, b in zip(pixel, (227, 142, 142), strict=True))  # red at half over white
