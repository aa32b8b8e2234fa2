"""Ask a vision language model about images from Jupyter.

>>> %load_ext vision_magic                                       # doctest: +SKIP
>>> %%ask_image photo.jpg fig https://example.org/chart.png      # doctest: +SKIP
... What is different between these three images?

Importing this package is cheap: Pillow, openai, IPython and matplotlib are imported where used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Chat",
    "PreparedImage",
    "SourceError",
    "SourceErrors",
    "VisionMagic",
    "VisionMagicError",
    "annotate",
    "ask",
    "ask_many",
    "ask_panel",
    "cache",
    "chat",
    "content_parts",
    "estimate",
    "last_answer",
    "load_ipython_extension",
]

# public name -> module that defines it (imported on first use)
_LAZY = {
    "Answer": "answer",
    "PreparedImage": "convert",
    "SourceError": "errors",
    "SourceErrors": "errors",
    "VisionMagicError": "errors",
    "APIError": "errors",
    "ConfigError": "errors",
    "VisionMagic": "config",
    "ask": "asking",
    "ask_many": "batch",
    "chat": "conversations",
    "Chat": "conversations",
    "ask_panel": "widgets",
    "annotate": "annotating",
    "content_parts": "parts",
    "estimate": "estimates",
    "Estimate": "estimates",
    "ModelProfile": "profiles",
    "PROFILES": "profiles",
}

if TYPE_CHECKING:
    from . import cache
    from .answer import Answer
    from .asking import ask
    from .batch import ask_many
    from .config import VisionMagic
    from .conversations import Chat, chat
    from .convert import PreparedImage
    from .errors import SourceError, SourceErrors, VisionMagicError
    from .estimates import estimate
    from .parts import content_parts


def __getattr__(name: str) -> Any:
    import importlib

    if name == "cache":  # the replay cache module: vision_magic.cache.stats(), .clear()
        return importlib.import_module(".cache", __name__)
    if name == "last_answer":
        return importlib.import_module(".asking", __name__).last_answer
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vision_magic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext vision_magic``: register ``%%ask_image`` and ``%config VisionMagic``."""
    from .magic import load

    load(ipython)
