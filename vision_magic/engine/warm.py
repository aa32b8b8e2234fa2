"""The warm-up: at ``%load_ext``, the ``openai`` SDK is imported and the client for the endpoint in force is
made on a background thread, so the first question does not wait for them.

Importing the SDK, loading the certificate store and the SDK's chat resources take most of a second, longer
than everything else of a first answered cell together. A notebook usually runs ``%load_ext`` a while before
its first question, so there the wait is gone; even in one cell the SDK loads while the images are decoded,
resized and encoded (Pillow releases the GIL for that). The client is the one :func:`make_client` hands to
every question (``reuse=True``), so it is made once.

:func:`begin` starts the import first thing in ``%load_ext`` (before the rest of vision_magic is imported);
:func:`configure` then names the client to make, once the settings exist. Nothing is warmed for a dry run or
without a key (nothing would be sent). ``import vision_magic`` itself never imports the SDK. Whatever goes
wrong on the thread is dropped: the question then makes its own client and reports the error as usual.

Examples
--------
>>> from vision_magic.engine import warm
>>> warm.wait()  # returns at once when nothing is warming
"""

from __future__ import annotations

import os
import threading
from typing import Any

_thread: threading.Thread | None = None
_lock = threading.Lock()
_configured = threading.Event()
_target: tuple[Any, Any] | None = None  # (settings, endpoint) of the client to make, set by configure()

# A question can be sent only with a key or to a server of one's own (which needs none): without either, the
# SDK is not imported ahead of time. (configure() makes the exact check before a client is made.)
_SENDING_HINTS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY")


def begin(config: Any = None) -> bool:
    """Start importing the SDK on a daemon thread, once per process, unless ``config`` (the shell's traitlets
    config) sets ``VisionMagic.dry_run`` or nothing suggests a question could be sent; whether it started."""
    global _thread
    settings = (config or {}).get("VisionMagic", {}) if hasattr(config or {}, "get") else {}
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


def configure(cfg: Any) -> None:
    """Name the client the warm-up makes: the one for ``cfg``'s endpoint in force (none for a dry run or
    when there is no key: the question says so itself)."""
    global _target
    from ..errors import ConfigError
    from .endpoints import api_key, endpoint_for, resolve_base_url

    target = None
    if not getattr(cfg, "dry_run", False):
        try:
            endpoint = endpoint_for(resolve_base_url(cfg), cfg.endpoints, cfg.server, cfg.api)
            api_key(endpoint)
            target = (cfg, endpoint)
        except ConfigError:  # no key or a bad setting
            pass
    with _lock:
        if not _configured.is_set():
            _target = target
            _configured.set()


def start(cfg: Any) -> bool:
    """:func:`begin` and :func:`configure` at once (for settings made outside a shell); whether it started."""
    started = begin({"VisionMagic": {"dry_run": bool(getattr(cfg, "dry_run", False))}})
    configure(cfg)
    return started


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
    if _target is None:
        return
    from .endpoints import make_client

    cfg, endpoint = _target
    try:
        client = make_client(cfg, endpoint, max_retries=0, reuse=True)  # as engine.run asks for it
        _ = client.responses if endpoint.api == "responses" else client.chat.completions  # imported on use
    except Exception:  # noqa: BLE001 - the question makes its own client and reports any error itself
        pass
