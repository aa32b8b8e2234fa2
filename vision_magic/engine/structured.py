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


def response_format(schema: Any = None, json_mode: bool = False) -> dict[str, Any] | None:
    """The ``response_format`` field: ``json_schema`` for ``schema``, ``json_object`` for JSON mode, else None.

    Examples
    --------
    >>> response_format(json_mode=True)
    {'type': 'json_object'}
    >>> response_format({"type": "object", "properties": {}})["json_schema"]["name"]
    'answer'
    """
    if schema is not None:
        name, body = schema_of(schema)
        strict = body.get("additionalProperties") is False
        spec: dict[str, Any] = {"name": name, "schema": body}
        if strict:
            spec["strict"] = True
        return {"type": "json_schema", "json_schema": spec}
    if json_mode:
        return {"type": "json_object"}
    return None


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
