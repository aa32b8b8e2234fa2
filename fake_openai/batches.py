"""The Files and Batch APIs: uploaded files in memory, and batches that move through OpenAI's statuses.

``POST /v1/files`` (multipart: ``purpose`` and ``file``), ``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content``;
``POST /v1/batches``, ``GET /v1/batches`` (list), ``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``.

A batch advances one status each time it is retrieved (or listed) ``batch_steps`` times, so a test sees every
stage without waiting: ``validating`` -> ``in_progress`` -> ``finalizing`` (every line answered here, with the
server's reply settings) -> ``completed``. ``batch_outcome`` makes the next batches end otherwise:
``"failed"`` (refused while validating, no output), ``"expired"`` (the first ``expire_after`` lines answered,
the others in the error file as ``batch_expired``). ``cancel`` gives ``cancelling`` then ``cancelled`` (lines
not yet answered are in the error file as ``batch_cancelled``).

Every line's body is validated against OpenAI's published Chat Completions schema (like a chat request):
an invalid body, an invalid data-URL image or ``batch_line_error(custom_id, body) -> message`` gives that
line a 400 in the error file; the others are answered. A malformed input file (not JSON Lines, a missing or
repeated ``custom_id``, another URL than the batch's endpoint, more than ``batch_max_requests`` lines) makes
the batch ``failed`` with the reasons in ``errors``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .replies import Reply, completion_body
from .request_body import default_reply, inspect_images, usage_for

if TYPE_CHECKING:
    from .server import OpenAIServer

STEPS = ("validating", "in_progress", "finalizing", "completed")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
EXPIRED_LINE = "This request could not be executed before the completion window expired."
CANCELLED_LINE = "This request was not executed because the batch was cancelled."


@dataclass
class StoredFile:
    """One uploaded (or server-made) file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class StoredBatch:
    """One batch: its OpenAI object, its parsed lines, and how far it has gone."""

    obj: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None  # "failed" / "expired": how it ends (set when created)
    expire_after: int = 0
    line_errors: list[dict[str, Any]] = field(default_factory=list)  # batch-level validation errors
    retrieved: int = 0
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> output line
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> error line


def parse_multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """``{name: (filename, data)}`` of a ``multipart/form-data`` body.

    Examples
    --------
    >>> body = b'--b\\r\\nContent-Disposition: form-data; name="purpose"\\r\\n\\r\\nbatch\\r\\n--b--\\r\\n'
    >>> parse_multipart(body, "multipart/form-data; boundary=b")
    {'purpose': (None, b'batch')}
    """
    boundary = ""
    for piece in content_type.split(";"):
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return {}
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        name, filename = None, None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition"):
                for item in line.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    if k == "name":
                        name = v.strip('"')
                    elif k == "filename":
                        filename = v.strip('"')
        if name is not None:
            out[name] = (filename, data)
    return out


class BatchStore:
    """The files and batches of one server (thread-safe)."""

    def __init__(self, owner: OpenAIServer) -> None:
        self.owner = owner
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, StoredBatch] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    def clear(self) -> None:
        with self._lock:
            self.files.clear()
            self.batches.clear()

    def _id(self, prefix: str) -> str:
        return (
            f"{prefix}-vmtest{next(self._ids):06d}"
            if prefix == "file"
            else f"{prefix}_vmtest{next(self._ids):06d}"
        )

    # -- files -----------------------------------------------------------------------------------

    def add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        with self._lock:
            f = StoredFile(self._id("file"), filename, purpose, content, int(time.time()))
            self.files[f.id] = f
            return f

    def file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self.files.get(file_id)

    # -- batches ---------------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, response body) of ``POST /v1/batches``."""
        owner = self.owner
        with self._lock:
            source = self.files.get(str(body.get("input_file_id")))
            if source is None:
                return 404, _error(f"No such File object: {body.get('input_file_id')}", param="input_file_id")
            if source.purpose != "batch":
                return 400, _error(
                    "The input file must be uploaded with purpose 'batch'.", param="input_file_id"
                )
            now = int(time.time())
            obj = {
                "id": self._id("batch"),
                "object": "batch",
                "endpoint": body["endpoint"],
                "errors": None,
                "input_file_id": source.id,
                "completion_window": body["completion_window"],
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "in_progress_at": None,
                "expires_at": now + 24 * 3600,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
            }
            batch = StoredBatch(obj, outcome=owner.batch_outcome, expire_after=owner.expire_after)
            batch.lines, batch.line_errors = self._parse_lines(source.content, body["endpoint"])
            obj["request_counts"]["total"] = len(batch.lines)
            if batch.lines and isinstance(batch.lines[0].get("body"), dict):
                obj["model"] = str(batch.lines[0]["body"].get("model"))
            self.batches[obj["id"]] = batch
            return 200, _public(obj)

    def _parse_lines(
        self, content: bytes, endpoint: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lines: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        for n, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append(
                    {"code": "invalid_json_line", "message": f"Line {n} is not valid JSON.", "line": n}
                )
                continue
            cid = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(cid, str) or not cid:
                errors.append(
                    {"code": "missing_required_parameter", "message": "custom_id is missing.", "line": n}
                )
            elif cid in seen:
                errors.append(
                    {"code": "duplicate_custom_id", "message": f"custom_id {cid!r} is repeated.", "line": n}
                )
            elif line.get("method") != "POST" or line.get("url") != endpoint:
                errors.append(
                    {
                        "code": "invalid_url",
                        "message": f"Line {n}: the url must be {endpoint} (POST).",
                        "line": n,
                    }
                )
            else:
                seen.add(cid)
                lines.append(line)
        if len(lines) > self.owner.batch_max_requests:
            errors.append(
                {
                    "code": "too_many_requests",
                    "message": f"The input file holds {len(lines)} requests; at most "
                    f"{self.owner.batch_max_requests} are allowed.",
                    "line": None,
                }
            )
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "The input file has no requests.", "line": None})
        return lines, errors

    def retrieve(self, batch_id: str, advance: bool = True) -> dict[str, Any] | None:
        """The batch object, moved on one step every ``batch_steps`` retrievals (``advance``)."""
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if advance:
                batch.retrieved += 1
                if batch.retrieved >= max(1, int(self.owner.batch_steps)):
                    batch.retrieved = 0
                    self._step(batch)
            return _public(batch.obj)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.retrieve(bid) for bid in reversed(list(self.batches))]  # newest first

    def cancel(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, _error(f"No such Batch object: {batch_id}")
            status = batch.obj["status"]
            if status in TERMINAL:
                return 409, _error(f"Cannot cancel a batch with status '{status}'.")
            batch.obj["status"] = "cancelling"
            batch.obj["cancelling_at"] = int(time.time())
            return 200, _public(batch.obj)

    def _step(self, batch: StoredBatch) -> None:
        obj, now = batch.obj, int(time.time())
        status = obj["status"]
        if status == "cancelling":
            self._finish(batch, "cancelled", "batch_cancelled", CANCELLED_LINE)
        elif status == "validating":
            if batch.line_errors or batch.outcome == "failed":
                errors = batch.line_errors or [
                    {
                        "code": "failed_on_request",
                        "message": "The batch failed (requested by the test).",
                        "line": None,
                    }
                ]
                obj.update(
                    status="failed",
                    failed_at=now,
                    errors={"object": "list", "data": [{"param": None, **e} for e in errors]},
                )
            else:
                obj.update(status="in_progress", in_progress_at=now)
        elif status == "in_progress":
            limit = batch.expire_after if batch.outcome == "expired" else len(batch.lines)
            for line in batch.lines[:limit]:
                self._answer(batch, line)
            if batch.outcome == "expired":
                self._finish(batch, "expired", "batch_expired", EXPIRED_LINE)
            else:
                obj.update(status="finalizing", finalizing_at=now)
        elif status == "finalizing":
            self._finish(batch, "completed", "", "")

    def _finish(self, batch: StoredBatch, status: str, code: str, message: str) -> None:
        """End ``batch`` with ``status``; lines not answered get ``code``/``message`` in the error file."""
        obj = batch.obj
        for line in batch.lines:
            cid = line["custom_id"]
            if code and cid not in batch.done and cid not in batch.failed:
                batch.failed[cid] = {
                    "id": self._id("batch_req"),
                    "custom_id": cid,
                    "response": None,
                    "error": {"code": code, "message": message},
                }
        order = [line["custom_id"] for line in batch.lines]
        if batch.done:
            out = [batch.done[c] for c in order if c in batch.done]
            obj["output_file_id"] = self._jsonl_file(f"{obj['id']}_output.jsonl", out).id
        if batch.failed:
            err = [batch.failed[c] for c in order if c in batch.failed]
            obj["error_file_id"] = self._jsonl_file(f"{obj['id']}_error.jsonl", err).id
        obj["status"] = status
        obj[f"{status}_at"] = int(time.time())
        self._count(batch)

    def _jsonl_file(self, name: str, lines: list[dict[str, Any]]) -> StoredFile:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
        return self.add_file(name, "batch_output", data)

    def _count(self, batch: StoredBatch) -> None:
        counts = batch.obj["request_counts"]
        counts["completed"] = len(batch.done)
        counts["failed"] = len(batch.failed)

    def _answer(self, batch: StoredBatch, line: dict[str, Any]) -> None:
        """Answer one line as ``POST /v1/chat/completions`` would: into ``done`` or ``failed``."""
        owner = self.owner
        cid, body = line["custom_id"], line.get("body")
        request_id = owner._record_batch_line(line)
        problem = None
        errors = (
            owner.validate_request(body) if isinstance(body, dict) else ["(root): the body must be an object"]
        )
        if errors:
            owner._schema_error(f"batch line {cid}", errors)
            problem = ("; ".join(errors[:3]), "schema_validation")
        else:
            _images, image_error = inspect_images(body)
            custom = owner.batch_line_error(cid, body) if owner.batch_line_error is not None else None
            if image_error:
                problem = (image_error, "invalid_image_format")
            elif custom:
                problem = (str(custom), "invalid_request_error")
        if problem is not None:
            batch.failed[cid] = {
                "id": self._id("batch_req"),
                "custom_id": cid,
                "response": {
                    "status_code": 400,
                    "request_id": request_id,
                    "body": _error(problem[0], code=problem[1]),
                },
                "error": None,
            }
            return
        reply = owner.reply
        text = default_reply(body) if reply is None else reply(body) if callable(reply) else str(reply)
        answer = Reply(
            text=text,
            model=str(body.get("model")),
            completion_id=f"chatcmpl-vmbatch{request_id.rsplit('_', 1)[-1]}",
            created=int(time.time()),
            usage=usage_for(body, text),
            finish_reason=owner.finish_reason,
        )
        batch.done[cid] = {
            "id": self._id("batch_req"),
            "custom_id": cid,
            "response": {"status_code": 200, "request_id": request_id, "body": completion_body(answer)},
            "error": None,
        }
        batch.obj["request_counts"]["completed"] = len(batch.done)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a batch object without its unset fields (the published schema allows no nulls there)."""
    return {k: v for k, v in json.loads(json.dumps(obj)).items() if v is not None}


def _error(message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
