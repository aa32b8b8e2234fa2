"""What the server answers: the ``Reply`` record of one chat answer, and the JSON bodies and SSE chunks built
from it (plus OpenAI-style error bodies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Fault


@dataclass(frozen=True)
class Reply:
    """One chat completion answer, as the JSON and SSE writers send it."""

    text: str
    model: str
    completion_id: str
    created: int  # Unix time
    usage: dict  # see usage_for()
    finish_reason: str
    fault: Fault | None = None  # a drop or malformed fault that cuts the answer short
    stream: bool = False  # the request asked for SSE (``"stream": true``)
    include_usage: bool = False  # ``stream_options.include_usage``: a final usage chunk
    chunk_size: int = 8  # characters per streamed content chunk
    chunk_delay: float = 0.0  # seconds between streamed chunks
    empty_first_chunk: bool = False  # stream a first chunk with ``choices: []``
    refusal: str | None = None  # the model refuses: ``message.refusal`` (or ``delta.refusal``), no content
    no_choices: bool = False  # answer with ``choices: []`` (a reply with no answer at all)
    usage_on_finish: bool = False  # the usage rides on the finish chunk (no separate usage chunk)
    usage_chunk_choices: bool = False  # the usage chunk carries a non-empty ``choices``


def error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None, param=None
) -> dict:
    """An OpenAI error response body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def completion_id_for(request_id: str) -> str:
    """``chatcmpl-vmtest000042`` for the request id ``req_vmtest_42``."""
    return f"chatcmpl-vmtest{int(request_id.rsplit('_', 1)[-1]):06d}"


def completion_body(reply: Reply) -> dict:
    """The ``chat.completion`` object of a non-streamed answer."""
    return {
        "id": reply.completion_id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": []
        if reply.no_choices
        else [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None if reply.refusal else reply.text,
                    "refusal": reply.refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": reply.usage,
        "service_tier": "default",
        "system_fingerprint": "fp_vmtest",
    }


def malformed_completion(reply: Reply) -> bytes:
    """The start of a completion body, cut off inside ``choices`` (not JSON)."""
    return b'{"id": "' + reply.completion_id.encode() + b'", "choices": [{not json'


def _chunk(reply: Reply, choices: list, **extra: Any) -> dict:
    obj = {
        "id": reply.completion_id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "service_tier": "default",
        "system_fingerprint": "fp_vmtest",
        "choices": choices,
    }
    if reply.include_usage:
        obj["usage"] = None
    obj.update(extra)
    return obj


def _choice(delta: dict, finish_reason: str | None = None) -> list:
    return [{"index": 0, "delta": delta, "finish_reason": finish_reason}]


def stream_chunks(reply: Reply) -> list[dict]:
    """The ``chat.completion.chunk`` objects of a streamed answer, in order.

    [empty first chunk], the role chunk, one chunk per ``chunk_size`` characters, the finish chunk, [usage].
    With a fault, only the chunks before it: the leading ones and ``after`` (default 2) content chunks.
    """
    size = max(1, int(reply.chunk_size))
    text = reply.refusal or reply.text
    field = "refusal" if reply.refusal else "content"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    chunks = []
    if reply.empty_first_chunk:
        chunks.append(_chunk(reply, []))
    if reply.no_choices:
        return chunks + ([_chunk(reply, [], usage=reply.usage)] if reply.include_usage else [])
    chunks.append(_chunk(reply, _choice({"role": "assistant", "content": ""})))
    chunks += [_chunk(reply, _choice({field: p})) for p in pieces]
    if reply.include_usage and reply.usage_on_finish:
        chunks.append(_chunk(reply, _choice({}, reply.finish_reason), usage=reply.usage))
    else:
        chunks.append(_chunk(reply, _choice({}, reply.finish_reason)))
    if reply.include_usage and not reply.usage_on_finish:
        choices = _choice({"content": ""}) if reply.usage_chunk_choices else []
        chunks.append(_chunk(reply, choices, usage=reply.usage))
    if reply.fault is not None:
        stop_after = int(reply.fault.params.get("after", 2))
        head = (1 if reply.empty_first_chunk else 0) + 1
        chunks = chunks[: head + min(stop_after, len(pieces))]
    return chunks


# -- the Responses API ------------------------------------------------------------------------------

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_body(reply: Reply, *, done: bool = True) -> dict:
    """The ``response`` object of a Responses API answer (``done=False``: as ``response.created`` shows it)."""
    reason = _INCOMPLETE_REASONS.get(reply.finish_reason)
    content = (
        [{"type": "refusal", "refusal": reply.refusal}]
        if reply.refusal
        else [{"type": "output_text", "text": reply.text, "annotations": []}]
    )
    usage = reply.usage
    return {
        "id": reply.completion_id.replace("chatcmpl-", "resp_"),
        "object": "response",
        "created_at": reply.created,
        "status": ("incomplete" if reason else "completed") if done else "in_progress",
        "model": reply.model,
        "output": [
            {
                "type": "message",
                "id": reply.completion_id.replace("chatcmpl-", "msg_"),
                "status": "completed",
                "role": "assistant",
                "content": content,
            }
        ]
        if done and not reply.no_choices
        else [],
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        if done
        else None,
        "incomplete_details": {"reason": reason} if done and reason else None,
        "error": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def response_events(reply: Reply) -> list[dict]:
    """The events of a streamed Responses answer: ``response.created``, one text (or refusal) delta per
    ``chunk_size`` characters, then ``response.completed`` (or ``response.incomplete``). With a fault, only
    ``response.created`` and ``after`` (default 2) deltas."""
    size = max(1, int(reply.chunk_size))
    text = reply.refusal or reply.text
    kind = "response.refusal.delta" if reply.refusal else "response.output_text.delta"
    events = [{"type": "response.created", "response": response_body(reply, done=False)}]
    if not reply.no_choices:
        events += [
            {
                "type": kind,
                "item_id": "msg_0",
                "output_index": 0,
                "content_index": 0,
                "delta": text[i : i + size],
            }
            for i in range(0, len(text), size)
        ]
    if reply.fault is not None:
        return events[: 1 + int(reply.fault.params.get("after", 2))]
    final = response_body(reply)
    events.append({"type": f"response.{final['status']}", "response": final})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events
