"""Suite-wide fixtures: the test OpenAI server (server_fixtures), an isolated environment, and a real
IPython shell with vision_magic loaded whose displays are captured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_helpers import COLOURS  # noqa: E402 - tests/ is on the path from the line above

pytest_plugins = ["server_fixtures", "lab_helpers"]

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
    """The replay cache on, in a fresh file of this test's (the fixture's value: its path); the last batch
    table forgotten afterwards."""
    from vision_magic import cache
    from vision_magic.engine.session import current, settings

    monkeypatch.setenv("VISION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    cfg = settings()
    saved = (cfg.cache, cfg.cache_path)
    cfg.cache, cfg.cache_path = True, ""
    yield tmp_path / "cache" / cache.FILE_NAME
    cfg.cache, cfg.cache_path = saved
    cache.close()
    current().last_table = None


@pytest.fixture
def shell(monkeypatch):
    """A real IPython InteractiveShell with vision_magic loaded; displays captured in ``shell.displays``;
    ``%config VisionMagic`` settings restored afterwards."""
    from hardening_helpers import shell_with_displays

    yield from shell_with_displays(monkeypatch)


@pytest.fixture
def pics(tmp_path, monkeypatch):
    """red.png and blue.png (40x30) in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 30), "red").save(tmp_path / "red.png")
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "blue.png")
    return tmp_path


@pytest.fixture
def folder(tmp_path):
    """imgs/ with one PNG per colour of ``COLOURS``, in order; each is 32 + its index pixels wide."""
    d = tmp_path / "imgs"
    d.mkdir()
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (32 + i, 24), colour).save(d / f"{i:02d}_{colour}.png")
    return d
