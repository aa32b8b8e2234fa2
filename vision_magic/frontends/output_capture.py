"""Capture the images the notebook displays, so a bare ``%%ask_image`` can ask about the last one shown.

The extension wraps the shell's display publisher and display hook: any ``image/png`` or ``image/jpeg`` in a
published bundle (a figure shown by the inline backend, ``display(img)``, a PIL image as a cell's value) is
kept as bytes in the session. Nothing is decoded here. :func:`uninstall` puts the originals back.
"""

from __future__ import annotations

import base64
import weakref
from typing import Any

from ..engine.session import Session, current


def remember(bundle: Any, where: str = "output", session: Session | None = None) -> None:
    """Keep the first PNG/JPEG of a mime bundle, if any, as the session's last image shown.

    Examples
    --------
    >>> s = Session(); remember({"image/png": "iVBORw0KGgo="}, "display", s); s.last_shown
    ('the last image shown (display)', b'\\x89PNG\\r\\n\\x1a\\n')
    """
    if not isinstance(bundle, dict):
        return
    for mime in ("image/png", "image/jpeg"):
        data = bundle.get(mime)
        if not data:
            continue
        if isinstance(data, str):
            try:
                data = base64.b64decode(data)
            except ValueError:
                continue
        if isinstance(data, (bytes, bytearray)):
            (session or current()).last_shown = (f"the last image shown ({where})", bytes(data))
            return


_TARGETS = (("display_pub", "publish", "display"), ("displayhook", "write_format_data", "cell result"))


class _Capture:
    """The wrappers put on one shell, and whether they capture (a wrapper that another wrapper has since
    wrapped cannot be taken out of the chain; it is switched off instead)."""

    def __init__(self) -> None:
        self.enabled = True
        self.wrapped: list[
            tuple[Any, str, Any, bool, Any]
        ] = []  # (owner, method, original, had_own, wrapper)


_captures: weakref.WeakKeyDictionary[Any, _Capture] = weakref.WeakKeyDictionary()


def install(shell: Any) -> None:
    """Wrap ``shell``'s display publisher and display hook to feed :func:`remember` (once per shell; a
    second install after :func:`uninstall` switches the same wrappers back on)."""
    capture = _captures.get(shell)
    if capture is None:
        capture = _captures[shell] = _Capture()
    capture.enabled = True
    for owner_name, method, where in _TARGETS:
        owner = getattr(shell, owner_name, None)
        if owner is None or not hasattr(owner, method):
            continue
        if any(o is owner and m == method for o, m, *_ in capture.wrapped):
            continue  # still wrapped (switched back on above)
        original = getattr(owner, method)

        def wrapper(
            data: Any, *args: Any, _original: Any = original, _where: str = where, **kwargs: Any
        ) -> Any:
            if capture.enabled:
                remember(data, _where)
            return _original(data, *args, **kwargs)

        capture.wrapped.append((owner, method, original, method in vars(owner), wrapper))
        setattr(owner, method, wrapper)


def uninstall(shell: Any) -> None:
    """Undo :func:`install`: nothing is captured any more, and the publisher and display hook are what they
    were before wherever no other code has wrapped them since."""
    capture = _captures.get(shell)
    if capture is None:
        return
    capture.enabled = False
    kept = []
    for owner, method, original, had_own, wrapper in capture.wrapped:
        if vars(owner).get(method) is not wrapper:
            kept.append((owner, method, original, had_own, wrapper))  # wrapped again by someone else
        elif had_own:
            setattr(owner, method, original)
        else:
            delattr(owner, method)
    capture.wrapped = kept
    if not kept:
        del _captures[shell]


def installed(shell: Any) -> bool:
    """True while images the shell displays are captured."""
    capture = _captures.get(shell)
    return capture is not None and capture.enabled
