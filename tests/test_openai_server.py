"""Tests of the OpenAI-compatible test server itself (fake_openai), through the official openai SDK over real
HTTP."""

from __future__ import annotations

import base64
import filecmp
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

try:  # the openai SDK's own HTTP client (httpx2 in openai 3.x, httpx before)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx
from server_fixtures import FAKE_KEY

from fake_openai import (
    VENDORED_SCHEMA_DIR,
    OpenAIServer,
    default_reply,
    find_schema_dir,
    request_errors,
    response_errors,
    usage_for,
)

TESTS_DIR = Path(__file__).resolve().parent
SHARED_SCHEMA_DIR = TESTS_DIR.parent.parent / "shared" / "openai-schema"

# 1x1 transparent PNG
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def data_url(payload: bytes = PNG_1PX, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def user(text: str, *images: str, detail: str | None = None) -> list[dict]:
    parts: list[dict] = [{"type": "text", "text": text}]
    for url in images:
        image_url = {"url": url} if detail is None else {"url": url, "detail": detail}
        parts.append({"type": "image_url", "image_url": image_url})
    return [{"role": "user", "content": parts}]


def client(server, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    return openai.OpenAI(base_url=server.base_url, api_key=FAKE_KEY, **kw)


def raw_request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request with http.client: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {FAKE_KEY}", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sse_events(payload: bytes) -> list[str]:
    """The data: lines of an SSE body, in order."""
    return [
        line[len("data: ") :] for line in payload.decode("utf-8").split("\n\n") if line.startswith("data: ")
    ]


# --------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------


def test_streaming_assembles_default_answer(server):
    messages = user("What is in this picture?", data_url())
    stream = client(server).chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    chunks = list(stream)

    body = {"model": "gpt-4o", "messages": messages}
    expected = default_reply(body)
    assert expected.startswith("**Answer** from gpt-4o: I see 1 image(s).")
    assert "You asked: What is in this picture?" in expected and "\\(E = mc^2\\)" in expected

    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks), "no usage chunk without include_usage"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == expected
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(pieces) == -(-len(expected) // 8)  # chunk_size 8 by default
    assert all(len(p) == 8 for p in pieces[:-1])
    assert len({c.id for c in chunks}) == 1

    rec = server.last
    assert rec.path == "/v1/chat/completions" and rec.status == 200 and rec.fault is None
    assert rec.body["stream"] is True
    assert rec.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert rec.images == [{"url_kind": "data", "mime": "image/png", "bytes": len(PNG_1PX), "detail": None}]


def test_usage_chunk_only_with_include_usage(server):
    messages = user("Describe.", data_url(), data_url())
    stream = client(server).chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected_usage = usage_for({"messages": messages}, text)
    assert last.usage.prompt_tokens == 10 + len("Describe.") // 4 + 2 * 85 == expected_usage["prompt_tokens"]
    assert last.usage.completion_tokens == len(text.split())
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_non_streaming_json_validates(server):
    messages = user("Count the cats.", data_url())
    raw = client(server).chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=messages)
    assert raw.headers["content-type"] == "application/json"
    assert int(raw.headers["content-length"]) == len(raw.content)
    obj = json.loads(raw.content)
    assert response_errors("CreateChatCompletionResponse", obj) == []
    assert request_errors(obj, schema="CreateChatCompletionResponse") == []  # strict validator agrees
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4.1-mini"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == default_reply(
        {"model": "gpt-4.1-mini", "messages": messages}
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 10 + len("Count the cats.") // 4 + 85
    assert completion.usage.completion_tokens == len(completion.choices[0].message.content.split())


def test_stream_chunks_validate_against_schema(server):
    server.empty_first_chunk = True
    body = {
        "model": "gpt-4o",
        "messages": user("Hi", data_url()),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, payload = raw_request(server, "POST", "/v1/chat/completions", json.dumps(body).encode())
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    events = sse_events(payload)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert response_errors("CreateChatCompletionStreamResponse", chunk) == [], chunk
    assert chunks[0]["choices"] == [] and chunks[0]["usage"] is None  # the empty first chunk
    assert chunks[1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    # The bundle keeps OpenAPI 3.0's "nullable": the strict validator rejects the real wire shape.
    strict = request_errors(chunks[2], schema="CreateChatCompletionStreamResponse")
    assert any("finish_reason" in e for e in strict)


def test_stream_arrives_incrementally(server):
    server.chunk_delay = 0.05
    server.reply = "abcdefgh" * 6  # 6 content chunks
    stream = client(server).chat.completions.create(model="gpt-4o", messages=user("x"), stream=True)
    arrivals = []
    start = time.monotonic()
    for chunk in stream:
        arrivals.append(time.monotonic() - start)
        if chunk.choices and chunk.choices[0].delta.content:
            assert chunk.choices[0].delta.content == "abcdefgh"
    assert len(arrivals) == 8  # role, 6 pieces, finish
    assert arrivals[-1] >= 7 * 0.05 * 0.9
    assert arrivals[1] < arrivals[-1] - 0.2, "chunks must not be buffered until the end"


def test_chinese_prompt_echoed_byte_for_byte(server):
    prompt = "这张图片里有什么？请用中文回答。\n第二行：猫🐱, “引号” and ‘quotes’ — ok?"
    completion = client(server).chat.completions.create(model="gpt-4o", messages=user(prompt, data_url()))
    content = completion.choices[0].message.content
    assert f"You asked: {prompt}\n\n".encode() in content.encode("utf-8")
    stream = client(server).chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert f"You asked: {prompt}\n\n" in streamed
    assert server.last.body["messages"][0]["content"][0]["text"] == prompt


def test_reply_setting_string_and_callable(server):
    c = client(server)
    server.reply = "fixed text"
    assert (
        c.chat.completions.create(model="gpt-4o", messages=user("a")).choices[0].message.content
        == "fixed text"
    )
    server.reply = lambda body: f"{len(body['messages'])} message(s) for {body['model']}"
    out = c.chat.completions.create(model="gpt-5.4", messages=user("a"))
    assert out.choices[0].message.content == "1 message(s) for gpt-5.4"
    server.reset()
    assert server.reply is None
    assert (
        c.chat.completions.create(model="gpt-4o", messages=user("a"))
        .choices[0]
        .message.content.startswith("**Answer**")
    )


def test_keep_alive_reuses_connection(server):
    c = client(server)
    for _ in range(3):
        c.chat.completions.create(model="gpt-4o", messages=user("a"))
    assert len({r.client for r in server.requests}) == 1
    # A fully read SSE body (chunked) leaves the connection reusable too. (The sync openai Stream stops
    # reading at [DONE] and closes the response, so the SDK itself opens a new connection per stream.)
    server.reset()
    body = {"model": "gpt-4o", "messages": user("a"), "stream": True}
    with httpx.Client(timeout=10) as http:
        for _ in range(3):
            with http.stream("POST", f"{server.base_url}/chat/completions", json=body) as resp:
                assert sse_events(resp.read())[-1] == "[DONE]"
        assert (
            http.post(f"{server.base_url}/chat/completions", json={**body, "stream": False}).status_code
            == 200
        )
    assert len({r.client for r in server.requests}) == 1
    server.reset()
    for _ in range(3):  # and the SDK copes with the connection churn
        assert "".join(
            ch.choices[0].delta.content or "" for ch in c.chat.completions.create(**body)
        ).startswith("**Answer**")


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.allow_schema_errors
def test_invalid_body_rejected_and_recorded(server):
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=[{"content": "no role here"}])
    assert info.value.status_code == 400
    assert info.value.code == "schema_validation"
    assert info.value.type == "invalid_request_error"
    assert "messages/0" in info.value.message
    assert len(server.schema_errors) == 1
    path, errors = server.schema_errors[0]
    assert path == "/v1/chat/completions" and errors and errors[0].startswith("messages/0")
    assert server.last.status == 400 and server.last.error == "schema_validation"


@pytest.mark.allow_schema_errors
def test_invalid_json_rejected(server):
    status, _, payload = raw_request(server, "POST", "/v1/chat/completions", b'{"model": "gpt-4o", ')
    assert status == 400
    assert json.loads(payload)["error"]["code"] == "schema_validation"
    assert server.schema_errors and "not valid JSON" in server.schema_errors[0][1][0]
    assert server.last.body is None and server.last.raw == b'{"model": "gpt-4o", '


def test_original_detail_accepted_for_gpt_5_4(server):
    messages = user("Read the small print.", data_url(), detail="original")
    out = client(server).chat.completions.create(model="gpt-5.4", messages=messages)
    assert "I see 1 image(s)" in out.choices[0].message.content
    assert server.last.images[0]["detail"] == "original"
    assert server.last.body["messages"][0]["content"][1]["image_url"]["detail"] == "original"  # not rewritten


@pytest.mark.allow_schema_errors
def test_original_detail_rejected_for_gpt_4o(server):
    messages = user("Read the small print.", data_url(), detail="original")
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=messages)
    assert info.value.code == "schema_validation"
    assert len(server.schema_errors) == 1
    server.original_models = {"gpt-4o"}
    client(server).chat.completions.create(model="gpt-4o", messages=messages)
    assert len(server.schema_errors) == 1


def test_images_recorded(server):
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 100
    messages = user(
        "Compare.", data_url(), data_url(jpeg, "image/jpeg"), "https://example.com/cat.webp", detail="low"
    )
    client(server).chat.completions.create(model="gpt-4o", messages=messages)
    assert server.last.images == [
        {"url_kind": "data", "mime": "image/png", "bytes": len(PNG_1PX), "detail": "low"},
        {"url_kind": "data", "mime": "image/jpeg", "bytes": 104, "detail": "low"},
        {
            "url_kind": "http",
            "mime": None,
            "bytes": None,
            "detail": "low",
            "url": "https://example.com/cat.webp",
        },
    ]
    assert sum(i["bytes"] or 0 for i in server.last.images) == len(PNG_1PX) + 104


def test_large_image_is_quick(server):
    payload = os.urandom(8_000_000)
    start = time.monotonic()
    client(server).chat.completions.create(
        model="gpt-4o", messages=user("big", data_url(payload, "image/webp"))
    )
    assert time.monotonic() - start < 3
    assert server.last.images[0]["bytes"] == 8_000_000 and server.last.images[0]["mime"] == "image/webp"


@pytest.mark.parametrize(
    "url",
    [
        data_url(b"BM" + b"\0" * 60, "image/bmp"),
        data_url(mime="image/jpg"),
        "data:image/png;base64,not*base64!",
        "data:image/png;base64," + base64.encodebytes(PNG_1PX * 3).decode(),  # line-wrapped base64
        "data:image/png,rawbytes",
    ],
    ids=["bmp", "jpg-mime", "garbage", "wrapped", "not-base64"],
)
def test_bad_data_urls_rejected(server, url):
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=user("x", url))
    assert info.value.code == "invalid_image_format"
    assert server.last.error == "invalid_image_format"
    assert server.schema_errors == []  # a bad image is not a schema error


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


def test_fault_status_with_headers(server):
    server.add_fault("status", status=429, headers={"Retry-After": "1"}, message="slow down")
    with pytest.raises(openai.RateLimitError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.message.endswith("slow down")
    assert info.value.code == "rate_limit_exceeded"
    assert server.last.fault == "status" and server.last.status == 429
    # consumed: the next request succeeds
    assert client(server).chat.completions.create(model="gpt-4o", messages=user("a")).choices


def test_fault_status_retried_by_sdk(server):
    server.add_fault("status", status=503, times=2, headers={"Retry-After": "0.01"})
    out = client(server, max_retries=2).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert out.choices[0].finish_reason == "stop"
    assert [r.fault for r in server.chat_requests] == ["status", "status", None]
    assert [r.status for r in server.chat_requests] == [503, 503, 200]


def test_fault_html(server):
    server.add_fault("html", status=502)
    with pytest.raises(openai.InternalServerError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert info.value.status_code == 502
    assert info.value.response.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in info.value.response.text
    assert server.last.fault == "html"


def test_fault_drop_truncates_stream(server):
    server.add_fault("drop", after=3)
    chunks = []
    with pytest.raises(openai.APIConnectionError):
        stream = client(server).chat.completions.create(
            model="gpt-4o", messages=user("a"), stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            chunks.append(chunk)
    assert len(chunks) == 4  # role chunk + 3 content chunks
    assert all(c.choices and c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert server.last.fault == "drop"


def test_fault_drop_non_streaming(server):
    server.add_fault("drop")
    with pytest.raises(openai.APIConnectionError):
        client(server).chat.completions.create(model="gpt-4o", messages=user("a"))


def test_fault_malformed_stream(server):
    server.add_fault("malformed", after=2)
    chunks = []
    with pytest.raises(json.JSONDecodeError):
        for chunk in client(server).chat.completions.create(model="gpt-4o", messages=user("a"), stream=True):
            chunks.append(chunk)
    assert len(chunks) == 3
    # the server closed that connection; the client recovers on a new one
    assert client(server).chat.completions.create(model="gpt-4o", messages=user("a")).choices


def test_fault_malformed_raw_wire(server):
    server.add_fault("malformed", after=1)
    body = json.dumps({"model": "gpt-4o", "messages": user("a"), "stream": True}).encode()
    status, headers, payload = raw_request(server, "POST", "/v1/chat/completions", body)
    assert status == 200 and headers["connection"] == "close"
    events = sse_events(payload)
    assert len(events) == 3 and events[-1] == "{not json"
    assert "[DONE]" not in events


def test_fault_hang_times_out_client(server):
    server.add_fault("hang")
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.4).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert 0.35 <= time.monotonic() - start < 5
    assert server.last.fault == "hang"


def test_fault_hang_short_then_answers(server):
    server.add_fault("hang", seconds=0.2)
    start = time.monotonic()
    out = client(server).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert time.monotonic() - start >= 0.2
    assert out.choices[0].message.content.startswith("**Answer**")


def test_fault_close(server):
    server.add_fault("close")
    with pytest.raises(openai.APIConnectionError):
        client(server).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert server.last.fault == "close" and server.last.status is None


def test_faults_consumed_in_order(server):
    server.add_fault("status", status=500)
    server.add_fault("html", status=503, times=2)
    c = client(server)
    outcomes = []
    for _ in range(4):
        try:
            c.chat.completions.create(model="gpt-4o", messages=user("a"))
            outcomes.append(200)
        except openai.APIStatusError as exc:
            outcomes.append(exc.status_code)
    assert outcomes == [500, 503, 503, 200]
    assert server.pending_faults == 0


def test_add_fault_rejects_typos(server):
    with pytest.raises(ValueError):
        server.add_fault("explode")
    with pytest.raises(TypeError):
        server.add_fault("drop", afer=2)
    assert server.pending_faults == 0


def test_random_faults_are_seeded(server):
    def run():
        c = client(server)
        pattern = []
        for _ in range(30):
            try:
                c.chat.completions.create(model="gpt-4o", messages=user("a"))
                pattern.append(0)
            except openai.RateLimitError as exc:
                assert exc.response.headers["retry-after"] == "0"
                pattern.append(1)
        return pattern

    server.fault_rate = (0.3, 429)
    first = run()
    assert 0 < sum(first) < 30
    assert sum(r.fault == "status" for r in server.requests) == sum(first)
    server.reset()
    server.fault_rate = (0.3, 429)
    assert run() == first


def test_latency_applied(server):
    server.latency = 0.3
    start = time.monotonic()
    client(server).chat.completions.create(model="gpt-4o", messages=user("a"))
    assert time.monotonic() - start >= 0.3


# --------------------------------------------------------------------------------------------------
# Paths and lifecycle
# --------------------------------------------------------------------------------------------------


def test_azure_path(server):
    azure = openai.AzureOpenAI(
        azure_endpoint=server.root_url,
        api_key=FAKE_KEY,
        api_version="2024-10-21",
        azure_deployment="my-vision",
        max_retries=0,
    )
    out = azure.chat.completions.create(model="gpt-4o", messages=user("azure?", data_url()))
    assert out.choices[0].message.content.startswith("**Answer** from gpt-4o: I see 1 image(s).")
    rec = server.last
    assert rec.path == "/openai/deployments/my-vision/chat/completions"
    assert rec.query == {"api-version": "2024-10-21"}
    assert rec.deployment == "my-vision"
    assert rec.headers["api-key"] == FAKE_KEY


def test_azure_body_without_model_uses_deployment(server):
    body = json.dumps({"messages": user("no model")}).encode()
    status, _, payload = raw_request(
        server, "POST", "/openai/deployments/dep1/chat/completions?api-version=x", body
    )
    assert status == 200
    assert json.loads(payload)["model"] == "dep1"


def test_path_without_v1(server):
    c = openai.OpenAI(base_url=server.root_url, api_key=FAKE_KEY, max_retries=0)
    assert c.chat.completions.create(model="gpt-4o", messages=user("a")).choices
    assert server.last.path == "/chat/completions"


def test_models_and_unknown_path(server):
    ids = [m.id for m in client(server).models.list()]
    assert "gpt-4o" in ids and "gpt-5.4" in ids
    assert client(server).models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve("no-such-model")
    status, headers, payload = raw_request(server, "POST", "/v1/embeddings", b"{}")
    assert status == 404 and headers["content-type"] == "application/json"
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "POST /v1/embeddings" in error["message"]
    assert server.chat_requests == []


def test_reset_clears_state(server):
    server.add_fault("status", status=500)
    server.latency = 5
    server.chunk_size = 3
    client(server).models.list()
    server.reset()
    assert server.requests == [] and server.schema_errors == [] and server.pending_faults == 0
    assert server.latency == 0 and server.chunk_size == 8 and server.fault_rate is None
    assert server.original_models == {"gpt-5.4", "gpt-5.5"}


def test_stop_returns_promptly_with_hung_and_streaming_requests():
    srv = OpenAIServer().start()
    srv.add_fault("hang", seconds=60)
    results = {}

    def hung():
        try:
            client(srv, timeout=30).chat.completions.create(model="gpt-4o", messages=user("a"))
        except Exception as exc:
            results["hung"] = exc

    def streaming():
        try:
            stream = client(srv, timeout=30).chat.completions.create(
                model="gpt-4o", messages=user("b"), stream=True
            )
            results["chunks"] = sum(1 for _ in stream)
        except Exception as exc:
            results["stream"] = exc

    t1 = threading.Thread(target=hung, daemon=True)
    t1.start()
    deadline = time.monotonic() + 5
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.chunk_delay = 30
    t2 = threading.Thread(target=streaming, daemon=True)
    t2.start()
    while len(srv.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 2
    t1.join(3)
    t2.join(3)
    assert not t1.is_alive() and not t2.is_alive()
    assert isinstance(results.get("hung"), openai.APIConnectionError)
    assert "stream" in results or results.get("chunks", 99) < 3
    srv.stop()  # idempotent


def test_context_manager_and_restart():
    with OpenAIServer() as srv:
        assert srv.running and srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        assert client(srv).chat.completions.create(model="gpt-4o", messages=user("a")).choices
    assert not srv.running


def test_script_mode_prints_base_url():
    proc = subprocess.Popen(
        [sys.executable, "-m", "fake_openai", "--latency", "0.01"],
        cwd=TESTS_DIR.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        c = openai.OpenAI(base_url=base_url, api_key=FAKE_KEY, max_retries=0, timeout=10)
        assert c.chat.completions.create(model="gpt-4o", messages=user("a")).choices
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


# --------------------------------------------------------------------------------------------------
# Schema location
# --------------------------------------------------------------------------------------------------


def test_schema_dir_env_override(monkeypatch):
    monkeypatch.setenv("VISION_MAGIC_SCHEMA_DIR", str(VENDORED_SCHEMA_DIR))
    assert find_schema_dir() == VENDORED_SCHEMA_DIR
    with OpenAIServer() as srv:
        assert srv.schema_dir == VENDORED_SCHEMA_DIR
        with pytest.raises(openai.BadRequestError):
            client(srv).chat.completions.create(model="gpt-4o", messages=[{"content": "x"}])
        assert len(srv.schema_errors) == 1


def test_vendored_schema_matches_shared():
    names = ["LICENSE", "openai-chat-schemas.json", "validate.py"]
    for name in names:
        assert (VENDORED_SCHEMA_DIR / name).is_file()
    if not SHARED_SCHEMA_DIR.is_dir():
        pytest.skip("no ../shared/openai-schema next to this clone")
    _, mismatch, errors = filecmp.cmpfiles(SHARED_SCHEMA_DIR, VENDORED_SCHEMA_DIR, names, shallow=False)
    assert mismatch == [] and errors == []
    if "VISION_MAGIC_SCHEMA_DIR" not in os.environ:
        assert find_schema_dir() == SHARED_SCHEMA_DIR


def test_a_request_cut_off_by_the_client_is_not_recorded(server):
    """A client that closes the connection mid-body (a cancelled request) sent no request: nothing is
    recorded or validated, and the server goes on serving."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"model": "gpt-4o", '
        )
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1024) == b"", "the server answered a cut-off request"
    assert server.requests == [] and server.schema_errors == []
    body = {"model": "gpt-4o", "messages": user("Still there?", data_url())}
    status, _, _ = raw_request(server, "POST", "/v1/chat/completions", json.dumps(body).encode())
    assert status == 200 and len(server.chat_requests) == 1
