"""Capture the images the notebook displays, so a bare ``%%ask_image`` can ask about the last one shown.

The extension wraps the shell's display publisher and display hook: any ``image/png`` or ``image/jpeg`` in a
published bundle (a figure shown by the inline backend, ``display(img)``, a PIL image as a cell's value) is
kept as bytes in the session. Nothing is decoded here. :func:`uninstall` puts the originals back.
"""

from __future__ import annotations

import base64
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


def install(shell: Any) -> None:
    """Wrap ``shell``'s display publisher and display hook to feed :func:`remember` (once per shell)."""
    for owner_name, method, where in _TARGETS:
        owner = getattr(shell, owner_name)
        if _ours(owner, method) is not None or not hasattr(owner, method):
            continue
        original = getattr(owner, method)
        had_own = method in vars(owner)

        def wrapper(
            data: Any, *args: Any, _original: Any = original, _where: str = where, **kwargs: Any
        ) -> Any:
            remember(data, _where)
            return _original(data, *args, **kwargs)

        wrapper._vision_magic_original = (original, had_own)  # type: ignore[attr-defined]
        setattr(owner, method, wrapper)


def uninstall(shell: Any) -> None:
    """Undo :func:`install`: the publisher and display hook are what they were before."""
    for owner_name, method, _where in _TARGETS:
        owner = getattr(shell, owner_name)
        found = _ours(owner, method)
        if found is None:
            continue
        original, had_own = found
        if had_own:
            setattr(owner, method, original)
        else:
            delattr(owner, method)


def installed(shell: Any) -> bool:
    """True while :func:`install`'s wrapper of the display publisher is in place."""
    return _ours(shell.display_pub, "publish") is not None


def _ours(owner: Any, method: str) -> tuple[Any, bool] | None:
    """(original, whether it was an instance attribute) when ``owner.method`` is our wrapper, else None."""
    return getattr(vars(owner).get(method), "_vision_magic_original", None)
