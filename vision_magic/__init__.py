"""Ask a vision language model about images from Jupyter.

>>> %load_ext vision_magic                                       # doctest: +SKIP
>>> %%ask_image photo.jpg fig https://example.org/chart.png      # doctest: +SKIP
... What is different between these three images?

Importing this package is cheap: Pillow, openai, IPython and matplotlib are imported where used.

Three layers (see docs/architecture.md): :mod:`vision_magic.images` (pure: sources to what the model sees),
:mod:`vision_magic.engine` (openai: options, requests, sending, finishing answers), and
:mod:`vision_magic.frontends` (IPython and ipywidgets: the magic, the panel, rendering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AskOptions",
    "BatchJob",
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
    "batch_file",
    "batches",
    "cache",
    "chat",
    "content_parts",
    "estimate",
    "last_answer",
    "last_table",
    "load_ipython_extension",
    "models",
    "read_batch_output",
    "region",
    "replay_from",
    "settings",
    "unload_ipython_extension",
]

# public name -> module that defines it (imported on first use)
_LAZY = {
    "Answer": "engine.answer",
    "AskOptions": "engine.options",
    "PreparedImage": "images.encode",
    "SourceError": "errors",
    "SourceErrors": "errors",
    "BatchInterrupted": "errors",
    "VisionMagicError": "errors",
    "APIError": "errors",
    "ConfigError": "errors",
    "VisionMagic": "engine.config",
    "settings": "engine.session",
    "ask": "frontends.api",
    "ask_many": "engine.batch",
    "batches": "engine.batch_api",
    "batch_file": "engine.batch_api",
    "read_batch_output": "engine.batch_api",
    "BatchJob": "engine.batch_api",
    "chat": "frontends.api",
    "Chat": "engine.chat",
    "ask_panel": "frontends.panel",
    "annotate": "frontends.annotate",
    "content_parts": "engine.parts",
    "estimate": "engine.estimate",
    "replay_from": "engine.recordings",
    "models": "engine.server_models",
    "region": "images.resolve",
    "Region": "images.resolve",
    "Estimate": "engine.estimate",
    "ModelProfile": "images.profiles",
    "PROFILES": "images.profiles",
}

if TYPE_CHECKING:
    from .engine import replay_store as cache
    from .engine.answer import Answer
    from .engine.batch import ask_many
    from .engine.batch_api import BatchJob, batch_file, batches, read_batch_output
    from .engine.chat import Chat
    from .engine.config import VisionMagic
    from .engine.estimate import estimate
    from .engine.options import AskOptions
    from .engine.parts import content_parts
    from .engine.recordings import replay_from
    from .engine.server_models import models
    from .engine.session import settings
    from .errors import SourceError, SourceErrors, VisionMagicError
    from .frontends.api import ask, chat
    from .images.encode import PreparedImage
    from .images.resolve import region


def __getattr__(name: str) -> Any:
    import importlib

    if name == "cache":  # the replay store: vision_magic.cache.stats(), .clear(), .export(), .load()
        return importlib.import_module(".engine.replay_store", __name__)
    if name in ("last_answer", "last_table"):
        return getattr(importlib.import_module(".engine.session", __name__).current(), name)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vision_magic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext vision_magic``: register ``%%ask_image``, ``%config VisionMagic`` and the output capture."""
    from .frontends.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext vision_magic`` (and the first half of ``%reload_ext``): undo everything ``load`` did."""
    from .frontends.extension import unload

    unload(ipython)
