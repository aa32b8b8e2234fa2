"""The ask panel: an ipywidgets front end over the same ask path as the magic.

A :class:`SourceList` holds the images (upload, URL/path field, "current figure", thumbnails); a prompt box,
model and detail pickers and a live token/cost estimate sit above Ask and Stop. The answer streams as Markdown
into the panel's own ``Output`` widget from a background thread, so the kernel stays free (and Stop can be
clicked) while it arrives.
"""

from __future__ import annotations

import dataclasses
import html
import threading
from typing import Any

import ipywidgets as widgets

from ..engine.answer import Answer
from ..engine.options import AskOptions, with_option_keywords
from ..engine.record import record_of
from ..engine.session import current
from ..errors import one_line
from ..images.profiles import DETAILS, PROFILES
from .render import NotebookView, finished_bundle, record_metadata
from .source_list import SourceList

_NO_IMAGES = "add an image first: upload files, paste a URL or path, or click “current figure”"


class _Stopped(KeyboardInterrupt):
    """Raised inside the stream's render callback when Stop was clicked: ends the stream like an interrupt."""


class AskPanel(widgets.VBox):
    """The widget :func:`ask_panel` returns; its parts are attributes, so code and tests can drive it.

    Attributes
    ----------
    source_list : the :class:`SourceList` (``sources``, ``upload``, ``url``, ``add_url``, ``figure_button``
        and ``thumbnails`` are also reachable on the panel).
    prompt, model, detail, estimate, ask_button, stop_button, status, output : the widgets.
    options : the :class:`AskOptions` every question of this panel starts from (model and detail come from
        the pickers).
    answer : the last :class:`~vision_magic.Answer` (None before the first Ask).
    """

    def __init__(
        self,
        sources: tuple[Any, ...] = (),
        prompt: str = "",
        options: AskOptions | None = None,
    ) -> None:
        cfg = current().settings
        self.options = options or AskOptions()
        self.answer: Answer | None = None
        self._asked: Any = None  # the question of the last Ask (a stopped answer's record)
        self._thread: threading.Thread | None = None
        self._run = 0  # id of the current request; output from an older (stopped) one is dropped
        self._stop = threading.Event()  # the current request's stop flag (each request gets its own)
        self._lock = threading.Lock()

        self.source_list = SourceList(self._prepare_one, self._picks, self._error, self.refresh)
        self.prompt = widgets.Textarea(
            value=prompt,
            placeholder="Ask about the images…",
            layout=widgets.Layout(width="100%", height="5em"),
        )
        current_model = self.options.model or cfg.model
        self.model = widgets.Combobox(
            value=current_model,
            options=sorted({*PROFILES, current_model}),
            description="Model",
            ensure_option=False,
            continuous_update=False,
        )
        self.detail = widgets.Dropdown(
            options=list(DETAILS), value=(self.options.detail or cfg.detail).lower(), description="Detail"
        )
        self.estimate = widgets.HTML()
        self.ask_button = widgets.Button(description="Ask", button_style="primary", icon="paper-plane")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(border="1px solid #ddd", padding="4px"))

        self.model.observe(lambda _: self.refresh(), names="value")
        self.detail.observe(lambda _: self.refresh(), names="value")
        self.prompt.observe(lambda _: self._show_estimate(), names="value")
        self.ask_button.on_click(lambda _: self.ask())
        self.stop_button.on_click(lambda _: self.stop())

        super().__init__(
            [
                self.source_list,
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
            self.source_list.sources.append((label, src))
        self.refresh()

    # -- the source list's parts, reachable on the panel ------------------------------------------------

    sources = property(lambda self: self.source_list.sources, doc="``(label, source)`` pairs in play.")
    thumbnails = property(lambda self: self.source_list.thumbnails)
    upload = property(lambda self: self.source_list.upload)
    url = property(lambda self: self.source_list.url)
    add_url = property(lambda self: self.source_list.add_url)
    figure_button = property(lambda self: self.source_list.figure_button)

    def add_source(self, source: Any, label: str | None = None) -> bool:
        """Add an image (URL, path, bytes, figure, PIL image, ...); a bad one shows its error and is left out.

        Examples
        --------
        >>> panel = ask_panel()                             # doctest: +SKIP
        >>> panel.add_source("images/chart.png")            # doctest: +SKIP
        True
        """
        return self.source_list.add(source, label)

    def add_current_figure(self) -> bool:
        """Add a snapshot of the open matplotlib figure, else of the last image the notebook showed."""
        return self.source_list.add_current_figure()

    def remove_source(self, index: int) -> None:
        """Take the ``index``-th image out of the question."""
        self.source_list.remove(index)

    # -- questions ------------------------------------------------------------------------------------

    def _picks(self) -> tuple[str, str]:
        return (self.model.value.strip(), self.detail.value)

    def _options(self) -> AskOptions:
        return self.options.replace(model=self.model.value.strip() or None, detail=self.detail.value)

    def _question(self, pairs: list[tuple[str, Any]]) -> Any:
        from ..engine.question import build_question

        return build_question(
            self.prompt.value,
            [src for _, src in pairs],
            self._options(),
            labels=[label for label, _ in pairs],
        )

    def _prepare_one(self, label: str, source: Any) -> list[Any]:
        return self._question([(label, source)]).images

    def refresh(self) -> None:
        """Re-prepare the images for the current model and detail; redraw thumbnails and the estimate."""
        self.status.value = ""
        self.source_list.redraw()
        self._show_estimate()

    @property
    def image_tokens(self) -> int:
        """Estimated image tokens of the current selection for the chosen model and detail."""
        return sum(img.tokens or 0 for img in self.source_list.images)

    def current_estimate(self) -> Any:
        """The :class:`vision_magic.Estimate` of the current selection and prompt (images as prepared for
        the chosen model and detail; the same numbers ``vision_magic.estimate`` and ``--cost`` give)."""
        from ..engine.estimate import from_prepared
        from ..images.profiles import profile_for

        cfg = current().settings
        options = self._options().resolved(cfg)
        profile = profile_for(options.model, cfg.profiles)
        return from_prepared(self.source_list.images, options, profile, self.prompt.value)

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

    def _show(self, bundle: dict[str, str], metadata: dict[str, Any] | None = None) -> None:
        """Draw ``bundle`` as the panel's one output; ``metadata`` (the answer's record) is saved with it."""
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": metadata or {}},)

    def ask(self, wait: bool = False) -> Answer | None:
        """What the Ask button does: send the question; the answer streams into the panel.

        Returns the :class:`Answer` being filled at once (the request runs in a thread), or when it is
        complete with ``wait=True``; None when nothing was sent (the reason is shown in the panel) or a
        request is already running.
        """
        from ..engine.finish import new_answer
        from ..engine.run import answer_question

        if self.ask_button.disabled:
            return None
        self.status.value = ""
        if not self.sources:
            self._error(_NO_IMAGES)
            return None
        try:
            q = self._question(self.sources)
        except Exception as e:
            self._error(one_line(e))
            return None
        self.answer = answer = new_answer(q)
        self._asked = q
        if q.options.dry_run:
            return answer_question(
                q, NotebookView(publish=lambda bundle, _, md: self._show(bundle, md)), answer
            )
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
        from ..engine.run import answer_question

        raised = []

        def publish(bundle: dict[str, str], update: bool, metadata: dict[str, Any]) -> None:
            with self._lock:  # never draw over what stop() has drawn
                if stop.is_set():
                    if not raised:  # end the stream (run() closes it) like an interrupt, once
                        raised.append(True)
                        raise _Stopped
                    return  # the panel already shows what arrived
                self._show(bundle, metadata)

        try:
            answer_question(q, NotebookView(publish=publish), answer)
        except _Stopped:
            pass
        except Exception as e:
            if run_id == self._run:
                self._error(one_line(e))
                if not answer.text:
                    self.output.outputs = ()
        finally:
            with self._lock:
                if run_id == self._run:
                    self.ask_button.disabled = False
                    self.stop_button.disabled = True

    def stop(self) -> None:
        """What the Stop button does: end the stream now and keep what arrived."""
        with self._lock:
            if self.stop_button.disabled:
                return
            self._stop.set()
            self._run += 1  # the thread's later output is dropped; it closes its stream at the next chunk
            if self.answer is not None:
                # A copy: the request's thread may append a last chunk to the original before its stream closes.
                kept = dataclasses.replace(
                    self.answer, text=self.answer.text, incomplete=True, error="stopped"
                )
                if self._asked is not None:
                    kept.record = record_of(self._asked, kept)
                self.answer = kept
                self._show(finished_bundle(kept), record_metadata(kept))
            self.ask_button.disabled = False
            self.stop_button.disabled = True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running request (if any) has finished."""
        if self._thread is not None:
            self._thread.join(timeout)


@with_option_keywords
def ask_panel(*sources: Any, prompt: str = "", **options: Any) -> AskPanel:
    """A widget to ask a vision model about images: thumbnails, upload, URL, current figure, prompt, model
    and detail pickers, a live token estimate, Ask and Stop, and the answer streaming as Markdown.

    Parameters
    ----------
    *sources : images to start with (anything :func:`vision_magic.ask` takes: paths, URLs, figures, ...).
    prompt : the question pre-filled in the prompt box.
    **options : :func:`vision_magic.ask`'s options for every question of the panel; ``model`` and ``detail``
        are the pickers' initial values (default: ``%config VisionMagic.model`` / ``.detail``).

    Examples
    --------
    >>> from vision_magic import ask_panel
    >>> panel = ask_panel("images/chart.png", prompt="What trend does this show?")  # doctest: +SKIP
    >>> panel                                       # shows the panel in a notebook  # doctest: +SKIP
    >>> panel.ask(wait=True).text                   # what clicking Ask does          # doctest: +SKIP
    'The values grow quadratically.'
    """
    return AskPanel(sources, prompt=prompt, options=AskOptions.from_kwargs(**options))
