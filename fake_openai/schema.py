"""OpenAI's published Chat Completions schema: where it lives, and validating request and response bodies."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .request_body import image_parts

PACKAGE_DIR = Path(__file__).resolve().parent
VENDORED_SCHEMA_DIR = PACKAGE_DIR / "openai_schema"

LONG_URL = 256  # image URLs longer than this are shortened before schema validation


def find_schema_dir() -> Path:
    """The directory holding ``validate.py`` and ``openai-chat-schemas.json``.

    ``$VISION_MAGIC_SCHEMA_DIR`` if set; else ``<repo root>/../shared/openai-schema`` if it exists; else the
    copy vendored in ``fake_openai/openai_schema``.
    """
    env = os.environ.get("VISION_MAGIC_SCHEMA_DIR")
    if env:
        return Path(env)
    shared = PACKAGE_DIR.parent.parent / "shared" / "openai-schema"
    if (shared / "validate.py").is_file():
        return shared
    return VENDORED_SCHEMA_DIR


@functools.cache
def _validate_module(schema_dir: str):
    """Import ``validate.py`` from ``schema_dir`` without touching ``sys.path`` or ``sys.modules``."""
    path = Path(schema_dir) / "validate.py"
    if not path.is_file():
        raise FileNotFoundError(f"no validate.py in schema directory {schema_dir}")
    name = "_vision_magic_openai_validate_%x" % (hash(str(path)) & 0xFFFFFFFF)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def request_errors(
    body: Any, schema_dir: str | os.PathLike | None = None, *, schema="CreateChatCompletionRequest"
):
    """``errors_for(schema, body)`` from the schema directory's ``validate.py`` (strict, as published)."""
    return _validate_module(str(schema_dir or find_schema_dir())).errors_for(schema, body)


def chat_request_errors(
    body: Any, schema_dir: str | os.PathLike, original_models: Collection[str]
) -> list[str]:
    """Schema errors of a chat request body, with ``detail: "original"`` allowed for ``original_models``.

    Validated on a copy in which long image URLs are shortened: the schema only asks for a string there,
    and jsonschema puts the repr of the whole message into every failed anyOf/oneOf branch, which costs
    seconds for a 20 MB data URL.
    """
    if not isinstance(body, dict):
        return request_errors(body, schema_dir)
    allow_original = body.get("model") in original_models
    parts = [p for p in image_parts(body) if isinstance(p.get("image_url"), dict)]
    if any(
        (allow_original and p["image_url"].get("detail") == "original")
        or len(str(p["image_url"].get("url", ""))) > LONG_URL
        for p in parts
    ):
        body = copy.deepcopy(body)
        for p in image_parts(body):
            image_url = p.get("image_url")
            if not isinstance(image_url, dict):
                continue
            if allow_original and image_url.get("detail") == "original":
                image_url["detail"] = "high"
            url = image_url.get("url")
            if isinstance(url, str) and len(url) > LONG_URL:
                image_url["url"] = url[:LONG_URL]
    return request_errors(body, schema_dir)


def _nullable_to_anyof(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``"nullable": true`` (ignored by JSON Schema 2020-12) as ``anyOf [..., null]``."""
    if isinstance(node, dict):
        out = {
            k: _nullable_to_anyof(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))
        }
        if node.get("nullable") is True:
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable_to_anyof(v) for v in node]
    return node


@functools.cache
def _response_validator(schema_dir: str, schema_name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = json.loads((Path(schema_dir) / "openai-chat-schemas.json").read_text(encoding="utf-8"))
    doc = _nullable_to_anyof(doc)
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", resource)
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{schema_name}"}, registry=registry)


def response_errors(schema_name: str, body: Any, schema_dir: str | os.PathLike | None = None) -> list[str]:
    """Schema errors of a *response* body, like ``errors_for`` but honouring OpenAPI ``nullable``.

    The bundle is a subset of an OpenAPI 3.0-style description: fields such as a stream chunk's
    ``finish_reason`` are marked ``"nullable": true``, which JSON Schema 2020-12 ignores, so real OpenAI
    responses (``"finish_reason": null``) would fail the plain validator.
    """
    v = _response_validator(str(schema_dir or find_schema_dir()), schema_name)
    out = []
    for e in sorted(v.iter_errors(body), key=lambda e: -len(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message[:300]}")
    return out


def responses_request_errors(body: Any, schema_dir: str | os.PathLike) -> list[str]:
    """Schema errors of a Responses API request body (``CreateResponse``).

    The published spec's ``input`` items are an ambiguous ``oneOf`` (a valid message matches several
    branches, so every valid ``input`` list fails with "is not valid under any of the given schemas", see
    ../shared/README.md). So ``input`` is checked item by item against the one branch a message takes,
    ``EasyInputMessage``, and the rest of the body against ``CreateResponse``. Long image URLs are
    shortened first, as for chat bodies.
    """
    if not isinstance(body, dict):
        return request_errors(body, schema_dir, schema="CreateResponse")
    rest = {k: v for k, v in body.items() if k != "input"}
    errors = list(request_errors(rest, schema_dir, schema="CreateResponse"))
    items = body.get("input")
    if isinstance(items, str) or items is None:
        return (
            errors
            if items is not None
            else ["(root): 'input' is required by vision_magic's questions"] + errors
        )
    if not isinstance(items, list):
        return [f"input: {items!r:.80} is not a string or a list"] + errors
    for i, item in enumerate(items):
        item = copy.deepcopy(item)
        for part in (
            item.get("content", [])
            if isinstance(item, dict) and isinstance(item.get("content"), list)
            else []
        ):
            url = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(url, str) and len(url) > LONG_URL:
                part["image_url"] = url[:LONG_URL]
        errors += [f"input/{i}/{e}" for e in request_errors(item, schema_dir, schema="EasyInputMessage")]
    return errors
