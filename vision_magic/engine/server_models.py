"""What models a server offers (``GET /v1/models``, fetched once per server), and the advice an error line
gets from the question it answers: the offered models for an unknown model, the cause of a 413.

Examples
--------
>>> import vision_magic
>>> vision_magic.models()  # doctest: +SKIP
[<model qwen2.5vl:7b (images)>, <model llama3.2:3b>]
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import APIError
from ..images.profiles import profile_for
from .endpoints import Endpoint, is_openai

if TYPE_CHECKING:
    from .question import Question

SHOWN_MODELS = 8  # an error line lists at most this many offered models
LIST_TIMEOUT = 10.0  # seconds for GET /v1/models

# Model names of open vision families local servers offer (ids vary: "qwen2.5vl:7b", "Qwen/Qwen2.5-VL-7B-Instruct")
VISION_FAMILIES = re.compile(
    r"llava|vision|pixtral|gemma-?3|moondream|minicpm-?v|smolvlm|idefics|internvl|molmo|[-_.0-9]vl\b|[-_.0-9]vl[-_:]",
    re.I,
)

_offered: dict[str, list[str] | None] = {}  # base URL -> model ids (None: the server would not say)
_offered_lock = threading.Lock()  # a batch's rows ask from worker threads: one fetch per server


@dataclass(frozen=True)
class OfferedModel:
    """One model a server offers; ``vision`` is True when the profile table, the endpoint's ``models`` or
    a vision family's name say it takes images (:func:`takes_images`), False when nothing says so.

    Examples
    --------
    >>> OfferedModel("gpt-4o", True)
    <model gpt-4o (images)>
    """

    id: str
    vision: bool
    owned_by: str = ""

    def __repr__(self) -> str:
        return f"<model {self.id}{' (images)' if self.vision else ''}>"


def fetch_models(cfg: Any, endpoint: Endpoint) -> list[str]:
    """The ids ``GET /v1/models`` lists (raises :class:`APIError`, one line, when the server does not answer)."""
    return [m for m, _ in fetch_model_entries(cfg, endpoint)]


def fetch_model_entries(cfg: Any, endpoint: Endpoint) -> list[tuple[str, str]]:
    """``(id, owned_by)`` of each model ``GET /v1/models`` lists (raises a one-line :class:`APIError`)."""
    from .endpoints import make_client
    from .send import describe_error

    client = make_client(cfg, endpoint, max_retries=0)
    try:
        page = client.models.list(timeout=min(LIST_TIMEOUT, float(cfg.timeout)))
        return [(m.id, str(getattr(m, "owned_by", "") or "")) for m in page.data if getattr(m, "id", None)]
    except Exception as e:
        raise describe_error(e, endpoint.base_url) from None
    finally:
        client.close()


def offered_models(cfg: Any, endpoint: Endpoint, refresh: bool = False) -> list[str] | None:
    """The models the server offers, fetched once per base URL per session; None when it would not say."""
    with _offered_lock:
        if refresh or endpoint.base_url not in _offered:
            try:
                _offered[endpoint.base_url] = fetch_models(cfg, endpoint)
            except Exception:
                _offered[endpoint.base_url] = None
        return _offered[endpoint.base_url]


def forget_offered() -> None:
    """Forget every server's model list (the next unknown-model error fetches it again)."""
    _offered.clear()


def takes_images(model: str, cfg: Any, endpoint: Endpoint) -> bool:
    """Whether the profile table (with ``%config VisionMagic.profiles``), the endpoint's ``models`` or the
    name of an open vision family (:data:`VISION_FAMILIES`) say ``model`` takes images.

    Examples
    --------
    >>> from vision_magic.engine.config import VisionMagic
    >>> [takes_images(m, VisionMagic(), Endpoint("http://x/v1")) for m in ("gpt-4o", "qwen2.5vl:7b", "llama3:8b")]
    [True, True, False]
    """
    return (
        model in (endpoint.models or [])
        or profile_for(model, cfg.profiles).known
        or bool(VISION_FAMILIES.search(model))
    )


def models(refresh: bool = False) -> list[OfferedModel]:
    """The models the server in force offers (``GET /v1/models``), those known to take images marked.

    Raises a one-line :class:`~vision_magic.errors.APIError` when the server cannot be asked.

    Examples
    --------
    >>> import vision_magic
    >>> [m.id for m in vision_magic.models() if m.vision]  # doctest: +SKIP
    ['gpt-4o', 'gpt-4o-mini']
    """
    from .endpoints import endpoint_in_force
    from .session import settings

    cfg = settings()
    endpoint = endpoint_in_force(cfg)
    entries = fetch_model_entries(cfg, endpoint)
    _offered[endpoint.base_url] = [m for m, _ in entries]
    return [OfferedModel(m, takes_images(m, cfg, endpoint), owner) for m, owner in entries]


def suggested_server(offered: list[OfferedModel]) -> str:
    """The ``%config VisionMagic.server`` a model list names (see
    :func:`~vision_magic.engine.servers.server_of_models`) when it is not the row in force, else ``""``."""
    from .endpoints import endpoint_in_force
    from .servers import server_of_models
    from .session import settings

    named = server_of_models([m.owned_by for m in offered]) if offered else ""
    return named if named and named != endpoint_in_force(settings()).server else ""


def short_list(ids: list[str], cfg: Any, endpoint: Endpoint) -> str:
    """Up to :data:`SHOWN_MODELS` ids, the ones known to take images first.

    Examples
    --------
    >>> from vision_magic.engine.config import VisionMagic
    >>> short_list(["llama3:8b", "gpt-4o"], VisionMagic(), Endpoint("http://x/v1"))
    'gpt-4o, llama3:8b'
    """
    ordered = sorted(ids, key=lambda m: not takes_images(m, cfg, endpoint))
    shown = ", ".join(ordered[:SHOWN_MODELS])
    more = len(ordered) - SHOWN_MODELS
    return shown + (f" and {more} more (vision_magic.models())" if more > 0 else "")


def advise(err: APIError, q: Question) -> APIError:
    """``err`` with advice only the question can give: the models the server offers when it does not know
    the one asked for; what made a request too large (413). The server's own words stay."""
    from .send import TOO_LARGE_HINT, UNKNOWN_MODEL_HINT

    if err.kind == "unknown_model":
        words = str(err).removesuffix(f" ({UNKNOWN_MODEL_HINT})").rstrip(".")
        return APIError(f"{words}; {_offered_line(q)}", err.status, err.kind)
    if err.kind == "too_large":
        words = str(err).removesuffix(f" ({TOO_LARGE_HINT})")
        return APIError(f"{words} ({_too_large_advice(q)})", err.status, err.kind)
    where = "%config VisionMagic.endpoints (or %config VisionMagic.server, see docs/servers.md)"
    if err.kind == "image_format":
        unusual = sorted({img.mime for img in q.images if img.mime not in ("image/png", "image/jpeg")})
        if unusual:
            fix = f'this server may not decode {", ".join(unusual)}: give it "formats": ["png", "jpeg"] in {where}'
            return APIError(f"{_without_hint(err)} ({fix})", err.status, err.kind)
    if err.kind == "json_mode" and q.structured:
        mode = q.endpoint.json_mode
        other = "json_schema" if mode != "json_schema" else "none"
        fix = f'this server takes another JSON mode than {mode}: give it "json_mode": "{other}" in {where}'
        return APIError(f"{_without_hint(err)} ({fix})", err.status, err.kind)
    return err


def _without_hint(err: APIError) -> str:
    """The line without its generic hint (the last parenthesis), when it has one."""
    from .send import HINTS

    text = str(err)
    hint = HINTS.get(err.status or 0)
    return text.removesuffix(f" ({hint})") if hint else text


def _offered_line(q: Question) -> str:
    """What the server offers instead of ``q.model``, and how to pick one."""
    ids = offered_models(q.cfg, q.endpoint)
    line = f"{q.model!r} is not offered here"
    if not is_openai(q.base_url) and q.model == "gpt-4o":
        line = "gpt-4o is the default, for OpenAI's API"
    if not ids:
        return f"{line}: pick a model the server has with -m, %config VisionMagic.model = ... or VISION_MAGIC_MODEL"
    pick = next((m for m in ids if takes_images(m, q.cfg, q.endpoint)), ids[0])
    return (
        f"{line}; the server offers {short_list(ids, q.cfg, q.endpoint)}: pick one with "
        f'%config VisionMagic.model = "{pick}", -m {pick} or VISION_MAGIC_MODEL={pick}'
    )


def _too_large_advice(q: Question) -> str:
    total = sum(img.nbytes or 0 for img in q.images)
    from ..images.encode import human_bytes

    size = f"the request held {human_bytes(total)} of images"
    if q.options.resize is False:
        return f"{size} at full size because of --no-resize: drop --no-resize (resize=False) to send them smaller"
    if len(q.images) > 1:
        return f"{size} in {len(q.images)} images: ask about fewer at a time (--each), or use --detail low"
    if q.options.detail != "low":
        return f"{size}: use --detail low, or a smaller image"
    return (
        f"{size}: the server (or a proxy in front of it) takes less; send a smaller image or raise its limit"
    )
