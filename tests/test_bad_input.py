"""Issue 6, bad input: every awkward or broken image ends in a correct content part or one clear line.

The corpus is generated in tmp dirs (tests/badimages.py). Good-but-awkward images are checked by decoding
what would be sent; bad ones by the one-line SourceError; a request with several bad sources lists every
problem together and sends nothing (the test server sees zero requests).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time

import pytest
from badimages import BAD, CASES, make_corpus
from PIL import Image

import vision_magic
from vision_magic.errors import SourceError, SourceErrors
from vision_magic.images.profiles import DEFAULT_PROFILE, used_size
from vision_magic.images.resolve import prepare_sources


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("badimages"))


def sent_image(img) -> Image.Image:
    """Decode what would go on the wire (the data URL's bytes), checking they match the part."""
    assert img.url.startswith(f"data:{img.mime};base64,")
    part = img.part()
    assert part["type"] == "image_url" and part["image_url"]["url"] == img.url
    out = Image.open(io.BytesIO(img.data))
    out.load()
    assert out.size == (img.width, img.height)
    assert Image.MIME[out.format] == img.mime
    return out


def prepare_one(path):
    [img] = prepare_sources([path])
    return img


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_source_is_one_line_naming_source_and_reason(corpus, name):
    path = corpus[name]
    with pytest.raises(SourceErrors) as info:
        prepare_sources([path])
    [err] = info.value.errors
    assert isinstance(err, SourceError)
    assert err.source == str(path)
    assert BAD[name].lower() in err.reason.lower()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and "nothing was sent" in message
    assert "Traceback" not in message and "BytesIO" not in message


def test_unsupported_formats_say_how_to_convert(corpus):
    for name, fix in (
        ("svg", "render it to PNG"),
        ("heic", "convert it to JPEG"),
        ("avif", "convert it to JPEG"),
    ):
        with pytest.raises(SourceErrors, match=fix):
            prepare_sources([corpus[name]])


def test_huge_header_refused_before_decoding(corpus, monkeypatch):
    from PIL import ImageFile

    path = corpus["huge_png"]
    assert path.stat().st_size < 200  # the header claims 50,000 x 50,000, the file is tiny

    def no_decoding(self):
        raise AssertionError("the huge image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(SourceErrors, match=r"too large"):
        prepare_sources([path])


def test_truncated_files_are_never_sent_as_they_are(corpus):
    for name in ("truncated_jpeg", "truncated_png", "truncated_gif"):
        with pytest.raises(
            SourceErrors, match=r"corrupt image/(jpeg|png|gif) image \(image file is truncated"
        ):
            prepare_sources([corpus[name]])
    with pytest.raises(SourceErrors, match=r"truncated.webp: corrupt image"):
        prepare_sources([corpus["truncated_webp"]])


def test_rgba_transparent_area_becomes_white(corpus):
    img = prepare_one(corpus["rgba"])
    out = sent_image(img).convert("RGB")
    assert out.getpixel((5, 5)) == (255, 255, 255)  # transparent black -> white, not black
    assert out.getpixel((50, 5)) == (255, 0, 0)
    assert "transparency composited on white" in img.notes


def test_palette_transparency_becomes_white(corpus):
    out = sent_image(prepare_one(corpus["palette_transparent"])).convert("RGB")
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((50, 5)) == (0, 0, 255)


@pytest.mark.parametrize("name", ["png16", "tiff16"])
def test_16_bit_gradient_is_scaled_not_saturated(corpus, name):
    img = prepare_one(corpus[name])
    out = sent_image(img).convert("L")
    row = [out.getpixel((x, 0)) for x in range(out.width)]
    assert row[0] <= 2 and row[-1] >= 253
    assert abs(row[out.width // 2] - 128) <= 3  # mid-gray in the middle, not white
    assert row == sorted(row) and len(set(row)) > 200  # a smooth ramp, not a few levels
    assert any("16-bit" in n for n in img.notes)


def test_cmyk_jpeg_becomes_rgb(corpus):
    img = prepare_one(corpus["cmyk_jpeg"])
    out = sent_image(img)
    assert out.mode == "RGB"
    r, g, b = out.getpixel((10, 10))
    assert r < 30 and g > 225 and b > 225  # cyan


@pytest.mark.parametrize("name", ["animated_gif", "animated_webp", "multipage_tiff"])
def test_animated_and_multipage_send_the_first_frame(corpus, name):
    img = prepare_one(corpus[name])
    out = sent_image(img).convert("RGB")
    assert img.mime in ("image/png", "image/jpeg")  # never an animated GIF/WEBP, never a TIFF
    r, g, b = out.getpixel((10, 10))
    assert r > 230 and g < 25 and b < 25  # the red first frame
    assert any("first" in n for n in img.notes)


def test_bmp_is_converted_to_an_api_format(corpus):
    img = prepare_one(corpus["bmp"])
    assert img.mime == "image/png"
    assert sent_image(img).convert("RGB").getpixel((1, 1)) == (0, 200, 0)


def test_one_pixel_image(corpus):
    img = prepare_one(corpus["one_pixel"])
    out = sent_image(img)
    assert out.size == (1, 1) and out.convert("RGB").getpixel((0, 0)) == (10, 20, 30)


def test_long_strip_resized_to_what_the_model_uses(corpus):
    img = prepare_one(corpus["strip"])
    out = sent_image(img)
    assert (img.width, img.height) == used_size(20000, 40, DEFAULT_PROFILE, "auto")
    assert img.width <= 2048 and img.height >= 1
    assert img.original_size == (20000, 40)
    left, right = out.convert("L").getpixel((0, 0)), out.convert("L").getpixel((out.width - 1, 0))
    assert left < 20 and right > 235  # the gradient survived the resize


def test_in_memory_rgba_and_16_bit_images():
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    [img] = prepare_sources([rgba])
    assert sent_image(img).convert("RGB").getpixel((3, 3)) == (255, 255, 255)
    from badimages import gradient16

    [img] = prepare_sources([gradient16()])
    row = sent_image(img).convert("L")
    assert abs(row.getpixel((row.width // 2, 0)) - 128) <= 3


def test_every_case_ends_in_a_part_or_one_line(corpus):
    """The whole corpus at once: the good ones prepare, the bad ones are all listed in one line."""
    good = [p for n, p in corpus.items() if n not in BAD]
    assert len(good) + len(BAD) == len(CASES)
    assert len(prepare_sources(good)) == len(good)
    with pytest.raises(SourceErrors) as info:
        prepare_sources(list(corpus.values()))
    err = info.value
    assert {e.source for e in err.errors} == {str(corpus[n]) for n in BAD}
    assert f"{len(BAD)} sources could not be used, nothing was sent" in str(err)
    assert "\n" not in str(err)


def test_ask_lists_all_problems_and_sends_nothing(openai_env, corpus):
    server = openai_env
    sources = [corpus["rgba"], corpus["empty"], corpus["svg"], corpus["huge_png"], corpus["empty_dir"]]
    with pytest.raises(SourceErrors) as info:
        vision_magic.ask("bad-input ask: which of these is broken?", *sources, display=False)
    assert len(info.value.errors) == 4
    for name in ("empty", "svg", "huge_png", "empty_dir"):
        assert str(corpus[name]) in str(info.value)
    assert server.requests == []


def test_magic_lists_all_problems_in_one_line_and_sends_nothing(openai_env, corpus, shell, capsys):
    server = openai_env
    shell.user_ns["t_png16"] = str(corpus["png16"])
    line = " ".join([str(corpus["text_png"]), "t_png16", "t_missing_variable", str(corpus["truncated_jpeg"])])
    result = shell.run_cell(f"%%ask_image {line}\nbad-input magic: what is here?")
    assert isinstance(result.error_in_exec, SourceErrors)
    assert len(result.error_in_exec.errors) == 3
    out = capsys.readouterr()
    printed = (out.out + out.err).strip()
    assert "Traceback" not in printed
    [error_line] = [ln for ln in printed.splitlines() if "SourceErrors" in ln]
    for fragment in ("3 sources could not be used", "notes.png", "t_missing_variable", "truncated.jpg"):
        assert fragment in error_line
    assert server.requests == []


def test_magic_survives_every_bad_case(openai_env, corpus, shell):
    """No crash and no request for any bad case, one at a time through the magic."""
    server = openai_env
    for name in BAD:
        result = shell.run_cell(f'%%ask_image "{corpus[name]}"\nbad-input {name}: describe')
        assert isinstance(result.error_in_exec, SourceErrors), name
    assert server.requests == []
    assert "vision_magic" in sys.modules


# -- URLs inlined for a server that cannot fetch them (vision_magic.endpoints) --------------------------


class _ImageSite:
    """A small web server on 127.0.0.1 with one route per URL fault."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        buf = io.BytesIO()
        Image.new("RGB", (30, 20), (0, 128, 255)).save(buf, "PNG")
        png = buf.getvalue()
        self.release = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _head(self, status, ctype, length=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _trickle(self, data):
                for i in range(len(data)):
                    if site.release.wait(0.5):
                        return
                    self.wfile.write(data[i : i + 1])

            def do_GET(self):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._route()  # the client may stop reading early, as it should

            def _route(self):
                if self.path == "/ok.png":
                    self._head(200, "image/png", len(png))
                    self.wfile.write(png)
                elif self.path == "/missing.png":
                    self.send_error(404, "Not Found")
                elif self.path == "/page.png":
                    body = b"<!doctype html><html><body>Sign in to see this image</body></html>"
                    self._head(200, "text/html; charset=utf-8", len(body))
                    self.wfile.write(body)
                elif self.path == "/huge.png":  # announces 100 MB
                    self._head(200, "image/png", 100 * 1024 * 1024)
                    self.wfile.write(png[:64])
                elif self.path == "/huge-stream.png":  # 100 MB, no length given: only reading tells
                    self._head(200, "image/png")
                    chunk = bytes(64 * 1024)
                    self.wfile.write(png[:8])
                    for _ in range(100 * 16):
                        self.wfile.write(chunk)
                elif self.path == "/silent.png":  # says nothing for a minute
                    site.release.wait(60)
                elif self.path == "/trickle.png":  # a byte of the body every 0.5 s: no single read times out
                    self._head(200, "image/png", len(png))
                    self._trickle(png)
                elif self.path == "/trickle-head.png":  # the status line and headers, a byte at a time
                    self._trickle(
                        f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Pad: {'x' * 80}\r\n".encode()
                    )
                elif self.path == "/text.bin":
                    self._head(200, "application/octet-stream", 11)
                    self.wfile.write(b"hello world")
                else:
                    self.send_error(500)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site():
    s = _ImageSite()
    yield s
    s.close()


@pytest.fixture
def inline_endpoint(openai_env):
    """The test server as an endpoint that cannot fetch URLs, with short inline limits."""
    from vision_magic.engine.session import settings

    cfg = settings()
    saved = dict(cfg.endpoints)
    cfg.endpoints = {
        "test": {"base_url": openai_env.base_url, "inline_timeout": 0.5, "inline_max_bytes": 1_000_000}
    }
    yield openai_env
    cfg.endpoints = saved


def test_url_inlined_when_the_server_cannot_fetch(inline_endpoint, site):
    server = inline_endpoint
    answer = vision_magic.ask("bad-input url: ok", f"{site.url}/ok.png", display=False, cache=False)
    [img] = answer.images
    assert img.mime == "image/png" and (img.width, img.height) == (30, 20)
    assert sent_image(img).convert("RGB").getpixel((3, 3)) == (0, 128, 255)
    assert [i["url_kind"] for i in server.last.images] == ["data"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/missing.png", "HTTP 404"),
        ("/page.png", "text/html, not an image"),
        ("/huge.png", "over the inline limit"),
        ("/huge-stream.png", "over the inline limit"),
        ("/silent.png", "longer than 0.5 s"),
        ("/text.bin", "not an image"),
    ],
)
def test_url_faults_are_one_line(inline_endpoint, site, path, reason):
    url = site.url + path
    with pytest.raises(SourceErrors) as info:
        vision_magic.ask(f"bad-input url: {path}", url, display=False, cache=False)
    [err] = info.value.errors
    assert err.source == url and reason in err.reason
    assert "\n" not in str(info.value)
    assert inline_endpoint.requests == []


@pytest.mark.parametrize("path", ["/trickle.png", "/trickle-head.png"])
def test_a_trickling_url_is_cut_off_at_the_total_deadline(inline_endpoint, site, shell, path):
    """A server sending a byte every 0.5 s never trips a per-read timeout; the 2 s deadline is total."""
    from vision_magic.engine.session import settings

    settings().endpoints = {"test": {"base_url": inline_endpoint.base_url, "inline_timeout": 2}}
    shell.user_ns["t_url"] = site.url + path
    start = time.monotonic()
    result = shell.run_cell(f"%%ask_image t_url\nbad-input url: {path}")
    elapsed = time.monotonic() - start
    message = str(result.error_in_exec)
    assert isinstance(result.error_in_exec, SourceErrors) and "\n" not in message
    assert 1.9 < elapsed < 3.0, f"took {elapsed:.1f} s: {message}"
    assert "downloading the image took longer than 2 s in total (" in message
    assert "raise inline_timeout in VisionMagic.endpoints or download it yourself" in message
    received = int(re.search(r"\(([\d,]+) bytes received\)", message).group(1).replace(",", ""))
    assert (received >= 2) if path == "/trickle.png" else received == 0  # the body had started, or not
    assert inline_endpoint.requests == []


def test_all_url_faults_listed_together_nothing_sent(inline_endpoint, site, corpus):
    urls = [site.url + p for p in ("/ok.png", "/missing.png", "/page.png", "/huge-stream.png", "/silent.png")]
    with pytest.raises(SourceErrors) as info:
        vision_magic.ask("bad-input url: all together", *urls, corpus["empty"], display=False, cache=False)
    assert [e.source for e in info.value.errors] == [*urls[1:], str(corpus["empty"])]
    assert "5 sources could not be used, nothing was sent" in str(info.value)
    assert inline_endpoint.requests == []


def test_directory_and_glob_name_each_bad_file(tmp_path, monkeypatch):
    from badimages import rgba, text_png, truncated_png

    folder = tmp_path / "mixed"
    folder.mkdir()
    for make in (rgba, text_png, truncated_png):
        make(folder)
    monkeypatch.chdir(tmp_path)
    for spec in ("mixed", "mixed/*.png"):
        with pytest.raises(SourceErrors) as info:
            prepare_sources([spec])
        assert [e.source.rsplit("/", 1)[-1] for e in info.value.errors] == ["notes.png", "truncated.png"]
        assert "2 sources could not be used, nothing was sent" in str(info.value)
