"""The one path every front end takes: prepare images, build the request, send, show, return an Answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import last_image
from .answer import Answer
from .config import VisionMagic, settings
from .convert import ImageOptions, PreparedImage, prepare_bytes
from .errors import SourceError, SourceErrors, VisionMagicError
from .profiles import ModelProfile, cost, profile_for
from .sources import prepare_sources

last_answer: Answer | None = None

DEFAULT_PROMPT = "Describe this image."
DEFAULT_PROMPT_MANY = "Describe these images."


@dataclass
class Question:
    """Everything about one request before it is sent (what a dry run shows)."""

    prompt: str
    images: list[PreparedImage]
    model: str
    profile: ModelProfile
    body: dict[str, Any]
    base_url: str
    cfg: VisionMagic
    notes: list[str] = field(default_factory=list)
    structured: bool = False  # parse the answer as JSON into Answer.data
    schema: Any = None  # pydantic model or JSON schema for structured outputs
    endpoint: Any = None  # vision_magic.endpoints.Endpoint

    @property
    def image_tokens(self) -> int:
        return sum(img.tokens or 0 for img in self.images)


def image_options(
    cfg: VisionMagic,
    model: str | None,
    detail: str | None,
    resize: bool | None,
    *,
    profiles: dict[str, Any] | None = None,
    webp: bool = True,
) -> tuple[str, str, ModelProfile, ImageOptions]:
    """The model, detail, profile and image options in force (arguments over ``%config`` defaults).

    Raises a one-line error for ``detail="original"`` on a model family that has no such level.
    """
    model = model or cfg.model
    detail = (detail or cfg.detail).lower()
    profile = profile_for(model, cfg.profiles if profiles is None else profiles)
    if detail == "original" and not profile.has_original:
        raise VisionMagicError(
            f"detail 'original' is not available for {model}: use auto, low or high "
            "(or add original_budget to its profile in %config VisionMagic.profiles)"
        )
    options = ImageOptions(
        profile=profile,
        detail=detail,
        resize=cfg.resize if resize is None else resize,
        jpeg_quality=cfg.jpeg_quality,
        webp=webp,
    )
    return model, detail, profile, options


def _no_source_images(options: ImageOptions) -> list[PreparedImage]:
    """The most recent image the notebook showed, or the open matplotlib figure."""
    from .sources import prepare_figure

    shown = last_image.latest()
    if shown is not None:
        return [prepare_bytes(shown[1], shown[0], options)]
    fig = last_image.current_figure()
    if fig is not None:
        return [prepare_figure(fig, "the current matplotlib figure", options)]
    raise SourceErrors(
        [
            SourceError(
                "(no source)",
                "no image given and none shown yet: name a file, URL or variable after %%ask_image, "
                "or display an image (e.g. a plot) first",
            )
        ]
    )


def prepare_question(
    prompt: str,
    sources: tuple[Any, ...] | list[Any],
    *,
    model: str | None = None,
    detail: str | None = None,
    stream: bool | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    resize: bool | None = None,
    labels: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    cfg: VisionMagic | None = None,
    history: list[dict[str, Any]] | None = None,
    schema: Any = None,
    json_mode: bool = False,
) -> Question:
    """Resolve settings and sources into a ready request; raises one line per problem, sending nothing."""
    from .client import build_messages, build_request, resolve_base_url

    cfg = cfg or settings()
    from . import endpoints, structured
    from .cache import remember_prepared

    base_url = resolve_base_url(cfg)
    endpoint = endpoints.endpoint_for(base_url, cfg.endpoints)
    model, detail, profile, options = image_options(cfg, model, detail, resize, webp=endpoint.webp)
    link_handler = endpoints.link_handler(endpoint, options)
    if sources:
        images = remember_prepared(
            sources,
            options,
            labels,
            lambda: prepare_sources(sources, options, labels=labels, link_handler=link_handler),
        )
    elif history:
        images = []  # a follow-up's images are in the history
    else:
        images = _no_source_images(options)
    prompt = (prompt or "").strip() or (DEFAULT_PROMPT if len(images) == 1 else DEFAULT_PROMPT_MANY)
    response_format = structured.response_format(schema, json_mode)
    if response_format is not None:
        extra = {**(extra or {}), "response_format": response_format}
    messages = build_messages(
        structured.json_prompt(prompt) if json_mode and schema is None else prompt,
        [img.part() for img in images],
        cfg.system if system is None else system,
    )
    # Earlier turns of a chat go between the system message and this question.
    messages[-1:-1] = list(history or [])
    body = build_request(
        messages,
        model=model,
        base_url=base_url,
        max_tokens=cfg.max_tokens if max_tokens is None else max_tokens,
        temperature=cfg.temperature if temperature is None else temperature,
        seed=seed,
        stream=cfg.stream if stream is None else stream,
        extra=extra,
    )
    if not endpoint.detail:
        endpoints.strip_detail(body)
    notes = [] if profile.known else [f"{model} is not in the model table: token counts use gpt-4o's rule"]
    return Question(
        prompt,
        images,
        model,
        profile,
        body,
        base_url,
        cfg,
        notes,
        response_format is not None,
        schema,
        endpoint,
    )


def ask(
    prompt: str,
    *sources: Any,
    model: str | None = None,
    detail: str | None = None,
    stream: bool | None = None,
    display: bool = True,
    dry_run: bool | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    resize: bool | None = None,
    labels: list[str] | None = None,
    cache: bool | None = None,
    refresh: bool = False,
    schema: Any = None,
    json_mode: bool = False,
    history: list[dict[str, Any]] | None = None,
) -> Answer:
    """Ask ``model`` about images; stream the answer as Markdown into the notebook; return an :class:`Answer`.

    Sources are anything :func:`vision_magic.content_parts` takes; with none, the last image the notebook
    showed is used. Unset options come from ``%config VisionMagic``.

    An identical question asked before is replayed from the persistent cache (marked as replayed, nothing
    sent) unless ``cache=False`` (bypass) or ``refresh=True`` (ask again and store the new answer).
    ``json_mode=True`` or ``schema=`` (a pydantic model or JSON schema) put the parsed answer in
    ``Answer.data``; ``history`` (earlier messages) is sent before the question, see :func:`vision_magic.chat`.

    Examples
    --------
    >>> import vision_magic
    >>> a = vision_magic.ask("What is in the image?", "photo.jpg", detail="low")  # doctest: +SKIP
    >>> a.text, a.usage  # doctest: +SKIP
    ('A cat on a sofa.', {'prompt_tokens': 95, 'completion_tokens': 7, 'total_tokens': 102})
    """
    global last_answer
    q = prepare_question(
        prompt,
        sources,
        model=model,
        detail=detail,
        stream=stream,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        resize=resize,
        labels=labels,
        history=history,
        schema=schema,
        json_mode=json_mode,
    )
    answer = Answer(
        model=q.model,
        images=q.images,
        prompt=q.prompt,
        request=q.body,
        estimated_tokens=q.image_tokens,
    )
    if q.cfg.dry_run if dry_run is None else dry_run:
        answer.dry_run = True
        if display:
            from .render import show_dry_run

            show_dry_run(answer, " ".join(q.notes))
        last_answer = answer
        return answer
    return send(q, answer, display=display, cache=cache, refresh=refresh)


def send(
    q: Question,
    answer: Answer,
    *,
    display: bool = True,
    publish: Any = None,
    cache: bool | None = None,
    refresh: bool = False,
) -> Answer:
    """Send a prepared question, streaming into one updating display when ``display``.

    ``publish(bundle, update)`` renders the display somewhere else (the ask panel's output widget).
    A cached answer to the identical request is shown at once instead (see :mod:`vision_magic.cache`).
    """
    global last_answer
    from . import cache as replay
    from .client import run
    from .endpoints import make_client

    key = replay.key_for(q) if (q.cfg.cache if cache is None else cache) else None
    if key is not None and not refresh and replay.replay(key, q, answer, display=display, publish=publish):
        last_answer = answer
        return answer
    # Raises the one-line "No API key" before anything is shown.
    client = make_client(q.cfg, q.endpoint or q.base_url)
    view = None
    if display:
        from .render import StreamingDisplay

        view = StreamingDisplay(interval=q.cfg.render_interval, publish=publish)
        view.start()
    try:
        run(client, q.body, answer, on_text=view.update if view else None)
    except BaseException:
        # Whatever arrived stays visible, marked as cut off; then the error (or interrupt) goes on up.
        answer.incomplete = True
        if view is not None:
            view.finish(answer)
        last_answer = answer
        raise
    finally:
        answer.cost = cost(answer.tokens_in or 0, answer.tokens_out or 0, q.profile) if answer.usage else None
    replay.finish(key, q, answer)
    if view is not None:
        view.finish(answer)
    last_answer = answer
    return answer
