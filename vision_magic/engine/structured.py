"""Structured answers: JSON mode (``--json``) and structured outputs (``schema=``: a pydantic model or a JSON
schema). Builds the ``response_format`` request field and parses the answer's text into Python objects."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import VisionMagicError

JSON_HINT = "Answer with a JSON object."


def schema_of(schema: Any) -> tuple[str, dict[str, Any]]:
    """(name, JSON schema) of a pydantic model class or a JSON schema dict.

    Examples
    --------
    >>> schema_of({"title": "Chart", "type": "object", "properties": {"kind": {"type": "string"}}})[0]
    'Chart'
    """
    if isinstance(schema, dict):
        name = str(schema.get("title") or "answer")
        return _safe_name(name), schema
    if hasattr(schema, "model_json_schema"):
        try:  # the SDK's strict form (additionalProperties false, every field required) when available
            from openai.lib._pydantic import to_strict_json_schema

            body = to_strict_json_schema(schema)
        except Exception:
            body = schema.model_json_schema()
        return _safe_name(schema.__name__), body
    raise VisionMagicError(
        f"schema= takes a pydantic model class or a JSON schema dict, not a {type(schema).__name__}"
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"


PERMISSIVE_SCHEMA = {"type": "object"}  # "any JSON object", for servers whose only JSON mode is json_schema


def response_format(
    schema: Any = None, json_mode: bool = False, server_mode: str = "json_object"
) -> dict[str, Any] | None:
    """The ``response_format`` field: ``json_schema`` for ``schema``; for JSON mode what the server takes
    (``server_mode``: ``json_object``, ``json_schema`` with a permissive schema, or ``none``); else None.
    A server without a JSON mode (``none``) gets no field: the prompt asks for JSON.

    Examples
    --------
    >>> response_format(json_mode=True)
    {'type': 'json_object'}
    >>> response_format(json_mode=True, server_mode="json_schema")
    {'type': 'json_schema', 'json_schema': {'name': 'answer', 'schema': {'type': 'object'}}}
    >>> response_format({"type": "object", "properties": {}})["json_schema"]["name"]
    'answer'
    >>> response_format({"type": "object"}, server_mode="none") is None
    True
    """
    if server_mode == "none":
        return None
    if schema is not None:
        name, body = schema_of(schema)
        strict = body.get("additionalProperties") is False
        spec: dict[str, Any] = {"name": name, "schema": body}
        if strict:
            spec["strict"] = True
        return {"type": "json_schema", "json_schema": spec}
    if json_mode and server_mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": dict(PERMISSIVE_SCHEMA)}}
    if json_mode:
        return {"type": "json_object"}
    return None


def schema_prompt(prompt: str, schema: Any) -> str:
    """The prompt for a server without structured outputs: the JSON Schema the answer must fit, in words.

    Examples
    --------
    >>> print(schema_prompt("Colour?", {"title": "C", "type": "object"}))
    Colour?
    <BLANKLINE>
    Answer with a JSON object that fits this JSON Schema: {"title": "C", "type": "object"}
    """
    return f"{prompt}\n\nAnswer with a JSON object that fits this JSON Schema: {json.dumps(schema_of(schema)[1])}"


def not_json_advice(server_mode: str) -> str:
    """What to try when an answer asked for as JSON is not JSON, by the server's JSON mode."""
    if server_mode == "none":
        return (
            "this server has no JSON mode: describe the JSON you want in the question, or try another model"
        )
    return (
        "the server may ignore JSON mode: describe the JSON you want in the question, try another model, "
        'or set "json_mode" for this server in %config VisionMagic.endpoints (docs/servers.md)'
    )


def json_prompt(prompt: str) -> str:
    """JSON mode needs the word "JSON" in the messages (OpenAI rejects the request otherwise).

    Examples
    --------
    >>> json_prompt("List the colours.")
    'List the colours.\\n\\nAnswer with a JSON object.'
    >>> json_prompt("Give JSON.")
    'Give JSON.'
    """
    return prompt if "json" in prompt.lower() else f"{prompt}\n\n{JSON_HINT}"


def parse(text: str, schema: Any = None) -> Any:
    """The answer's JSON as Python objects (a pydantic instance for a pydantic ``schema``).

    Tolerates a Markdown code fence around the JSON, which some local servers add. Raises ``ValueError``
    with a one-line reason when the text is not valid JSON or does not fit the model.

    Examples
    --------
    >>> parse('```json\\n{"a": 1}\\n```')
    {'a': 1}
    """
    stripped = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, re.S)
    if fence:
        stripped = fence.group(1)
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as e:
        raise ValueError(f"the answer is not valid JSON ({e.msg} at char {e.pos})") from None
    if schema is not None and hasattr(schema, "model_validate"):
        try:
            return schema.model_validate(obj)
        except Exception as e:
            first = str(e).splitlines()
            raise ValueError(f"the answer does not fit {schema.__name__} ({' '.join(first[:2])})") from None
    return obj
