"""The test server's Files and Batch APIs (fake_openai/batches.py), through the official openai SDK over real HTTP:
multipart upload, retrieve, content; create, retrieve, list, cancel; the status progression and the other
endings; per-line errors in the error file; every object as OpenAI's published schema describes it."""

from __future__ import annotations

import io
import json

import openai
import pytest
from server_fixtures import FAKE_KEY

from fake_openai import response_errors

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Which colour?"}]}],
    "max_completion_tokens": 20,
}


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=FAKE_KEY, max_retries=0)


def jsonl(*lines: dict) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def line(cid: str, body: dict | None = None, url: str = "/v1/chat/completions") -> dict:
    return {"custom_id": cid, "method": "POST", "url": url, "body": body or BODY}


def create(client, content: bytes):
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def statuses(client, batch_id: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        batch = client.batches.retrieve(batch_id)
        assert response_errors("Batch", batch.model_dump(exclude_unset=True)) == []
        out.append(batch.status)
    return out


def file_lines(client, file_id: str) -> list[dict]:
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_upload_retrieve_and_content(client, server):
    data = jsonl(line("a"), line("b"))
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes, uploaded.filename) == ("batch", len(data), "input.jsonl")
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == data
    assert server.uploads == 1
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="nonsense")  # type: ignore[arg-type]


def test_a_batch_goes_through_every_status_and_answers_each_line(client, server):
    batch = create(client, jsonl(line("a"), line("b")))
    assert batch.status == "validating" and batch.request_counts.total == 2
    assert response_errors("Batch", batch.model_dump(exclude_unset=True)) == []
    assert statuses(client, batch.id, 4) == ["in_progress", "finalizing", "completed", "completed"]
    done = client.batches.retrieve(batch.id)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 0) and not done.error_file_id
    out = file_lines(client, done.output_file_id)
    assert [x["custom_id"] for x in out] == ["a", "b"]
    for x in out:
        assert x["response"]["status_code"] == 200 and x["error"] is None
        assert response_errors("CreateChatCompletionResponse", x["response"]["body"]) == []
        assert x["response"]["body"]["choices"][0]["message"]["content"].startswith(
            "**Answer** from gpt-4o-mini"
        )
    assert len(server.batch_lines) == 2 and not server.chat_requests
    assert [b.id for b in client.batches.list()] == [batch.id]


@pytest.mark.allow_schema_errors
def test_lines_that_break_the_schema_or_are_refused_go_to_the_error_file(client, server):
    server.batch_line_error = lambda cid, body: "Refused on purpose." if cid == "c" else None
    bad = {**BODY, "max_completion_tokens": "many"}
    batch = create(client, jsonl(line("a"), line("b", bad), line("c")))
    statuses(client, batch.id, 3)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (
        1,
        2,
    )
    errors = {x["custom_id"]: x["response"] for x in file_lines(client, done.error_file_id)}
    assert (
        errors["b"]["status_code"] == 400
        and "max_completion_tokens" in errors["b"]["body"]["error"]["message"]
    )
    assert errors["c"]["body"]["error"]["message"] == "Refused on purpose."
    assert [x["custom_id"] for x in file_lines(client, done.output_file_id)] == ["a"]
    assert server.schema_errors and server.schema_errors[0][0] == "batch line b"


def test_an_expiring_batch_answers_some_lines_and_expires_the_rest(client, server):
    server.batch_outcome, server.expire_after = "expired", 1
    batch = create(client, jsonl(line("a"), line("b"), line("c")))
    assert statuses(client, batch.id, 2) == ["in_progress", "expired"]
    done = client.batches.retrieve(batch.id)
    assert done.expired_at and [x["custom_id"] for x in file_lines(client, done.output_file_id)] == ["a"]
    expired = file_lines(client, done.error_file_id)
    assert [(x["custom_id"], x["response"], x["error"]["code"]) for x in expired] == [
        ("b", None, "batch_expired"),
        ("c", None, "batch_expired"),
    ]


def test_a_failing_batch_and_a_malformed_input_file_fail_with_reasons(client, server):
    server.batch_outcome = "failed"
    batch = create(client, jsonl(line("a")))
    assert statuses(client, batch.id, 1) == ["failed"]
    assert client.batches.retrieve(batch.id).errors.data[0].code == "failed_on_request"
    server.batch_outcome = None
    batch = create(client, jsonl(line("a"), line("a"), line("b", url="/v1/embeddings")) + b"{not json\n")
    assert statuses(client, batch.id, 1) == ["failed"]
    codes = [e.code for e in client.batches.retrieve(batch.id).errors.data]
    assert codes == ["duplicate_custom_id", "invalid_url", "invalid_json_line"]
    server.batch_max_requests = 1
    batch = create(client, jsonl(line("a"), line("b")))
    statuses(client, batch.id, 1)
    assert client.batches.retrieve(batch.id).errors.data[0].code == "too_many_requests"


def test_cancel(client, server):
    batch = create(client, jsonl(line("a"), line("b")))
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    assert statuses(client, batch.id, 2) == ["cancelled", "cancelled"]
    done = client.batches.retrieve(batch.id)
    assert not done.output_file_id and not server.batch_lines
    assert {x["error"]["code"] for x in file_lines(client, done.error_file_id)} == {"batch_cancelled"}
    with pytest.raises(openai.ConflictError, match="cancelled"):
        client.batches.cancel(batch.id)


@pytest.mark.allow_schema_errors
def test_a_create_request_outside_the_schema_is_refused(client, server):
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(jsonl(line("a")))), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="48h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert server.batches_created == 2 and not server.store.batches


def test_batch_steps_slow_the_progression(client, server):
    server.batch_steps = 2
    batch = create(client, jsonl(line("a")))
    assert statuses(client, batch.id, 4) == ["validating", "in_progress", "in_progress", "finalizing"]
