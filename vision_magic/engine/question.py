"""A question before it is sent: resolved options, prepared images and the request body.

:func:`build_question` is where a front end's :class:`AskOptions` meet ``%config`` defaults, the endpoint in
force and the sources; nothing here sends anything, so a dry run shows exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SourceError, SourceErrors, VisionMagicError, warn
from ..images.encode import ImageOptions, PreparedImage
from ..images.memo import remember_prepared
from ..images.profiles import ModelProfile, profile_for
from ..images.regions import max_tiles_of, parse_crop
from ..images.resolve import prepare_sources
from ..images.zoom import zoom_summary
from . import structured
from .config import VisionMagic
from .endpoints import Endpoint, endpoint_in_force, link_handler
from .options import AskOptions
from .outputs import is_reference, with_references
from .session import current
from .wire import build_messages, build_request

MANY_IMAGES = 50  # more images than this in one request: say so before sending
DEFAULT_PROMPT = "Describe this image."
DEFAULT_PROMPT_MANY = "Describe these images."


@dataclass
class Question:
    """Everything about one request before it is sent (what a dry run shows).

    ``options`` are resolved (every ``%config`` default filled in); ``body`` is the exact request body.
    """

    prompt: str
    images: list[PreparedImage]
    options: AskOptions
    profile: ModelProfile
    body: dict[str, Any]
    endpoint: Endpoint
    cfg: VisionMagic
    notes: list[str] = field(default_factory=list)
    replay_key: str | None = None  # filled once by vision_magic.engine.record.request_key

    @property
    def model(self) -> str:
        return self.options.model or ""

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def structured(self) -> bool:
        """True when the answer is parsed as JSON into ``Answer.data`` (JSON mode or a schema)."""
        return self.options.json_mode or self.options.schema is not None

    @property
    def image_tokens(self) -> int:
        return sum(img.tokens or 0 for img in self.images)


def image_options(
    options: AskOptions,
    cfg: VisionMagic,
    *,
    profiles: dict[str, Any] | None = None,
    formats: tuple[str, ...] | None = None,
    webp: bool | None = None,
) -> tuple[ModelProfile, ImageOptions]:
    """The model profile and image options for resolved ``options``; ``formats`` are the MIME types the
    server decodes (None: every format the API takes; ``webp=False``, the older way to say it: all but WEBP).

    Raises a one-line error for ``detail="original"`` on a model family that has no such level, for a crop
    that is not four numbers and for a zoom that is not True or a number of tiles.

    Examples
    --------
    >>> from vision_magic.engine.config import VisionMagic
    >>> image_options(AskOptions(crop="0,0,0.5,0.5", zoom=True), VisionMagic(model="gpt-4o"))[1].zoom
    12
    """
    model = options.model or cfg.model
    detail = options.detail or cfg.detail
    profile = profile_for(model, cfg.profiles if profiles is None else profiles)
    if detail == "original" and not profile.has_original:
        raise VisionMagicError(
            f"detail 'original' is not available for {model}: use auto, low or high "
            "(or add original_budget to its profile in %config VisionMagic.profiles)"
        )
    if formats is None and webp is not None:
        formats = ("image/png", "image/jpeg", "image/gif") + (("image/webp",) if webp else ())
    image = ImageOptions(
        profile=profile,
        detail=detail,
        resize=cfg.resize if options.resize is None else options.resize,
        jpeg_quality=cfg.jpeg_quality,
        crop=None if options.crop is None else parse_crop(options.crop),
        zoom=max_tiles_of(options.zoom),
        **({} if formats is None else {"webp": "image/webp" in formats, "formats": tuple(formats)}),
    )
    return profile, image


def resolve_references(sources: tuple[Any, ...] | list[Any]) -> tuple[Any, ...] | list[Any]:
    """``sources`` with each reference to an earlier output (``@N``, ``@N:K``, ``@-1``) replaced by the images
    it names, labelled ``@N:K`` (see :mod:`vision_magic.engine.outputs`); unchanged when there is none.

    Examples
    --------
    >>> resolve_references(["cat.png"])
    ['cat.png']
    >>> resolve_references(["@1"])[0].error.reason
    'cell [1] has not run yet; no cell has shown an image yet'
    """
    if not any(is_reference(src) for src in sources):
        return sources
    return with_references(sources, current().output_store())


def default_images(options: ImageOptions) -> list[PreparedImage]:
    """With no sources: the most recent image the notebook showed, or the open matplotlib figure."""
    from ..images.figures import current_figure

    shown = current().last_shown
    if shown is not None:
        return prepare_sources([shown[1]], options, labels=[shown[0]])
    fig = current_figure()
    if fig is not None:
        return prepare_sources([fig], options, labels=["the current matplotlib figure"])
    raise SourceErrors(
        [
            SourceError(
                "(no source)",
                "no image given and none shown yet: name a file, URL or variable after %%ask_image, "
                "or display an image (e.g. a plot) first",
            )
        ]
    )


def build_question(
    prompt: str,
    sources: tuple[Any, ...] | list[Any],
    options: AskOptions | None = None,
    *,
    labels: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
    cfg: VisionMagic | None = None,
    remember: bool = True,
) -> Question:
    """Resolve options and sources into a ready request; raises one line per problem, sending nothing.

    ``history`` (earlier turns of a chat) goes between the system message and this question. ``remember=False``
    keeps the prepared images out of the in-memory memo (a Batch API input file holds one image at a time).
    """
    cfg = cfg or current().settings
    options = (options or AskOptions()).resolved(cfg)
    endpoint = endpoint_in_force(cfg)
    profile, image = image_options(options, cfg, formats=endpoint.mimes)
    handler = link_handler(endpoint, image)
    sources = resolve_references(sources)
    if sources:
        images = (
            remember_prepared(
                sources,
                image,
                labels,
                lambda: prepare_sources(sources, image, labels=labels, link_handler=handler),
            )
            if remember
            else prepare_sources(sources, image, labels=labels, link_handler=handler)
        )
    elif history:
        images = []  # a follow-up's images are in the history
    else:
        images = default_images(image)
    prompt = (prompt or "").strip() or (DEFAULT_PROMPT if len(images) == 1 else DEFAULT_PROMPT_MANY)
    response_format = structured.response_format(options.schema, options.json_mode, endpoint.json_mode)
    text = prompt
    if options.schema is not None and response_format is None:  # no structured outputs: say it in words
        text = structured.schema_prompt(prompt, options.schema)
    elif options.json_mode and options.schema is None:
        text = structured.json_prompt(prompt)
    messages = build_messages(text, [part for img in images for part in img.parts()], options.system or "")
    messages[-1:-1] = list(history or [])
    body = build_request(messages, options, endpoint, response_format)
    model = options.model or ""
    notes = [] if profile.known else [f"{model} is not in the model table: token counts use gpt-4o's rule"]
    notes += _too_many_images(images, endpoint, options)
    zoomed = zoom_summary(images)
    if zoomed:
        notes.append(zoomed)
    if endpoint.api == "responses":
        notes.append("sent to /v1/responses as input_text/input_image parts (%config VisionMagic.api)")
    return Question(prompt, images, options, profile, body, endpoint, cfg, notes)


def _too_many_images(images: list[PreparedImage], endpoint: Endpoint, options: AskOptions) -> list[str]:
    """Refuse more images than the server takes in one request; warn above :data:`MANY_IMAGES` (a directory
    of hundreds of images is usually meant to be asked about one by one)."""
    n = len(images)
    if endpoint.max_images is not None and n > endpoint.max_images:
        raise VisionMagicError(
            f"{n} images in one request, but {endpoint.name or endpoint.base_url} takes at most "
            f"{endpoint.max_images}: ask about each image with --each (vision_magic.ask_many), or fewer at a time"
            + (", or allow fewer zoom tiles (--zoom N, zoom=N)" if any(img.tile for img in images) else "")
        )
    if n <= MANY_IMAGES:
        return []
    tokens = sum(img.tokens or 0 for img in images)
    note = (
        f"{n} images go in one request (~{tokens:,} image tokens); to ask about each image on its own, "
        "use --each (vision_magic.ask_many)"
    )
    if not options.dry_run:
        warn(note)
    return [note]
