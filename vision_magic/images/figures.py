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


class _Pixels(io.BytesIO):
    """A file ``savefig(format="rgba")`` writes into: keeps the RGBA buffer with its shape (no PNG encode and
    decode). With ``tight``, it also finds what is drawn: the box of the pixels that differ from the figure's
    background (``ink``, a few ms), and, only when that touches the figure's edge (something may reach
    beyond it), the figure's tight bounding box measured with the renderer that drew it (``bbox``; this
    recomputes every tick, about a third of a draw)."""

    def __init__(self, fig: Any, tight: bool) -> None:
        super().__init__()
        self.fig, self.tight = fig, tight
        self.shape: tuple[int, ...] | None = None
        self.pixels: bytes | None = None
        self.ink: tuple[int, int, int, int] | None = None
        self.bbox: Any = None

    def write(self, b: Any) -> int:
        view = memoryview(b)
        if self.shape is None and view.ndim == 3 and view.shape[2] == 4:
            self.shape, self.pixels = tuple(view.shape), view.tobytes()
            if self.tight:  # while savefig's Agg canvas is in place
                img = _image(self.shape, self.pixels)
                self.ink = _ink(img)
                if self.ink is None or _touches_edge(self.ink, img.size):
                    get_renderer = getattr(self.fig.canvas, "get_renderer", None)
                    if callable(get_renderer):
                        self.bbox = self.fig.get_tightbbox(get_renderer())
            return view.nbytes
        return super().write(b)


def _ink(img: Any) -> tuple[int, int, int, int] | None:
    """The box of the pixels that differ from the top-left one (the figure's background), or None."""
    from PIL import Image, ImageChops

    background = Image.new(img.mode, img.size, img.getpixel((0, 0)))
    return ImageChops.difference(img, background).getbbox(alpha_only=False)


def _touches_edge(box: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    return box[0] <= 0 or box[1] <= 0 or box[2] >= size[0] or box[3] >= size[1]


def _root(obj: Any) -> Any:
    try:
        return obj.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10
        fig = obj.get_figure()
        while fig is not None and getattr(fig, "figure", fig) is not fig:  # a SubFigure's parent
            fig = fig.figure
        return fig


def _check_area(fig: Any, label: str) -> None:
    width, height = (float(v) for v in fig.get_size_inches())
    if not (width > 0 and height > 0):
        raise SourceError(
            label,
            f"the figure has no area ({width:g} x {height:g} inches): give it a size, e.g. fig.set_size_inches(6, 4)",
        )


def _image(shape: tuple[int, ...], pixels: bytes) -> Any:
    from PIL import Image

    h, w = shape[0], shape[1]
    return Image.frombuffer("RGBA", (w, h), pixels, "raw", "RGBA", 0, 1)


def figure_pixels(fig: Any, label: str = "figure", dpi: float | None = None) -> Any:
    """``fig`` as the inline backend shows it (tight bounding box), as an RGBA ``PIL.Image``: drawn once
    into a buffer and cut to what is drawn plus ``savefig.pad_inches`` (the inline box is measured from text
    extents, so it may be a few pixels wider). When something is drawn up to the figure's edge, the box is
    measured as inline measures it; when something reaches beyond the edge (a legend placed outside the
    axes), the figure is drawn again the inline way, with the box enlarged to take it in.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(4, 3), dpi=100); _ = ax.plot([1, 2])
    >>> img = figure_pixels(fig)
    >>> img.mode, img.width <= 400, img.height <= 300
    ('RGBA', True, True)
    >>> ax.legend(["a line"], bbox_to_anchor=(1.05, 1)) and figure_pixels(fig).width > 400  # outside: enlarged
    True
    >>> plt.close(fig)
    """
    import sys

    if fig is None:
        raise SourceError(label, "the Axes belongs to no figure")
    _check_area(fig, label)
    dpi = float(dpi or fig.dpi)
    capture = _Pixels(fig, tight=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.savefig(capture, format="rgba", dpi=dpi)
    except Exception as e:
        raise SourceError(label, f"matplotlib could not draw the figure ({type(e).__name__}: {e})") from None
    rc = getattr(sys.modules.get("matplotlib"), "rcParams", {})
    pad = rc.get("savefig.pad_inches", 0.1)
    usable = capture.bbox is not None or capture.ink is not None
    if capture.shape is None or not usable or not isinstance(pad, (int, float)):
        return _decoded(figure_png(fig, label, dpi))
    img = _image(capture.shape, capture.pixels or b"")
    width, height = (float(v) for v in fig.get_size_inches())
    if abs(img.width - width * dpi) > 1 or abs(img.height - height * dpi) > 1:
        return _decoded(figure_png(fig, label, dpi))  # not the whole figure (rcParams["savefig.bbox"] set)
    scale_x, scale_y = img.width / width, img.height / height
    if capture.bbox is None and capture.ink is not None:  # all of it drawn well inside the figure
        margin_x, margin_y = round(pad * scale_x), round(pad * scale_y)
        x0, y0, x1, y1 = capture.ink
        box = (x0 - margin_x, y0 - margin_y, x1 + margin_x, y1 + margin_y)
    else:
        x0, y0, x1, y1 = capture.bbox.extents
        if x0 < -1e-6 or y0 < -1e-6 or x1 > width + 1e-6 or y1 > height + 1e-6:
            return _decoded(figure_png(fig, label, dpi))  # drawn outside the figure: matplotlib enlarges it
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        box = (
            int(x0 * scale_x),
            int(img.height - y1 * scale_y),
            round(x1 * scale_x),
            round(img.height - y0 * scale_y),
        )
    if box == (0, 0, img.width, img.height):
        return img
    if box[0] >= 0 and box[1] >= 0 and box[2] <= img.width and box[3] <= img.height:
        return img.crop(box)
    # the padding reaches past the figure's edge: more of the figure's background there, as inline shows it
    from PIL import Image

    out = Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), img.getpixel((0, 0)))
    out.paste(img, (-box[0], -box[1]))
    return out


def _decoded(png: bytes) -> Any:
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def _companions(ax: Any, fig: Any) -> list[Any]:
    """``ax`` with what is drawn as part of it: twin axes (same position) and its colorbars."""
    position = ax.get_position().bounds
    keep = [ax]
    for other in fig.get_axes():
        if other is ax:
            continue
        colorbar = getattr(other, "_colorbar", None)  # set by matplotlib on a colorbar's axes
        mappable_axes = getattr(getattr(colorbar, "mappable", None), "axes", None)
        if mappable_axes is ax or other.get_position().bounds == position:
            keep.append(other)
    return keep


def _others(fig: Any, keep: list[Any]) -> list[Any]:
    """The visible artists of ``fig`` (and its subfigures) that are not ``keep`` nor hold one of them."""
    out = []
    for child in fig.get_children():
        if child is fig.patch or child in keep or not child.get_visible():
            continue
        if any(_holds(child, a) for a in keep):
            out += _others(child, keep)  # a subfigure holding the axes: hide the rest of it
            continue
        out.append(child)
    return out


def _holds(container: Any, ax: Any) -> bool:
    fig = ax.get_figure()
    while fig is not None:
        if fig is container:
            return True
        parent = getattr(fig, "figure", None)
        fig = None if parent is fig else parent
    return False


def axes_pixels(ax: Any, label: str = "axes", dpi: float | None = None, fit: Any = None) -> Any:
    """Only ``ax``: its tight bounding box (title, tick labels, axis labels, legend, twin axes and colorbar)
    drawn at the figure's dpi (or ``dpi``) without the figure's other axes or figure-level artists, as an
    RGBA ``PIL.Image``. ``fit(w, h)`` may give a smaller size to draw at (the dpi is lowered to match).

    The figure is left as it was: the other artists are hidden only while drawing, and the layout is kept
    as it is (not recomputed without them).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, axs = plt.subplots(2, 2, figsize=(8, 6), dpi=100)
    >>> img = axes_pixels(axs[0, 1])
    >>> img.width < 450 and img.height < 350, all(a.get_visible() for a in fig.axes)
    (True, True)
    >>> plt.close(fig)
    """
    fig = _root(ax)
    if fig is None:
        raise SourceError(label, "the Axes belongs to no figure")
    _check_area(fig, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.draw_without_rendering()  # lay the figure out as it will be drawn, every artist in place
            keep = _companions(ax, fig)
            boxes = [b for b in (a.get_tightbbox() for a in keep if a.get_visible()) if b is not None]
    except Exception as e:
        raise SourceError(label, f"matplotlib could not draw the figure ({type(e).__name__}: {e})") from None
    if not boxes:
        raise SourceError(label, "the Axes is hidden (set_visible(False)): nothing to send")
    import sys

    rc = getattr(sys.modules.get("matplotlib"), "rcParams", {})
    pad = rc.get("savefig.pad_inches", 0.1)
    pad = pad if isinstance(pad, (int, float)) else 0.1
    x0 = min(b.x0 for b in boxes) / fig.dpi - pad
    y0 = min(b.y0 for b in boxes) / fig.dpi - pad
    x1 = max(b.x1 for b in boxes) / fig.dpi + pad
    y1 = max(b.y1 for b in boxes) / fig.dpi + pad
    dpi = float(dpi or fig.dpi)
    if fit is not None:
        w, h = round((x1 - x0) * dpi), round((y1 - y0) * dpi)
        tw, _ = fit(w, h)
        if 0 < tw < w:
            dpi *= tw / w
    hidden = _others(fig, keep)
    engine = fig.get_layout_engine()
    capture = _Pixels(fig, tight=False)
    try:
        for artist in hidden:
            artist.set_visible(False)
        if engine is not None:
            fig.set_layout_engine("none")  # keep the layout the other axes gave it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.savefig(
                capture, format="rgba", dpi=dpi, bbox_inches=fig.bbox_inches.from_extents(x0, y0, x1, y1)
            )
    except Exception as e:
        raise SourceError(label, f"matplotlib could not draw the Axes ({type(e).__name__}: {e})") from None
    finally:
        for artist in hidden:
            artist.set_visible(True)
        if engine is not None:
            fig.set_layout_engine(engine)
    if capture.shape is None:
        raise SourceError(label, "matplotlib drew no pixels for the Axes")
    return _image(capture.shape, capture.pixels or b"")
