"""The warm-up: at ``%load_ext``, the ``openai`` SDK is imported and the client for the endpoint in force is
made on a background thread, so the first question does not wait for them.

Importing the SDK, loading the certificate store and the SDK's chat resources take most of a second, longer
than everything else of a first answered cell together. A notebook usually runs ``%load_ext`` a while before
its first question, so there the wait is gone; even in one cell the SDK loads while the images are decoded,
resized and encoded (Pillow releases the GIL for that). The client is the one ``make_client`` hands to
every question (``reuse=True``), so it is made once.

:func:`begin` starts the import first thing in ``%load_ext`` (before the rest of vision_magic is imported);
:func:`configure` then hands the thread the client to make once the settings exist
(:func:`vision_magic.engine.endpoints.warm_up_client`); ``make_client`` waits for the thread. This module
imports nothing of vision_magic's. Nothing is warmed for a dry run or
without a key (nothing would be sent). ``import vision_magic`` itself never imports the SDK. Whatever goes
wrong on the thread is dropped: the question then makes its own client and reports the error as usual.

Examples
--------
>>> from vision_magic.engine import warm
>>> warm.wait()  # returns at once when nothing is warming
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

_thread: threading.Thread | None = None
_lock = threading.Lock()
_configured = threading.Event()
_job: Callable[[], Any] | None = None  # what the thread runs after the import, set by configure()

# A question can be sent only with a key or to a server of one's own (which needs none): without either, the
# SDK is not imported ahead of time. (endpoints.warm_up_client makes the exact check.)
_SENDING_HINTS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY")


def begin(config: Any = None) -> bool:
    """Start importing the SDK on a daemon thread, once per process, unless ``config`` (the shell's traitlets
    config) sets ``VisionMagic.dry_run`` or nothing suggests a question could be sent; whether it started."""
    global _thread
    settings = config.get("VisionMagic", {}) if hasattr(config, "get") else {}
    if settings.get("dry_run") is True:
        return False
    if not any(os.environ.get(name) for name in _SENDING_HINTS) and not settings:
        return False
    with _lock:
        if _thread is not None:
            return False
        _thread = threading.Thread(target=_warm, name="vision_magic-warm-up", daemon=True)
        _thread.start()
    return True


def configure(job: Callable[[], Any] | None) -> None:
    """What the thread runs once the SDK is imported: ``job`` makes the client (see
    :func:`vision_magic.engine.endpoints.warm_up_client`); None for nothing (a dry run, no key)."""
    global _job
    with _lock:
        if not _configured.is_set():
            _job = job
            _configured.set()


def wait() -> None:
    """Wait for the warm-up to finish (at once when none runs, or on the warm-up thread itself)."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        _configured.set()  # a question before configure(): the thread stops after the import
        thread.join()


def _warm() -> None:
    try:
        import openai  # noqa: F401 - the point: most of a second, now off the first question's path
    except Exception:  # noqa: BLE001 - the question imports it again and reports what is wrong
        return
    # vision_magic's own modules are touched only after configure(): by then the main thread imported them,
    # so the two threads never import the same module at the same time
    _configured.wait()
    if _job is None:
        return
    with contextlib.suppress(Exception):  # the question makes its own client and reports any error itself
        _job()
