"""Shared test pieces: a real IPython shell with vision_magic loaded and its displays captured.

``start_ipython()`` returns None after its first call in a process, so the shell is fetched with
``get_ipython()`` then; displays are captured by wrapping the shell's display publisher.
"""

from __future__ import annotations

# the colours of the `folder` fixture's images, in order (batch tests check rows come back in this order)
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]


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

    def text(self) -> str:
        return "\n".join(str(v) for b in self.bundles for v in b.values())


def get_shell():
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from vision_magic.engine.config import VisionMagic
    from vision_magic.engine.session import current

    ip = start_ipython() or get_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "vision_magic")
    # the shell's %config object is the session's settings, even if a test swapped them since the extension loaded
    current().settings = next(c for c in ip.configurables if isinstance(c, VisionMagic))
    return ip


def shell_with_displays(monkeypatch):
    """For a fixture: a real InteractiveShell with vision_magic loaded; displays in ``ishell.displays``; settings restored."""
    from vision_magic.engine.session import settings

    ip = get_shell()
    cfg = settings()
    saved = {name: getattr(cfg, name) for name in cfg.trait_names() if cfg.trait_metadata(name, "config")}
    displays = Displays()
    original = ip.display_pub.publish

    def publish(data, *args, **kwargs):
        displays.record(data, *args, **kwargs)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", publish)
    ip.displays = displays
    yield ip
    for name, value in saved.items():
        setattr(cfg, name, value)
    for name in [n for n in ip.user_ns if n.startswith("t_")]:
        del ip.user_ns[name]
