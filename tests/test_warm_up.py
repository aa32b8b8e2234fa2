"""The warm-up (engine/warm.py) and the reused client (endpoints.make_client(reuse=True)).

``%load_ext`` imports the openai SDK and makes the client on a background thread, so the first question does
not wait for them; every question then uses that one client (one connection pool). Each case runs in a fresh
Python process with a real InteractiveShell, since the warm-up happens once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from server_fixtures import FAKE_KEY

ROOT = Path(__file__).resolve().parent.parent

# Prints one JSON line: what the warm-up did and what the questions used.
PROBE = r"""
import json, sys, threading
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

config = Config(json.loads(sys.argv[2]))
ip = InteractiveShell.instance(config=config)
ip.user_ns["path"] = sys.argv[1]
from vision_magic.engine import endpoints, warm

ip.run_line_magic("load_ext", "vision_magic")
started = warm._thread is not None
warm.wait()
after_load = {"openai imported": "openai" in sys.modules, "clients": len(endpoints._clients)}
warmed = list(endpoints._clients.values())
errors = []
for cell in sys.argv[3:]:
    result = ip.run_cell(cell)
    if result.error_in_exec is not None:
        errors.append(type(result.error_in_exec).__name__ + ": " + str(result.error_in_exec))
print(json.dumps({
    "started": started,
    **after_load,
    "clients after questions": len(endpoints._clients),
    "questions used the warmed client": bool(warmed) and list(endpoints._clients.values()) == warmed,
    "threads": [t.name for t in threading.enumerate()],
    "errors": errors,
}))
"""


def _environment_without_keys() -> dict[str, str]:
    """This process's environment without any OpenAI or Azure OpenAI variable (keys, base URLs)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI"))}


def _probe(tmp_path: Path, env: dict[str, str], *cells: str, config: dict | None = None) -> dict:
    """Run ``cells`` after ``%load_ext vision_magic`` in a fresh process (``path``: a red PNG)."""
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 48), "red").save(image)
    run_env = _environment_without_keys()
    run_env.update(
        PYTHONPATH=str(ROOT), MPLBACKEND="Agg", VISION_MAGIC_CACHE_DIR=str(tmp_path / "cache"), **env
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(image), json.dumps(config or {}), *cells],
        env=run_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_load_ext_warms_the_sdk_and_the_client_every_question_then_uses(tmp_path, server):
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    flags = ("", "--no-stream", "--no-stream")
    asks = [f"%%ask_image path {flag}\nQuestion {i}: what colour is this?" for i, flag in enumerate(flags)]
    seen = _probe(tmp_path, env, *asks)
    assert seen["started"] and seen["openai imported"] and seen["clients"] == 1, seen
    assert seen["errors"] == [], seen
    assert seen["clients after questions"] == 1 and seen["questions used the warmed client"], seen
    assert "vision_magic-warm-up" not in seen["threads"], "the warm-up thread ends once the client is made"
    asked = server.chat_requests
    assert [r.body.get("stream", False) for r in asked] == [True, False, False]
    # the SDK closes a streamed response's connection at [DONE]; after a whole answer the next one reuses it
    assert asked[1].client == asked[2].client, "the third question reuses the second one's connection"


def test_nothing_is_warmed_for_a_dry_run(tmp_path, server):
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    seen = _probe(tmp_path, env, "%%ask_image path\nWhat?", config={"VisionMagic": {"dry_run": True}})
    assert not seen["started"] and not seen["openai imported"], seen
    assert seen["errors"] == [] and server.requests == []


def test_nothing_is_warmed_without_a_key_and_the_question_still_says_so(tmp_path):
    seen = _probe(tmp_path, {}, "%%ask_image path\nWhat?")
    assert not seen["started"] and seen["clients"] == 0, seen
    assert len(seen["errors"]) == 1 and "No API key" in seen["errors"][0], seen


def test_a_warm_up_that_cannot_make_a_client_leaves_the_question_to_report(tmp_path, server):
    # a key in the environment, but %config names an endpoint whose key variable is unset: configure() finds
    # no key, makes nothing; the question gives its usual one line
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY}
    config = {
        "VisionMagic": {
            "endpoints": {"mine": {"base_url": server.base_url, "api_key_env": "NO_SUCH_KEY_VAR"}}
        }
    }
    seen = _probe(tmp_path, env, "%%ask_image path\nWhat?", config=config)
    assert seen["started"] and seen["clients"] == 0, seen
    assert len(seen["errors"]) == 1 and "NO_SUCH_KEY_VAR" in seen["errors"][0], seen
    assert server.chat_requests == []


def test_reused_clients_are_per_endpoint_key_timeout_and_retries(openai_env, monkeypatch):
    from vision_magic.engine import endpoints
    from vision_magic.engine.session import settings

    cfg = settings()
    url = openai_env.base_url
    first = endpoints.make_client(cfg, url, max_retries=0, reuse=True)
    assert endpoints.make_client(cfg, url, max_retries=0, reuse=True) is first
    assert endpoints.make_client(cfg, url, max_retries=1, reuse=True) is not first
    assert endpoints.make_client(cfg, url, max_retries=0) is not first, "reuse is asked for, never implied"
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY + "-other")
    assert endpoints.make_client(cfg, url, max_retries=0, reuse=True) is not first
    monkeypatch.setattr(cfg, "timeout", 7.0)
    other = endpoints.make_client(cfg, url, max_retries=0, reuse=True)
    assert other.timeout == 7.0 and other is not first


@pytest.mark.parametrize("config", [{"VisionMagic": {"dry_run": True}}, {}])
def test_begin_decides_without_importing_anything(config, monkeypatch):
    code = textwrap.dedent(
        f"""
        import sys
        from vision_magic.engine import warm
        started = warm.begin({config!r})
        assert "openai" not in sys.modules or started
        print(started)
        """
    )
    env = {**_environment_without_keys(), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", "no key, no local server, or a dry run: nothing to warm"
