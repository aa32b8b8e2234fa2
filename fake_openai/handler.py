"""The OpenAI endpoints: routing, ``/v1/models``, and chat completions (validation, faults, JSON or SSE)."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qsl, urlsplit

from .behaviours import (
    LLAMACPP_IMAGE_ERROR,
    LMSTUDIO_JSON_OBJECT_ERROR,
    NGINX_PAGE,
    json_answer,
    shaped_error,
    unknown_model_message,
)
from .faults import EARLY_FAULTS, Fault, html_error, status_error
from .recording import RecordedRequest
from .replies import (
    Reply,
    completion_body,
    completion_id_for,
    error_body,
    malformed_completion,
    response_body,
    response_events,
    stream_chunks,
)
from .request_body import chat_view, default_reply, inspect_images, usage_for
from .transport import Abort, HTTPConnection
from .urls import CHAT_PATH, MODEL_PATH, RESPONSES_PATH


class Handler(HTTPConnection):
    """Answers one connection's requests for the ``OpenAIServer`` that owns the HTTP server."""

    # -- routing ---------------------------------------------------------------------------------

    def route(self):
        split = urlsplit(self.path)
        record, json_problem = self._record(split)
        path = record.path
        limit = self.server.owner.body_limit
        if limit is not None and len(record.raw) > limit:  # nginx's client_max_body_size
            record.answered(413, "body_limit")
            self.close_connection = True
            page = NGINX_PAGE.format(status=413, reason="Request Entity Too Large")
            self.send(413, page.encode(), "text/html")
            return
        chat = CHAT_PATH.fullmatch(path)
        models = MODEL_PATH.fullmatch(path)
        if chat and self.command == "POST":
            record.deployment = chat["deployment"]
            self._chat(record, json_problem)
        elif RESPONSES_PATH.fullmatch(path) and self.command == "POST":
            self._chat(record, json_problem, responses=True)
        elif models and self.command == "GET":
            self._models(record, models["model"])
        else:
            record.answered(404, "unknown_url")
            self.send_json(404, error_body(f"Invalid URL ({self.command} {path})"))

    def _record(self, split) -> tuple[RecordedRequest, str | None]:
        """Read the body, record the request (which sets ``request_id``); also the JSON parse error, if any."""
        raw = self.read_body()
        now, mono = time.time(), time.monotonic()
        body = None
        json_problem = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                json_problem = str(exc)
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            time=now,
            monotonic=mono,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            client=tuple(self.client_address[:2]),
        )
        self.request_id = self.server.owner._record(record)
        return record, json_problem

    def _models(self, record: RecordedRequest, model_id: str | None):
        entries = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": self.server.owner.owned_by}
            for m in self.server.owner.models
        ]
        if model_id is None:
            record.answered(200)
            self.send_json(200, {"object": "list", "data": entries})
            return
        for entry in entries:
            if entry["id"] == model_id:
                record.answered(200)
                self.send_json(200, entry)
                return
        record.answered(404, "model_not_found")
        self.send_json(
            404,
            error_body(f"The model '{model_id}' does not exist", code="model_not_found", param="model"),
        )

    # -- chat completions ------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest, json_problem: str | None, responses: bool = False):
        """A chat completion, or (``responses``) a Responses API answer, read through its chat view."""
        owner = self.server.owner
        wake = owner._wake  # reset() and stop() set it: hung or delayed requests then give up
        body, errors = self._checked_body(record, json_problem, responses)
        if responses:
            body = chat_view(body)
        record.images, image_error = inspect_images(body)

        fault = owner._next_fault()
        if fault is not None:
            record.fault = fault.kind
        fault = self._delay(fault, wake)
        if fault is not None and fault.kind in EARLY_FAULTS:
            self._early_fault(record, fault)
            return
        if fault is None and self._rejected(record, body, errors, image_error):
            return
        if owner.detail == "ignored":  # the server never looks at it
            for image in record.images:
                image["detail"] = None

        text = self._reply_text(record, body)
        if text is None:
            return
        reply = self._reply(record, body, text, fault=fault)
        if responses and reply.stream:
            self._send_response_stream(record, reply, wake)
        elif responses:
            record.answered(200)
            self.send_json(200, response_body(reply))
        elif reply.stream:
            self._send_stream(record, reply, wake)
        else:
            self._send_completion(record, reply)

    def _checked_body(
        self, record: RecordedRequest, json_problem: str | None, responses: bool = False
    ) -> tuple[dict, list[str]]:
        """The body to answer (Azure: with the deployment as model) and its schema errors (also recorded)."""
        owner = self.server.owner
        body = record.body
        if json_problem is not None or not isinstance(body, dict):
            why = (
                f"request body is not valid JSON ({json_problem})"
                if json_problem is not None
                else f"request body must be a JSON object, got {type(body).__name__}"
            )
            errors = [f"(root): {why}"]
            owner._schema_error(record.path, errors)
            return {}, errors
        if record.deployment and "model" not in body:
            body = {**body, "model": record.deployment}  # Azure takes the model from the URL
        errors = owner.validate_responses_request(body) if responses else owner.validate_request(body)
        if errors:
            owner._schema_error(record.path, errors)
        return body, errors

    def _delay(self, fault: Fault | None, wake: threading.Event) -> Fault | None:
        """Sleep the latency and a hang fault's seconds (``Abort`` if woken); the fault still to apply."""
        latency = self.server.owner.latency
        if latency:
            self.wait(wake, latency)
        if fault is not None and fault.kind == "hang":
            self.wait(wake, float(fault.params.get("seconds", 60)))
            return None  # then answer normally
        return fault

    def _early_fault(self, record: RecordedRequest, fault: Fault):
        """A ``status``, ``html`` or ``close`` fault, instead of an answer."""
        if fault.kind == "close":
            record.answered(None)
            raise Abort
        if fault.kind == "status":
            status, body, headers = status_error(fault)
            record.answered(status)
            self.send_error_body(status, body, headers)
            return
        status, page, headers = html_error(fault, self.responses)
        record.answered(status)
        self.send(status, page, fault.params.get("content_type", "text/html; charset=utf-8"), headers=headers)

    def send_error_body(self, status: int, body: dict, headers: dict | None = None, loc: list | None = None):
        """An error response, written in the server's ``error_shape`` (see :mod:`fake_openai.behaviours`)."""
        reason = self.responses.get(status, ("Error",))[0]
        payload, ctype = shaped_error(self.server.owner.error_shape, status, body, reason, loc)
        self.send(status, payload, ctype, headers=headers)

    def _reject(self, record: RecordedRequest, status: int, code: str, message: str, loc: list | None = None):
        record.answered(status, code)
        self.send_error_body(status, error_body(message, code=code), loc=loc)

    def _rejected(
        self, record: RecordedRequest, body: dict, errors: list[str], image_error: str | None
    ) -> bool:
        """Send the error of a schema error, an unknown model, a behaviour's refusal or an invalid image, if
        any; whether one was sent."""
        owner = self.server.owner
        if errors:
            self._reject(record, 400, "schema_validation", "; ".join(errors[:3]))
            return True
        model = body.get("model")
        if owner.unknown_model is not None and model not in owner.models:
            status = owner.unknown_model
            code = "model_not_found" if status == 404 else "invalid_model"
            self._reject(record, status, code, unknown_model_message(status, str(model)), ["body", "model"])
            return True
        if owner.detail == "rejected":
            for i, m in enumerate(body.get("messages", [])):
                for j, part in enumerate(m.get("content") if isinstance(m.get("content"), list) else []):
                    if isinstance(part, dict) and "detail" in (part.get("image_url") or {}):
                        loc = ["body", "messages", i, "content", j, "image_url", "detail"]
                        self._reject(record, 422, "extra_forbidden", "Extra inputs are not permitted", loc)
                        return True
        fmt = body.get("response_format")
        if (
            owner.response_format == "json_object_rejected"
            and isinstance(fmt, dict)
            and fmt.get("type") == "json_object"
        ):
            self._reject(record, 400, "invalid_response_format", LMSTUDIO_JSON_OBJECT_ERROR)
            return True
        if owner.webp_rejected and any(img.get("mime") == "image/webp" for img in record.images):
            self._reject(record, 400, "invalid_image", LLAMACPP_IMAGE_ERROR)
            return True
        if image_error:
            self._reject(record, 400, "invalid_image_format", image_error)
            return True
        return False

    def _reply_text(self, record: RecordedRequest, body: dict) -> str | None:
        """The answer's text from the ``reply`` setting; None after sending a 500 for a failing callable."""
        owner = self.server.owner
        reply = owner.reply
        fmt = body.get("response_format")
        wants_json = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        if reply is None and owner.response_format != "ignored" and wants_json:
            return json_answer(default_reply(body))
        try:
            return default_reply(body) if reply is None else reply(body) if callable(reply) else str(reply)
        except Exception as exc:  # a broken reply callable is a test bug: make it visible
            record.answered(500, "reply_callable_failed")
            self.send_json(500, error_body(f"reply callable failed: {exc!r}", type_="server_error"))
            return None

    def _reply(self, record: RecordedRequest, body: dict, text: str, *, fault: Fault | None) -> Reply:
        """The ``Reply`` to ``body``, with the server's current answer settings."""
        owner = self.server.owner
        options = body.get("stream_options")
        model = body.get("model")
        return Reply(
            text=text,
            model=model if isinstance(model, str) else record.deployment or "unknown",
            completion_id=completion_id_for(self.request_id),
            created=int(record.time),
            usage=usage_for(body, text),
            finish_reason=owner.finish_reason,
            fault=fault,
            stream=body.get("stream") is True,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            chunk_size=owner.chunk_size,
            chunk_delay=owner.chunk_delay,
            empty_first_chunk=owner.empty_first_chunk,
            refusal=owner.refusal,
            no_choices=owner.no_choices,
            usage_on_finish=owner.usage_on_finish,
            usage_chunk_choices=owner.usage_chunk_choices,
        )

    def _send_completion(self, record: RecordedRequest, reply: Reply):
        """A ``chat.completion`` JSON body; a drop fault sends half of it, a malformed one a broken body."""
        payload = json.dumps(completion_body(reply)).encode("utf-8")
        record.answered(200)
        if reply.fault is None:
            self.send(200, payload, "application/json")
        elif reply.fault.kind == "drop":  # announce the whole body, send half of it, hang up
            self.send_head_and_part(payload, payload[: len(payload) // 2])
            raise Abort
        else:  # malformed
            self.close_connection = True
            self.send(200, malformed_completion(reply), "application/json")

    def _send_response_stream(self, record: RecordedRequest, reply: Reply, wake: threading.Event):
        """Responses API events (``event:`` and ``data:`` lines, no ``[DONE]``); a drop fault hangs up early,
        a malformed one ends with broken data."""
        events = response_events(reply)
        record.answered(200)
        self.start_sse(close=reply.fault is not None, content_type=self.server.owner.sse_content_type)
        for i, event in enumerate(events):
            if i and reply.chunk_delay:
                self.wait(wake, reply.chunk_delay)
            self.write_chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        if reply.fault is None:
            self.end_chunks()
        elif reply.fault.kind == "drop":
            raise Abort
        else:  # malformed
            self.write_chunk(b"event: response.output_text.delta\ndata: {not json\n\n")
            self.end_chunks()

    def _send_stream(self, record: RecordedRequest, reply: Reply, wake: threading.Event):
        """SSE chunks then ``[DONE]``; a drop fault hangs up early, a malformed one ends with broken data."""
        chunks = stream_chunks(reply)
        record.answered(200)
        self.start_sse(close=reply.fault is not None, content_type=self.server.owner.sse_content_type)
        for i, chunk in enumerate(chunks):
            if i and reply.chunk_delay:
                self.wait(wake, reply.chunk_delay)
            self.write_event(chunk)
        if reply.fault is None and self.server.owner.done:
            self.end_sse_with_done()
        elif reply.fault is None:
            self.end_chunks()
        elif reply.fault.kind == "drop":
            raise Abort
        else:  # malformed
            self.write_chunk(b"data: {not json\n\n")
            self.end_chunks()
