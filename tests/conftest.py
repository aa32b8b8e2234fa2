"""Suite-wide fixtures: the test OpenAI server (server_fixtures), an isolated environment, and a real
IPython shell with vision_magic loaded whose displays are captured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["server_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No real key or endpoint leaks into a test; caches live in a temp dir; matplotlib draws off-screen."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "VISION_MAGIC_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path_factory.mktemp("vm-cache")))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield
    from vision_magic import last_image

    last_image.clear()


class Displays:
    """Every display_data / update_display_data the shell published, in order."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def record(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.events.append({"data": data, "transient": transient or {}, "update": update})

    @property
    def bundles(self) -> list[dict]:
        return [e["data"] for e in self.events]

    def last(self) -> dict:
        return self.events[-1]["data"]


@pytest.fixture
def shell(monkeypatch):
    """A real IPython InteractiveShell with vision_magic loaded; displays captured in ``shell.displays``."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()  # starts the shell once per session
    ip.run_line_magic("load_ext", "vision_magic")
    from vision_magic.config import VisionMagic, settings

    cfg = settings()
    saved = {name: getattr(cfg, name) for name in cfg.trait_names() if cfg.trait_metadata(name, "config")}
    displays = Displays()
    original = ip.display_pub.publish

    def publish(data, *args, **kwargs):
        displays.record(data, *args, **kwargs)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", publish)
    ip.displays = displays
    assert isinstance(cfg, VisionMagic)
    yield ip
    for name, value in saved.items():
        setattr(cfg, name, value)
    for name in [n for n in ip.user_ns if n.startswith("t_")]:
        del ip.user_ns[name]
