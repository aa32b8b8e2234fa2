"""``RecordedRequest``: one HTTP request as the server received it (``OpenAIServer.requests``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .urls import CHAT_PATH, RESPONSES_PATH


@dataclass
class RecordedRequest:
    """One HTTP request as the server received it."""

    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None (no body / not JSON)
    raw: bytes
    time: float  # time.time() when the request line and body had been read
    monotonic: float = 0.0  # time.monotonic() at the same moment
    query: dict[str, str] = field(default_factory=dict)
    deployment: str | None = None  # Azure-style path's deployment name
    images: list[dict] = field(default_factory=list)  # see inspect_images()
    fault: str | None = None  # kind of the injected fault, if any
    status: int | None = None  # HTTP status sent (None: connection closed without a response)
    error: str | None = None  # error code of a 4xx the server produced itself (schema_validation, ...)
    client: tuple = ()  # (host, port) of the client socket: same port = same keep-alive connection

    @property
    def is_chat(self) -> bool:
        """A question: a chat completion request, or a Responses API one (see ``is_responses``)."""
        return self.method == "POST" and (
            CHAT_PATH.fullmatch(self.path) is not None or RESPONSES_PATH.fullmatch(self.path) is not None
        )

    @property
    def is_responses(self) -> bool:
        return self.method == "POST" and RESPONSES_PATH.fullmatch(self.path) is not None

    def answered(self, status: int | None, error: str | None = None) -> None:
        """Note the status sent (None: closed without a response) and the server's own error code, if any."""
        self.status = status
        if error:
            self.error = error
