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
    from vision_magic.engine.outputs import OutputStore
    from vision_magic.engine.session import current

    current().last_shown = None
    current().outputs = OutputStore()


@pytest.fixture
def replay_cache(tmp_path, monkeypatch):
    """The replay cache on, in a fresh file of this test's; the last batch table forgotten afterwards."""
    from vision_magic import cache
    from vision_magic.engine.session import current, settings

    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = settings()
    saved = (cfg.cache, cfg.cache_path)
    cfg.cache, cfg.cache_path = True, ""
    yield
    cfg.cache, cfg.cache_path = saved
    cache.close()
    current().last_table = None


@pytest.fixture
def shell(monkeypatch):
    """A real IPython InteractiveShell with vision_magic loaded; displays captured in ``shell.displays``;
    ``%config VisionMagic`` settings restored afterwards."""
    from hardening_helpers import shell_with_displays

    yield from shell_with_displays(monkeypatch)
