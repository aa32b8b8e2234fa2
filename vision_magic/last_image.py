"""Remember the most recent image the notebook displayed, so a bare ``%%ask_image`` can ask about it.

The extension wraps the shell's display publisher and display hook: any ``image/png`` or ``image/jpeg`` in a
published bundle (a figure shown by the inline backend, ``display(img)``, a PIL image as a cell's value) is kept
as bytes. Only the newest is kept; nothing is decoded here.
"""

from __future__ import annotations

import base64
from typing import Any

_latest: tuple[str, bytes] | None = None  # (description, encoded bytes)


def remember(bundle: Any, where: str = "output") -> None:
    """Keep the first PNG/JPEG of a mime bundle, if any."""
    global _latest
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
            _latest = (f"the last image shown ({where})", bytes(data))
            return


def latest() -> tuple[str, bytes] | None:
    """(description, bytes) of the newest displayed image, or None."""
    return _latest


def clear() -> None:
    global _latest
    _latest = None


def current_figure() -> Any:
    """The open matplotlib figure that has something drawn, without creating one; else None."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or not plt.get_fignums():
        return None
    fig = plt.gcf()
    return fig if fig.get_axes() or fig.images or fig.texts else None


def install(shell: Any) -> None:
    """Wrap ``shell``'s display publisher and display hook once to feed :func:`remember`."""
    pub = shell.display_pub
    if not getattr(pub, "_vision_magic_wrapped", False):
        original_publish = pub.publish

        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            remember(data, "display")
            return original_publish(data, *args, **kwargs)

        pub.publish = publish
        pub._vision_magic_wrapped = True
    hook = shell.displayhook
    if not getattr(hook, "_vision_magic_wrapped", False) and hasattr(hook, "write_format_data"):
        original_write = hook.write_format_data

        def write_format_data(format_dict: Any, md_dict: Any = None) -> Any:
            remember(format_dict, "cell result")
            return original_write(format_dict, md_dict)

        hook.write_format_data = write_format_data
        hook._vision_magic_wrapped = True
