"""Matplotlib figures as PNG bytes: the one place a figure is drawn for sending, thumbnails or display."""

from __future__ import annotations

import io
import warnings
from typing import Any

from ..errors import SourceError


def figure_png(fig: Any, label: str = "figure", dpi: float | None = None) -> bytes:
    """``fig`` drawn as the inline backend shows it (tight bounding box, no "Software" metadata).

    ``dpi`` defaults to the figure's own; a broken artist becomes a one-line :class:`SourceError`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(2, 1)); _ = ax.plot([1, 2])
    >>> figure_png(fig)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> plt.close(fig)
    """
    if fig is None:
        raise SourceError(label, "the Axes belongs to no figure")
    width, height = (float(v) for v in fig.get_size_inches())
    if not (width > 0 and height > 0):
        raise SourceError(
            label,
            f"the figure has no area ({width:g} x {height:g} inches): give it a size, e.g. fig.set_size_inches(6, 4)",
        )
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():  # numpy/matplotlib warnings about odd artists stay out of the cell
            warnings.simplefilter("ignore")
            fig.savefig(
                buf, format="png", dpi=dpi or fig.dpi, bbox_inches="tight", metadata={"Software": None}
            )
    except Exception as e:  # a broken artist; say which figure and why
        raise SourceError(label, f"matplotlib could not draw the figure ({type(e).__name__}: {e})") from None
    return buf.getvalue()


def figure_of(obj: Any) -> Any:
    """The ``Figure`` of a Figure or an Axes (anything with ``savefig``, or ``get_figure()``)."""
    get_figure = getattr(obj, "get_figure", None)
    if not hasattr(obj, "savefig") and callable(get_figure):  # an Axes
        return get_figure()
    return obj


def current_figure() -> Any:
    """The open matplotlib figure that has something drawn, without creating one (nor importing
    matplotlib); else None."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or not plt.get_fignums():
        return None
    fig = plt.gcf()
    return fig if fig.get_axes() or fig.images or fig.texts else None
