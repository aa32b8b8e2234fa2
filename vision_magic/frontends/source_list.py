"""The panel's images: a list of sources with thumbnails, an upload button, a URL/path field and a
"current figure" button. It owns the sources and their prepared images; :class:`AskPanel` owns asking."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..engine.session import current
from ..errors import one_line, redact
from ..images.figures import current_figure, figure_png
from ..images.thumbnail import thumbnail

# prepare(label, source) -> prepared images of that one source for the panel's current model and detail
Prepare = Callable[[str, Any], list[Any]]


class SourceList(widgets.VBox):
    """Sources in play, each with its thumbnails, token count and a remove button.

    Attributes
    ----------
    sources : ``(label, source)`` pairs (anything :func:`vision_magic.ask` takes).
    images : the prepared images of every source, in order (as last drawn).
    upload, url, add_url, figure_button, thumbnails : the widgets.
    """

    def __init__(
        self,
        prepare: Prepare,
        key: Callable[[], tuple[Any, ...]],
        on_error: Callable[[str], None],
        on_change: Callable[[], None],
    ) -> None:
        self.sources: list[tuple[str, Any]] = []
        self.images: list[Any] = []
        self._prepare_one = prepare
        self._key = key
        self._on_error = on_error
        self._on_change = on_change
        self._memo: dict[int, tuple[Any, tuple[Any, ...], list[Any]]] = {}
        self.thumbnails = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload")
        self.url = widgets.Text(placeholder="https://… or a file path", layout=widgets.Layout(width="22em"))
        self.add_url = widgets.Button(description="Add", tooltip="Add the URL or path")
        self.figure_button = widgets.Button(
            description="Current figure",
            icon="bar-chart",
            tooltip="Add the open plot (or the last image shown)",
        )
        self.upload.observe(self._on_upload, names="value")
        self.add_url.on_click(lambda _: self.add(self.url.value.strip(), clear_url=True))
        self.figure_button.on_click(lambda _: self.add_current_figure())
        super().__init__(
            [self.thumbnails, widgets.HBox([self.upload, self.url, self.add_url, self.figure_button])]
        )

    def add(self, source: Any, label: str | None = None, *, clear_url: bool = False) -> bool:
        """Add an image (URL, path, bytes, figure, PIL image, ...); a bad one shows its error and is left out."""
        if source is None or (isinstance(source, str) and not source):
            self._on_error("type a URL or a file path first")
            return False
        label = label or (source if isinstance(source, str) and not source.startswith("data:") else None)
        label = label or f"image {len(self.sources) + 1}"
        try:
            self.prepared(label, source)
        except Exception as e:
            self._on_error(one_line(e))
            return False
        self.sources.append((label, source))
        if clear_url:
            self.url.value = ""
        self._on_change()
        return True

    def add_current_figure(self) -> bool:
        """Add a snapshot of the open matplotlib figure, else of the last image the notebook showed."""
        fig = current_figure()
        if fig is not None:
            return self.add(figure_png(fig, "current figure"), "current figure")
        shown = current().last_shown
        if shown is not None:
            return self.add(shown[1], "last image shown")
        self._on_error("no open figure and no image shown yet: draw a plot first (or %load_ext vision_magic)")
        return False

    def remove(self, index: int) -> None:
        """Take the ``index``-th source out."""
        del self.sources[index]
        self._on_change()

    def _on_upload(self, change: dict[str, Any]) -> None:
        for f in change["new"] or ():
            self.add(bytes(f["content"]), f.get("name") or "upload")

    def prepared(self, label: str, source: Any) -> list[Any]:
        """The images of one source, remembered per ``key()`` (the panel's model and detail), so a URL is not
        downloaded again and a large file not decoded again on every redraw."""
        key = self._key()
        hit = self._memo.get(id(source))
        if hit is not None and hit[0] is source and hit[1] == (key, label):
            return hit[2]
        images = self._prepare_one(label, source)
        self._memo[id(source)] = (source, (key, label), images)  # holding `source` keeps its id unique
        return images

    def redraw(self) -> None:
        """Prepare every source for the current ``key()`` and draw the thumbnails."""
        self.images = []
        live = {id(src) for _, src in self.sources}
        self._memo = {k: v for k, v in self._memo.items() if k in live}
        boxes = []
        for i, (label, source) in enumerate(self.sources):
            try:
                images = self.prepared(label, source)
            except Exception as e:
                self._on_error(one_line(e))
                images = []
            self.images.extend(images)
            remove = widgets.Button(
                description="✕", tooltip=f"Remove {redact(label)}", layout=widgets.Layout(width="2.5em")
            )
            remove.on_click(lambda _, i=i: self.remove(i))
            boxes += [_tile(img, label, remove) for img in images or [None]]
        self.thumbnails.children = boxes


def _tile(img: Any, label: str, remove: widgets.Button) -> widgets.VBox:
    png = thumbnail(img.data if img is not None else None, 96, "PNG")
    pic: widgets.Widget = (
        widgets.Image(value=png, format="png", layout=widgets.Layout(max_height="96px"))
        if png
        else widgets.HTML("<i>link</i>" if img is not None else "<i>unusable</i>")
    )
    name = img.source if img is not None else redact(label)
    tokens = f" · {img.tokens} tok" if img is not None and img.tokens is not None else ""
    caption = widgets.HTML(f"<small>{html.escape(str(name))}{tokens}</small>")
    return widgets.VBox([pic, widgets.HBox([caption, remove])])
