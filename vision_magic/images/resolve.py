"""Resolve anything a user may point at into prepared images.

Pure: no IPython, no openai. A source is a URL, a ``data:`` URL, a path, a glob, a directory, bytes, a
file-like object, a ``PIL.Image.Image``, a matplotlib ``Figure``/``Axes``, a numpy array, any object with
``_repr_png_``/``_repr_jpeg_`` (IPython's ``Image``), or a list/tuple of these. Every problem of every source is
collected first and raised together, so nothing is sent when any source is bad.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SourceError, SourceErrors, redact
from .encode import (
    ImageOptions,
    PreparedImage,
    decode_data_url,
    fit_request,
    prepare_bytes,
    prepare_image,
    prepare_link,
)
from .regions import split_crop

IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
)
MAX_FILE_BYTES = 200 * 1024 * 1024

# Called with (url, label) to turn an http(s) link into a prepared image; None sends links as they are.
LinkHandler = Callable[[str, str], PreparedImage]


class BadSource:
    """A placeholder for a source that already failed to resolve (e.g. an unknown variable on the magic
    line), so its error is listed together with every other problem of the request."""

    def __init__(self, error: SourceError) -> None:
        self.error = error


class Region:
    """Part of a source: ``box`` is ``(x0, y0, x1, y1)`` in the upright image, pixels or fractions when all
    four are at most 1 (what ``name[x0,y0,x1,y1]`` on the magic line and ``vision_magic.region`` make). It
    applies before resizing, instead of any crop given for the whole request.

    Examples
    --------
    >>> from PIL import Image
    >>> [(p.width, p.height) for p in prepare_sources([Region(Image.new("RGB", (400, 300)), (0, 0, 0.5, 0.5))])]
    [(200, 150)]
    """

    def __init__(self, source: Any, box: Any) -> None:
        from .regions import parse_crop

        self.source = source
        self.box = parse_crop(box)

    def __repr__(self) -> str:
        from .regions import format_crop

        return f"<Region {format_crop(self.box)} of {type(self.source).__name__}>"


def region(source: Any, box: Any) -> Region:
    """Part of an image source for :func:`vision_magic.ask` and every other front end: ``box`` is
    ``(x0, y0, x1, y1)`` or ``"x0,y0,x1,y1"`` in the upright image, in pixels (``x1``/``y1`` exclusive), or
    fractions of the width and height when all four are at most 1. Applied before resizing; the same as
    ``name[x0,y0,x1,y1]`` on the magic line. (``crop=`` crops every image of a request alike.)

    Examples
    --------
    >>> import vision_magic
    >>> from PIL import Image
    >>> part = vision_magic.region(Image.new("RGB", (4000, 3000)), "0,0,0.25,0.5")
    >>> [(p.width, p.height, p.notes[0]) for p in prepare_sources([part])]  # the 1000x1500 part, at the model's size
    [(768, 1152, 'cropped to 0,0,1000,1500 of 4000x3000')]
    >>> prepare_sources([vision_magic.region(Image.new("RGB", (40, 30)), (0, 0, 50, 10))])
    Traceback (most recent call last):
    ...
    vision_magic.errors.SourceErrors: image 0: crop 0,0,50,10 is outside the 40x30 image (x1 50 > width 40); crop within 0,0,40,30 or give fractions 0..1 (nothing was sent)
    """
    return Region(source, box)


class Group:
    """Several sources that stand for one (e.g. the images of an earlier cell's outputs), each with its own
    label; a :class:`BadSource` among them is listed with every other problem of the request.

    Examples
    --------
    >>> from PIL import Image
    >>> [p.source for p in prepare_sources([Group([("@3:1", Image.new("RGB", (8, 8))), ("@3:2", Image.new("L", (8, 8)))])])]
    ['@3:1', '@3:2']
    """

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = items


def prepare_sources(
    sources: Iterable[Any],
    options: ImageOptions | None = None,
    *,
    labels: Iterable[str] | None = None,
    link_handler: LinkHandler | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> list[PreparedImage]:
    """Prepare every image of ``sources`` in order; raise :class:`SourceErrors` listing all bad ones.

    Examples
    --------
    >>> from PIL import Image
    >>> [(p.mime, p.width, p.height) for p in prepare_sources([Image.new("RGB", (64, 32), "white")])]
    [('image/png', 64, 32)]
    """
    options = options or ImageOptions()
    sources = list(sources)
    names = list(labels) if labels is not None else [None] * len(sources)
    out: list[PreparedImage] = []
    errors: list[SourceError] = []
    for i, (src, name) in enumerate(zip(sources, names, strict=False)):
        label = redact(name or _default_label(src, i))  # a label is shown, never sent: no secrets in it
        for obj, item_label, crop in _expand(src, label, base_dir, errors):
            item_options = options if crop is None else replace(options, crop=crop)
            try:
                out.extend(_prepare_one(obj, item_label, item_options, link_handler))
            except SourceError as e:
                errors.append(e)
            except MemoryError:
                errors.append(
                    SourceError(item_label, "not enough memory to decode this image; downscale it first")
                )
    if errors:
        raise SourceErrors(errors)
    return fit_request(out, options)


def _default_label(src: Any, i: int) -> str:
    if isinstance(src, (str, os.PathLike)):
        s = os.fspath(src)
        return s if not s.startswith("data:") else f"data URL ({len(s)} chars)"
    return f"image {i}"


def _expand(
    src: Any, label: str, base_dir: Any, errors: list[SourceError], crop: Any = None
) -> Iterator[tuple[Any, str, Any]]:
    """Flatten lists, globs and directories into (object, label, crop) triples (crop None: the request's);
    record what resolves to nothing."""
    if isinstance(src, BadSource):
        errors.append(src.error)
        return
    if isinstance(src, Region):
        yield from _expand(src.source, label, base_dir, errors, src.box)
        return
    if isinstance(src, Group):
        for item_label, item in src.items:
            yield from _expand(item, item_label, base_dir, errors, crop)
        return
    if isinstance(src, (list, tuple)):
        if not src:
            errors.append(SourceError(label, "the list is empty"))
        for j, item in enumerate(src):
            yield from _expand(item, f"{label}[{j}]", base_dir, errors, crop)
        return
    if isinstance(src, str) and crop is None and not _as_it_is(src, base_dir):
        split = split_crop(src)
        if split is not None:  # `plot.png[0,0,0.5,0.5]`: a crop of the source before the brackets
            yield from _expand(split[0], label, base_dir, errors, split[1])
            return
    if isinstance(src, str) and src.startswith(("http://", "https://", "data:")):
        yield src, label, crop
        return
    if isinstance(src, (str, os.PathLike)):
        try:
            for path, path_label in labelled_files(src, label, base_dir):
                yield path, path_label, crop
        except SourceError as e:
            errors.append(SourceError(label, e.reason) if label != os.fspath(src) else e)
        return
    yield src, label, crop


def _as_it_is(spec: str, base_dir: Any) -> bool:
    """Whether ``spec`` is a source as it is: it cannot end in a crop, or it names a file, a directory or
    glob matches (then a trailing ``[x0,y0,x1,y1]`` is part of its name, not a crop)."""
    if not spec.endswith("]") or spec.startswith("data:"):
        return True
    if spec.startswith(("http://", "https://")):
        return False
    try:
        find_files(spec, base_dir)
    except SourceError:
        return False
    return True


def labelled_files(spec: str | os.PathLike[str], label: str, base_dir: Any = None) -> list[tuple[Path, str]]:
    """The files ``spec`` names (see :func:`find_files`), each with its label: ``label`` for a single file,
    else its path relative to ``base_dir`` (glob and directory matches)."""
    files = find_files(spec, base_dir)
    single = len(files) == 1 and Path(local_path(os.fspath(spec))).expanduser().name == files[0].name
    return [(p, label if single else _relative(p, base_dir)) for p in files]


def _relative(path: Path, base_dir: Any) -> str:
    try:
        return str(path.relative_to(Path(base_dir or os.getcwd())))
    except ValueError:
        return str(path)


def local_path(spec: str) -> str:
    """The path of a ``file://`` URL (``file:///home/me/a.png``, ``file://localhost/...``); other specs as
    they are.

    Examples
    --------
    >>> local_path("file:///tmp/my%20plot.png"), local_path("plots/a.png")
    ('/tmp/my plot.png', 'plots/a.png')
    """
    if not spec.startswith("file://"):
        return spec
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    url = urlparse(spec)
    if url.netloc not in ("", "localhost"):
        raise SourceError(spec, f"a file:// URL on another host ({url.netloc}) cannot be read here")
    return url2pathname(url.path)


def find_files(spec: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The image files a path, glob or directory names (``~`` expanded, relative to ``base_dir`` or the
    working directory; globs and directories sorted by name).

    Examples
    --------
    >>> find_files("no/such/file.png")
    Traceback (most recent call last):
    ...
    vision_magic.errors.SourceError: no/such/file.png: file not found (looked for ...no/such/file.png)
    """
    text = os.fspath(spec)
    path = Path(local_path(text)).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or os.getcwd()) / path
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.name,
        )
        if not found:
            raise SourceError(text, f"the directory has no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        return found
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
        if not matches:
            raise SourceError(text, "no files match this pattern")
        return matches
    if path.exists():
        raise SourceError(text, "not a regular file")
    raise SourceError(text, f"file not found (looked for {path})")


def _prepare_one(
    obj: Any, label: str, options: ImageOptions, link_handler: LinkHandler | None
) -> list[PreparedImage]:
    """The image(s) of one source: one, or an overview and its tiles with ``options.zoom``."""
    region = bool(options.crop or options.zoom)
    if isinstance(obj, str) and obj.startswith(("http://", "https://")):
        if not region:
            return [link_handler(obj, label) if link_handler else prepare_link(obj, label, options)]
        from .download import DEFAULT_INLINE_MAX_BYTES, DEFAULT_INLINE_TIMEOUT, download

        # a crop or a zoom needs the pixels: the link is downloaded here and its part sent inline
        obj = download(obj, label, DEFAULT_INLINE_MAX_BYTES, DEFAULT_INLINE_TIMEOUT)
    pixels = _pixels_of(obj, label, options)
    if options.zoom:
        from .zoom import prepare_zoomed

        return prepare_zoomed(pixels, label, options)
    if isinstance(pixels, bytes):
        return [prepare_bytes(pixels, label, options)]
    return [prepare_image(pixels, label, options)]


def _pixels_of(obj: Any, label: str, options: ImageOptions) -> Any:
    """``obj`` as encoded bytes or a ``PIL.Image.Image`` (figures and Axes drawn, arrays converted)."""
    if isinstance(obj, str) and obj.startswith("data:"):
        return decode_data_url(obj, label)
    if isinstance(obj, Path):
        return read_file(obj, label)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    kind = source_kind(obj)
    if kind == "pil":
        return obj
    if kind == "figure":
        return figure_image(obj, label, options)
    if kind == "axes":
        return axes_image(obj, label, options)
    if kind == "ndarray":
        return array_to_image(obj, label)
    if hasattr(obj, "read") and callable(obj.read):
        return obj.read()
    for method in ("_repr_png_", "_repr_jpeg_"):
        if callable(getattr(obj, method, None)):
            data = getattr(obj, method)()
            if isinstance(data, tuple):  # (data, metadata)
                data = data[0]
            if isinstance(data, str):
                import base64

                data = base64.b64decode(data)
            if data:
                return bytes(data)
    raise SourceError(
        label,
        f"a {type(obj).__name__} is not an image source (use a path, URL, PIL image, matplotlib figure, "
        "numpy array or bytes)",
    )


def source_kind(obj: Any) -> str | None:
    """What ``obj`` is, by its class's module, without importing PIL, matplotlib or numpy."""
    for cls in type(obj).__mro__:
        mod = cls.__module__ or ""
        if mod.startswith("PIL.") and cls.__name__ == "Image":
            return "pil"
        if mod.startswith("matplotlib.figure") and cls.__name__ in ("Figure", "SubFigure"):
            return "figure"
        if mod.startswith("matplotlib.axes") and cls.__name__ in ("Axes", "_AxesBase"):
            return "axes"
        if mod == "numpy" and cls.__name__ == "ndarray":
            return "ndarray"
    return None


def read_file(path: Path, label: str) -> bytes:
    """The bytes of ``path``, refusing files too large to be an image worth sending."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(
                label, f"the file is {size / 1e6:.0f} MB, too large (limit {MAX_FILE_BYTES // 1_000_000} MB)"
            )
        return path.read_bytes()
    except PermissionError:
        raise SourceError(label, "permission denied when reading the file") from None
    except FileNotFoundError:
        raise SourceError(label, "file not found") from None
    except IsADirectoryError:
        raise SourceError(label, "is a directory") from None


def array_to_image(arr: Any, label: str) -> Any:
    """A numpy array (HxW, HxWx1, HxWx3, HxWx4; uint8, uint16, bool, or float in [0, 1]) as a PIL image.

    Examples
    --------
    >>> import numpy as np
    >>> array_to_image(np.zeros((2, 3, 3)), "a").size
    (3, 2)
    """
    import numpy as np
    from PIL import Image

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise SourceError(label, f"an array of shape {a.shape} is not an image (use HxW, HxWx3 or HxWx4)")
    if a.size == 0:
        raise SourceError(label, f"the array is empty (shape {a.shape})")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        if np.isnan(a).any():
            raise SourceError(label, "the float array contains NaN; replace it (e.g. np.nan_to_num(arr))")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise SourceError(
                label,
                f"float array values must be in [0, 1] (found {lo:g}..{hi:g}); scale it, e.g. arr / arr.max()",
            )
        a = (a * 255 + 0.5).astype(np.uint8)
    elif a.dtype == np.uint16 and a.ndim == 2:
        return Image.fromarray(a.astype(np.int32), mode="I")
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise SourceError(label, f"{a.dtype} values {lo}..{hi} do not fit 0..255; convert to uint8 first")
        a = a.astype(np.uint8)
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[a.ndim if a.ndim == 2 else a.shape[2]]
    return Image.fromarray(np.ascontiguousarray(a), mode=mode)


def _fit(options: ImageOptions) -> Callable[[int, int], tuple[int, int]] | None:
    """The size to draw a figure at: the model's, unless a crop or zoom needs the figure's own pixels."""
    from .profiles import used_size

    if not options.resize or options.crop or options.zoom:
        return None
    return lambda w, h: used_size(w, h, options.profile, options.detail)


def figure_image(fig: Any, label: str, options: ImageOptions | None = None) -> Any:
    """A matplotlib figure drawn as the inline backend shows it (tight bounding box), as a PIL image, at a
    dpi that already gives the size the model uses, so nothing is drawn larger only to be shrunk."""
    from .figures import figure_pixels

    options = options or ImageOptions()
    if fig is None:
        raise SourceError(label, "the Axes belongs to no figure")
    dpi = float(fig.dpi)
    w, h = (float(v) * dpi for v in fig.get_size_inches())
    fit = _fit(options)
    if fit is not None and w > 0 and h > 0:
        tw, _ = fit(round(w), round(h))
        if tw < w:
            dpi *= tw / w
    return figure_pixels(fig, label, dpi)


def axes_image(ax: Any, label: str, options: ImageOptions | None = None) -> Any:
    """One matplotlib Axes alone (its tight bounding box: title, ticks, labels, legend), as a PIL image."""
    from .figures import axes_pixels

    return axes_pixels(ax, label, fit=_fit(options or ImageOptions()))


def prepare_figure(fig: Any, label: str, options: ImageOptions | None = None) -> PreparedImage:
    """A matplotlib figure (or one Axes of it) prepared for sending (see :func:`figure_image`).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(8, 5), dpi=100); _ = ax.plot([1, 3, 2])
    >>> p = prepare_figure(fig, "fig")
    >>> p.width <= 800 and p.height <= 500, p.mime
    (True, 'image/webp')
    >>> plt.close(fig)
    """
    options = options or ImageOptions()
    image = (
        axes_image(fig, label, options) if source_kind(fig) == "axes" else figure_image(fig, label, options)
    )
    return prepare_image(image, label, options)
