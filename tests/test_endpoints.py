"""Issue 5, servers: per-endpoint settings, and image URLs downloaded and inlined as base64 for endpoints
that cannot fetch them (size cap, timeout, content-type check)."""

from __future__ import annotations

import base64
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

import vision_magic
from vision_magic import cache
from vision_magic.engine.endpoints import endpoint_for
from vision_magic.engine.session import settings
from vision_magic.errors import ConfigError, SourceErrors


def png(colour: str, size: tuple[int, int] = (50, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


class _Files(BaseHTTPRequestHandler):
    routes: dict[str, tuple[str, bytes, float]] = {}

    def do_GET(self):  # noqa: N802 - BaseHTTPRequestHandler's name
        ctype, body, delay = self.routes.get(self.path, ("text/plain", b"missing", 0.0))
        if delay:
            time.sleep(delay)
        self.send_response(200 if self.path in self.routes else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files():
    """A tiny web server with images (and a page that is not one) on 127.0.0.1."""
    _Files.routes = {
        "/red.png": ("image/png", png("red"), 0.0),
        "/page": ("text/html; charset=utf-8", b"<html>not an image</html>", 0.0),
        "/big.png": ("image/png", png("blue", (600, 600)), 0.0),
        "/slow.png": ("image/png", png("green"), 2.0),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = settings()
    saved = (cfg.endpoints, cfg.cache_path, cfg.base_url)
    cfg.cache_path = ""
    yield cfg
    cfg.endpoints, cfg.cache_path, cfg.base_url = saved
    cache.close()


def test_defaults_only_openai_fetches_urls():
    assert endpoint_for("https://api.openai.com/v1").fetch_urls is True
    assert endpoint_for("https://me.openai.azure.com/openai").fetch_urls is True
    assert endpoint_for("http://localhost:11434/v1").fetch_urls is False
    spec = {"ollama": {"base_url": "http://localhost:11434/v1/", "detail": False, "models": ["llava"]}}
    e = endpoint_for("http://localhost:11434/v1", spec)
    assert e.name == "ollama" and e.detail is False and e.models == ["llava"] and e.fetch_urls is False
    with pytest.raises(ConfigError, match="unknown settings"):
        endpoint_for("http://x/v1", {"x": {"base_url": "http://x/v1", "fetch": True}})


def test_urls_are_inlined_for_a_local_server(openai_env, files):
    server = openai_env
    answer = vision_magic.ask("inline?", f"{files}/red.png", display=False)
    part = server.last.body["messages"][-1]["content"][1]["image_url"]
    assert part["url"].startswith("data:image/png;base64,")
    data = base64.b64decode(part["url"].partition(",")[2])
    assert Image.open(io.BytesIO(data)).getpixel((0, 0)) == (255, 0, 0)
    assert server.last.images[0]["url_kind"] == "data"
    assert "inlined" in " ".join(answer.images[0].notes)


def test_an_endpoint_that_fetches_urls_gets_the_link(openai_env, files, isolated):
    server = openai_env
    isolated.endpoints = {"local": {"base_url": server.base_url, "fetch_urls": True}}
    vision_magic.ask("link?", f"{files}/red.png", display=False)
    assert server.last.body["messages"][-1]["content"][1]["image_url"]["url"] == f"{files}/red.png"


def test_inline_checks_type_size_and_time(openai_env, files, isolated):
    server = openai_env
    isolated.endpoints = {
        "local": {"base_url": server.base_url, "inline_max_bytes": 2000, "inline_timeout": 0.5}
    }
    sources = [f"{files}/page", f"{files}/big.png", f"{files}/slow.png", f"{files}/nope.png"]
    with pytest.raises(SourceErrors) as err:
        vision_magic.ask("checks?", *sources, display=False)
    text = str(err.value)
    assert "\n" not in text and "nothing was sent" in text
    assert "returned text/html, not an image" in text
    assert "over the inline limit" in text
    assert "longer than 0.5 s" in text
    assert "HTTP 404" in text
    assert server.chat_requests == []


def test_detail_is_left_out_for_servers_that_ignore_it(openai_env, isolated, tmp_path):
    server = openai_env
    isolated.endpoints = {"ollama-like": {"base_url": server.base_url, "detail": False}}
    path = tmp_path / "a.png"
    path.write_bytes(png("red"))
    vision_magic.ask("detail?", path, display=False, detail="low")
    assert "detail" not in server.last.body["messages"][-1]["content"][1]["image_url"]


def test_an_endpoint_key_variable(openai_env, isolated, monkeypatch, tmp_path):
    server = openai_env
    isolated.endpoints = {"azure": {"base_url": server.base_url, "api_key_env": "MY_SERVER_KEY"}}
    path = tmp_path / "a.png"
    path.write_bytes(png("red"))
    with pytest.raises(ConfigError, match="set MY_SERVER_KEY"):
        vision_magic.ask("key?", path, display=False, cache=False)
    monkeypatch.setenv("MY_SERVER_KEY", "sk-other-0123456789abcdef")
    vision_magic.ask("key?", path, display=False)
    assert server.last.headers["authorization"] == "Bearer sk-other-0123456789abcdef"


def test_webp_only_where_the_server_is_known_to_take_it(openai_env, isolated, tmp_path):
    """A plot-like image goes as the smaller lossless WEBP only to servers known to take WEBP (OpenAI, Azure,
    or an endpoint configured with webp=True); any other server gets PNG, which every server takes."""
    import numpy as np

    server = openai_env
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 4, (300, 400)) * 60).astype("uint8")  # few colours, poor PNG compression
    path = tmp_path / "plot.png"
    Image.fromarray(pixels, "L").convert("RGB").save(path)
    unknown = vision_magic.ask("webp?", path, display=False, cache=False)
    assert unknown.images[0].mime == "image/png"
    assert server.last.images[0]["mime"] == "image/png"
    isolated.endpoints = {"ollama": {"base_url": server.base_url, "webp": True}}
    opted_in = vision_magic.ask("webp?", path, display=False, cache=False)
    assert opted_in.images[0].mime == "image/webp", "the smaller lossless WEBP where the server takes it"
    assert server.last.images[0]["mime"] == "image/webp"
    assert opted_in.images[0].nbytes < unknown.images[0].nbytes
    assert endpoint_for("https://api.openai.com/v1").webp is True
