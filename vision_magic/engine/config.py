"""Settings as traitlets, so ``%config VisionMagic.model = "gpt-4o-mini"`` works in IPython.

The API key is deliberately not a trait: the openai SDK reads it from ``OPENAI_API_KEY`` (or the variable an
endpoint names), so it never shows up in ``%config``, reprs or saved notebooks.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, Unicode, default
from traitlets.config import Configurable

from ..errors import redact
from .servers import SERVER_PROFILES


class VisionMagic(Configurable):
    """Configuration of vision_magic (``%config VisionMagic`` lists the options).

    Examples
    --------
    >>> VisionMagic(model="gpt-4o-mini").model
    'gpt-4o-mini'
    """

    model = Unicode(help="Model to ask (env VISION_MAGIC_MODEL overrides the built-in default gpt-4o).").tag(
        config=True
    )
    detail = CaselessStrEnum(
        ["auto", "low", "high", "original"], default_value="auto", help="Image detail level."
    ).tag(config=True)
    max_tokens = Int(1024, help="Maximum tokens in the answer.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature (None: the server's default).").tag(
        config=True
    )
    system = Unicode("", help="System message sent before the question.").tag(config=True)
    base_url = Unicode(
        "", help="API base URL (empty: OPENAI_BASE_URL, else api.openai.com). Any OpenAI-compatible server."
    ).tag(config=True)
    timeout = Float(120.0, help="Seconds to wait for the server before giving up.").tag(config=True)
    max_retries = Int(2, help="Retries of transient errors (429, 5xx, connection) with backoff.").tag(
        config=True
    )
    deadline = Float(
        300.0,
        help="Seconds a question may take in all, retries and streaming included (0: no limit); then what "
        "arrived is kept, marked incomplete.",
    ).tag(config=True)
    stream = Bool(True, help="Stream the answer as it is written.").tag(config=True)
    resize = Bool(True, help="Resize images to the resolution the model really uses.").tag(config=True)
    jpeg_quality = Int(85, help="JPEG quality for photos.").tag(config=True)
    profiles = Dict(
        help="Model profile overrides: {name_or_prefix: {field: value}}, see vision_magic.images.profiles.ModelProfile."
    ).tag(config=True)
    dry_run = Bool(
        False, help="Show what would be sent instead of sending (thumbnails, sizes, request JSON)."
    ).tag(config=True)
    render_interval = Float(0.1, help="Seconds between updates of the streaming answer display.").tag(
        config=True
    )

    output_history = Int(
        50, help="How many of the newest cells' images are kept for @N references (0: none)."
    ).tag(config=True)
    output_history_mb = Float(
        200.0, help="At most this many MB of earlier outputs' images are kept for @N; the oldest go first."
    ).tag(config=True)

    cache = Bool(
        True, help="Replay identical questions from the persistent cache instead of sending them."
    ).tag(config=True)
    cache_path = Unicode(
        "", help="Replay cache file (empty: $VISION_MAGIC_CACHE_DIR or the user cache dir, replay.sqlite3)."
    ).tag(config=True)
    replay_only = Bool(
        help="Never send: show recorded answers only (vision_magic.replay_from, cache.load); a question with "
        "none is one line saying how it differs from the recordings (env VISION_MAGIC_REPLAY_ONLY=1)."
    ).tag(config=True)
    endpoints = Dict(
        help="Per-endpoint settings: {name: {base_url, server, api_key_env, fetch_urls, detail, models, formats, "
        "webp, json_mode, token_param, inline_max_bytes, inline_timeout, max_images}}, see "
        "vision_magic.engine.endpoints.Endpoint and docs/servers.md."
    ).tag(config=True)
    api = CaselessStrEnum(
        ["chat", "responses"],
        default_value="chat",
        help="The API questions go to: chat (Chat Completions, /v1/chat/completions, what every compatible "
        "server offers) or responses (the Responses API, /v1/responses: input_text/input_image parts, streamed "
        "with usage). An endpoint entry's own api wins.",
    ).tag(config=True)
    server = CaselessStrEnum(
        ["auto", *SERVER_PROFILES],
        default_value="auto",
        help="The kind of server at base_url, for its known facts (image formats, JSON mode, detail, links, "
        "token field); auto: read from the base URL where that is reliable (OpenAI, Azure, Ollama's and LM "
        "Studio's ports), else generic. See vision_magic.engine.servers.SERVER_PROFILES.",
    ).tag(config=True)

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: str | None = None) -> str:
        """A setting's ``%config VisionMagic`` entry, its current value redacted (a password in base_url)."""
        return redact(super().class_get_trait_help(trait, inst, helptext))

    @default("model")
    def _default_model(self) -> str:
        return os.environ.get("VISION_MAGIC_MODEL") or "gpt-4o"

    @default("replay_only")
    def _default_replay_only(self) -> bool:
        return os.environ.get("VISION_MAGIC_REPLAY_ONLY", "").strip().lower() in ("1", "true", "yes", "on")
