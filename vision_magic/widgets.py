"""The ask panel: an ipywidgets front end over the same ``prepare_question`` + ``send`` path as the magic.

Images come from the sources given, an upload button, a URL/path field and a "current figure" button; a prompt
box, model and detail pickers and a live token/cost estimate sit above Ask and Stop. The answer streams as
Markdown into the panel's own ``Output`` widget from a background thread, so the kernel stays free (and Stop
can be clicked) while it arrives.
"""

from __future__ import annotations

import dataclasses
import html
import io
import threading
from typing import Any

import ipywidgets as widgets

from . import last_image
from .answer import Answer
from .errors import VisionMagicError, redact
from .profiles import DETAILS, PROFILES, profile_for

_NO_IMAGES = "add an image first: upload files, paste a URL or path, or click “current figure”"


class _Stopped(KeyboardInterrupt):
    """Raised inside the stream's render callback when Stop was clicked: ends the stream like an interrupt."""


def _one_line(e: BaseException) -> str:
    text = str(e) if isinstance(e, VisionMagicError) else redact(f"{type(e).__name__}: {e}")
    return " ".join(text.split()) or type(e).__name__


def _thumbnail_png(data: bytes | None, side: int = 96) -> bytes | None:
    if not data:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((side, side))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "PNG")
            return buf.getvalue()
    except Exception:
        return None


def _figure_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


class AskPanel(widgets.VBox):
    """The widget :func:`ask_panel` returns; its parts are attributes, so code and tests can drive it.

    Attributes
    ----------
    sources : list of ``(label, source)`` pairs in play (anything :func:`vision_magic.ask` takes).
    upload, url, add_url, figure_button, prompt, model, detail, estimate, ask_button, stop_button,
    status, output, thumbnails : the widgets.
    answer : the last :class:`~vision_magic.Answer` (None before the first Ask).
    """

    def __init__(
        self,
        sources: tuple[Any, ...] = (),
        prompt: str = "",
        model: str | None = None,
        detail: str | None = None,
    ) -> None:
        from .config import settings

        cfg = settings()
        self.sources: list[tuple[str, Any]] = []
        self.answer: Answer | None = None
        self._images: list[Any] = []
        self._memo: dict[int, tuple[Any, tuple[str, str, str], list[Any]]] = {}
        self._thread: threading.Thread | None = None
        self._run = 0  # id of the current request; output from an older (stopped) one is dropped
        self._stop = threading.Event()  # the current request's stop flag (each request gets its own)
        self._lock = threading.Lock()

        self.thumbnails = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload")
        self.url = widgets.Text(placeholder="https://… or a file path", layout=widgets.Layout(width="22em"))
        self.add_url = widgets.Button(description="Add", tooltip="Add the URL or path")
        self.figure_button = widgets.Button(
            description="Current figure",
            icon="bar-chart",
            tooltip="Add the open plot (or the last image shown)",
        )
        self.prompt = widgets.Textarea(
            value=prompt,
            placeholder="Ask about the images…",
            layout=widgets.Layout(width="100%", height="5em"),
        )
        current = model or cfg.model
        self.model = widgets.Combobox(
            value=current,
            options=sorted({*PROFILES, current}),
            description="Model",
            ensure_option=False,
            continuous_update=False,
        )
        self.detail = widgets.Dropdown(
            options=list(DETAILS), value=(detail or cfg.detail).lower(), description="Detail"
        )
        self.estimate = widgets.HTML()
        self.ask_button = widgets.Button(description="Ask", button_style="primary", icon="paper-plane")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(border="1px solid #ddd", padding="4px"))

        self.upload.observe(self._on_upload, names="value")
        self.add_url.on_click(lambda _: self.add_source(self.url.value.strip(), clear_url=True))
        self.figure_button.on_click(lambda _: self.add_current_figure())
        self.model.observe(lambda _: self.refresh(), names="value")
        self.detail.observe(lambda _: self.refresh(), names="value")
        self.prompt.observe(lambda _: self._show_estimate(), names="value")
        self.ask_button.on_click(lambda _: self.ask())
        self.stop_button.on_click(lambda _: self.stop())

        super().__init__(
            [
                self.thumbnails,
                widgets.HBox([self.upload, self.url, self.add_url, self.figure_button]),
                self.prompt,
                widgets.HBox([self.model, self.detail]),
                self.estimate,
                widgets.HBox([self.ask_button, self.stop_button]),
                self.status,
                self.output,
            ]
        )
        self.add_class("vision-magic-panel")
        for i, src in enumerate(sources):
            label = src if isinstance(src, str) and not src.startswith("data:") else f"image {i + 1}"
            self.sources.append((label, src))
        self.refresh()

    # -- images ---------------------------------------------------------------------------------------

    def add_source(self, source: Any, label: str | None = None, *, clear_url: bool = False) -> bool:
        """Add an image (URL, path, bytes, figure, PIL image, ...); a bad one shows its error and is left out.

        Examples
        --------
        >>> panel = ask_panel()                             # doctest: +SKIP
        >>> panel.add_source("images/chart.png")            # doctest: +SKIP
        True
        """
        if source is None or (isinstance(source, str) and not source):
            self._error("type a URL or a file path first")
            return False
        label = label or (source if isinstance(source, str) and not source.startswith("data:") else None)
        label = label or f"image {len(self.sources) + 1}"
        try:
            self._prepared(label, source)
        except Exception as e:
            self._error(_one_line(e))
            return False
        self.sources.append((label, source))
        if clear_url:
            self.url.value = ""
        self.refresh()
        return True

    def add_current_figure(self) -> bool:
        """Add a snapshot of the open matplotlib figure, else of the last image the notebook showed."""
        fig = last_image.current_figure()
        if fig is not None:
            return self.add_source(_figure_bytes(fig), "current figure")
        shown = last_image.latest()
        if shown is not None:
            return self.add_source(shown[1], "last image shown")
        self._error("no open figure and no image shown yet: draw a plot first (or %load_ext vision_magic)")
        return False

    def remove_source(self, index: int) -> None:
        """Take the ``index``-th image out of the question."""
        del self.sources[index]
        self.refresh()

    def _on_upload(self, change: dict[str, Any]) -> None:
        for f in change["new"] or ():
            self.add_source(bytes(f["content"]), f.get("name") or "upload")

    def _prepare(self, pairs: list[tuple[str, Any]]) -> Any:
        from .asking import prepare_question

        return prepare_question(
            self.prompt.value,
            [src for _, src in pairs],
            model=self.model.value.strip() or None,
            detail=self.detail.value,
            labels=[label for label, _ in pairs],
        )

    def _prepared(self, label: str, source: Any) -> list[Any]:
        """The images of one source for the current model and detail; remembered, so a URL is not
        downloaded again and a large file not decoded again on every redraw."""
        key = (self.model.value.strip(), self.detail.value, label)
        hit = self._memo.get(id(source))
        if hit is not None and hit[0] is source and hit[1] == key:
            return hit[2]
        images = self._prepare([(label, source)]).images
        self._memo[id(source)] = (source, key, images)  # holding `source` keeps its id unique
        return images

    def refresh(self) -> None:
        """Re-prepare the images for the current model and detail; redraw thumbnails and the estimate."""
        self._images = []
        self.status.value = ""
        live = {id(src) for _, src in self.sources}
        self._memo = {k: v for k, v in self._memo.items() if k in live}
        boxes = []
        for i, (label, source) in enumerate(self.sources):
            try:
                images = self._prepared(label, source)
            except Exception as e:
                self._error(_one_line(e))
                images = []
            self._images.extend(images)
            remove = widgets.Button(
                description="✕", tooltip=f"Remove {label}", layout=widgets.Layout(width="2.5em")
            )
            remove.on_click(lambda _, i=i: self.remove_source(i))
            for img in images or [None]:
                png = _thumbnail_png(img.data if img else None)
                pic: widgets.Widget = (
                    widgets.Image(value=png, format="png", layout=widgets.Layout(max_height="96px"))
                    if png
                    else widgets.HTML("<i>link</i>" if img else "<i>unusable</i>")
                )
                name = img.source if img is not None else label
                tokens = f" · {img.tokens} tok" if img is not None and img.tokens is not None else ""
                caption = widgets.HTML(f"<small>{html.escape(str(name))}{tokens}</small>")
                boxes.append(widgets.VBox([pic, widgets.HBox([caption, remove])]))
        self.thumbnails.children = boxes
        self._show_estimate()

    @property
    def image_tokens(self) -> int:
        """Estimated image tokens of the current selection for the chosen model and detail."""
        return sum(img.tokens or 0 for img in self._images)

    def current_estimate(self) -> Any:
        """The :class:`vision_magic.Estimate` of the current selection and prompt (images as prepared for
        the chosen model and detail; the same numbers ``vision_magic.estimate`` and ``--cost`` give)."""
        from .config import settings
        from .estimates import _MESSAGE_OVERHEAD, Estimate, ImageEstimate, text_tokens

        cfg = settings()
        model = self.model.value.strip() or cfg.model
        return Estimate(
            model,
            self.detail.value,
            profile_for(model, cfg.profiles),
            [ImageEstimate.from_prepared(img) for img in self._images],
            text_tokens(self.prompt.value + (cfg.system or "")) + _MESSAGE_OVERHEAD,
        )

    def _show_estimate(self) -> None:
        if not self.sources:
            self.estimate.value = f"<small>{html.escape(_NO_IMAGES)}</small>"
            return
        est = self.current_estimate()
        price = f" · ≈ ${est.cost:.4f} in" if est.cost is not None else ""
        n = len(est.images)
        self.estimate.value = (
            f"<small>{n} image{'s' if n != 1 else ''} · ~{est.image_tokens:,} image tokens · "
            f"~{est.input_tokens:,} tokens in{price}</small>"
        )

    # -- asking ---------------------------------------------------------------------------------------

    def _error(self, message: str) -> None:
        self.status.value = f"<span style='color:#b00020'>⚠ {html.escape(message)}</span>"

    def _show(self, bundle: dict[str, str]) -> None:
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    def ask(self, wait: bool = False) -> Answer | None:
        """What the Ask button does: send the question; the answer streams into the panel.

        Returns the :class:`Answer` being filled at once (the request runs in a thread), or when it is
        complete with ``wait=True``; None when nothing was sent (the reason is shown in the panel) or a
        request is already running.
        """
        if self.ask_button.disabled:
            return None
        self.status.value = ""
        if not self.sources:
            self._error(_NO_IMAGES)
            return None
        try:
            q = self._prepare(self.sources)
        except Exception as e:
            self._error(_one_line(e))
            return None
        answer = Answer(model=q.model, images=q.images, prompt=q.prompt, request=q.body)
        answer.estimated_tokens = q.image_tokens
        self.answer = answer
        if q.cfg.dry_run:
            from .render import dry_run_bundle

            answer.dry_run = True
            self._show(dry_run_bundle(answer, " ".join(q.notes)))
            return answer
        with self._lock:
            self._run += 1
            run_id = self._run
            self._stop = threading.Event()
        self.ask_button.disabled = True
        self.stop_button.disabled = False
        self._thread = threading.Thread(
            target=self._request, args=(q, answer, run_id, self._stop), name="vision-magic-ask", daemon=True
        )
        self._thread.start()
        if wait:
            self.wait()
        return answer

    def _request(self, q: Any, answer: Answer, run_id: int, stop: threading.Event) -> None:
        from .asking import send

        raised = []

        def publish(bundle: dict[str, str], update: bool) -> None:
            with self._lock:  # never draw over what stop() has drawn
                if stop.is_set():
                    if not raised:  # end the stream (run() closes it) like an interrupt, once
                        raised.append(True)
                        raise _Stopped
                    return  # the panel already shows what arrived
                self._show(bundle)

        try:
            send(q, answer, display=True, publish=publish)
        except _Stopped:
            pass
        except Exception as e:
            if run_id == self._run:
                self._error(_one_line(e))
                if not answer.text:
                    self.output.outputs = ()
        finally:
            with self._lock:
                if run_id == self._run:
                    self.ask_button.disabled = False
                    self.stop_button.disabled = True

    def _finish_stopped(self, answer: Answer, answer_bundle: Any) -> None:
        # A copy: the request's thread may append a last chunk to the original before its stream closes.
        kept = dataclasses.replace(answer, text=answer.text, incomplete=True, error="stopped")
        self.answer = kept
        self._show(answer_bundle(kept.text, kept.footer()))

    def stop(self) -> None:
        """What the Stop button does: end the stream now and keep what arrived."""
        from .render import answer_bundle

        with self._lock:
            if self.stop_button.disabled:
                return
            self._stop.set()
            self._run += 1  # the thread's later output is dropped; it closes its stream at the next chunk
            if self.answer is not None:
                self._finish_stopped(self.answer, answer_bundle)
            self.ask_button.disabled = False
            self.stop_button.disabled = True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running request (if any) has finished."""
        if self._thread is not None:
            self._thread.join(timeout)


def ask_panel(
    *sources: Any, prompt: str = "", model: str | None = None, detail: str | None = None
) -> AskPanel:
    """A widget to ask a vision model about images: thumbnails, upload, URL, current figure, prompt, model
    and detail pickers, a live token estimate, Ask and Stop, and the answer streaming as Markdown.

    Parameters
    ----------
    *sources : images to start with (anything :func:`vision_magic.ask` takes: paths, URLs, figures, ...).
    prompt : the question pre-filled in the prompt box.
    model, detail : the initial picks (default: ``%config VisionMagic.model`` / ``.detail``).

    Examples
    --------
    >>> from vision_magic import ask_panel
    >>> panel = ask_panel("images/chart.png", prompt="What trend does this show?")  # doctest: +SKIP
    >>> panel                                       # shows the panel in a notebook  # doctest: +SKIP
    >>> panel.ask(wait=True).text                   # what clicking Ask does          # doctest: +SKIP
    'The values grow quadratically.'
    """
    return AskPanel(sources, prompt=prompt, model=model, detail=detail)
