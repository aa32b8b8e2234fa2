"""``OpenAIServer``: the server's settings, its recordings, its fault queue, and starting and stopping it."""

from __future__ import annotations

import collections
import contextlib
import copy
import itertools
import os
import random
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .behaviours import BEHAVIOUR_DEFAULTS, check_setting, preset
from .faults import Fault, make_faults, random_fault
from .handler import Handler
from .recording import RecordedRequest
from .schema import chat_request_errors, find_schema_dir, request_errors, responses_request_errors
from .transport import HTTPServer

DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "gpt-5.4", "gpt-5.5")
DEFAULT_ORIGINAL_MODELS = frozenset({"gpt-5.4", "gpt-5.5"})

_SETTINGS = (
    "reply",
    "latency",
    "chunk_size",
    "chunk_delay",
    "empty_first_chunk",
    "original_models",
    "fault_rate",
    "retry_after",
    "seed",
    "models",
    "finish_reason",
    "refusal",
    "no_choices",
    *BEHAVIOUR_DEFAULTS,
)


class OpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 in a daemon thread. See the package docstring.

    Settings (plain attributes; ``reset()`` restores the constructor's values):
      reply              None (default_reply), a string, or a callable ``(body) -> str``
      latency            seconds slept before answering each chat request
      chunk_size         characters per streamed content chunk
      chunk_delay        seconds between streamed chunks
      empty_first_chunk  stream a first chunk with ``choices: []``
      original_models    models for which image ``detail: "original"`` is accepted
      fault_rate         None or ``(probability, status_code_or_fault_kind)``: random faults
      retry_after        Retry-After header value of random status faults
      seed               seed of the random-fault generator
      models             ids listed by ``GET /v1/models``
      finish_reason      finish_reason of successful answers
      refusal            None, or the words of a refusal (``message.refusal`` / ``delta.refusal``, no content)
      no_choices         answer with ``choices: []``

    Behaviours copying other servers (``done``, ``usage_on_finish``, ``usage_chunk_choices``, ``detail``,
    ``response_format``, ``webp_rejected``, ``error_shape``, ``unknown_model``, ``body_limit``): see
    :mod:`fake_openai.behaviours`; ``behaviour="llamacpp"`` (or ``behave("llamacpp")``) sets a preset.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reply: str | Callable[[dict], str] | None = None,
        latency: float = 0.0,
        chunk_size: int = 8,
        chunk_delay: float = 0.0,
        empty_first_chunk: bool = False,
        original_models: set[str] | frozenset[str] = DEFAULT_ORIGINAL_MODELS,
        fault_rate: tuple[float, int | str] | None = None,
        retry_after: str = "0",
        seed: int = 0,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        finish_reason: str = "stop",
        refusal: str | None = None,
        no_choices: bool = False,
        schema_dir: str | os.PathLike | None = None,
        verbose: bool = False,
        behaviour: str | None = None,
        **switches: Any,
    ):
        self.host = host
        self.port = port
        self.schema_dir = Path(schema_dir) if schema_dir else find_schema_dir()
        self.verbose = verbose
        self._defaults = {
            "reply": reply,
            "latency": latency,
            "chunk_size": chunk_size,
            "chunk_delay": chunk_delay,
            "empty_first_chunk": empty_first_chunk,
            "original_models": set(original_models),
            "fault_rate": fault_rate,
            "retry_after": retry_after,
            "seed": seed,
            "models": list(models),
            "finish_reason": finish_reason,
            "refusal": refusal,
            "no_choices": no_choices,
            **(preset(behaviour) if behaviour else BEHAVIOUR_DEFAULTS),
        }
        unknown = set(switches) - set(BEHAVIOUR_DEFAULTS)
        if unknown:
            raise TypeError(f"OpenAIServer() got unexpected settings {sorted(unknown)}")
        for name, value in switches.items():
            check_setting(name, value)
            self._defaults[name] = value
        self._lock = threading.Lock()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: dict[socket.socket, tuple] = {}  # open connection -> the client's (host, port)
        self._wake = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.schema_errors: list[tuple[str, list[str]]] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._apply_defaults()
        # Fail early if the schema directory is unusable, and build the (cached) validator now: the first
        # validation costs ~0.5 s, which would otherwise land on the first request of a test.
        request_errors({}, self.schema_dir)

    # -- settings and recordings -----------------------------------------------------------------

    def _apply_defaults(self):
        for name in _SETTINGS:
            setattr(self, name, copy.deepcopy(self._defaults[name]))
        self._rng = random.Random(self.seed)
        self._counter = itertools.count(1)

    def reset(self) -> None:
        """Forget recordings and queued faults, restore settings, wake (and abort) hung requests."""
        with self._lock:
            self.requests.clear()
            self.schema_errors.clear()
            self._faults.clear()
            old, self._wake = self._wake, threading.Event()
            self._apply_defaults()
        old.set()

    def behave(self, name: str, **switches: Any) -> None:
        """Act like the server ``name`` (a preset of :mod:`fake_openai.behaviours`), plus ``switches``, until
        ``reset()``."""
        settings = {**preset(name), **switches}
        for key, value in settings.items():
            if key not in BEHAVIOUR_DEFAULTS:
                raise TypeError(f"unknown behaviour switch {key!r}")
            check_setting(key, value)
        with self._lock:
            for key, value in settings.items():
                setattr(self, key, value)

    def _record(self, record: RecordedRequest) -> str:
        """Append ``record`` to ``requests``; its request id (``req_vmtest_N``)."""
        with self._lock:
            self.requests.append(record)
            return f"req_vmtest_{next(self._counter)}"

    def _schema_error(self, path: str, errors: list[str]) -> None:
        with self._lock:
            self.schema_errors.append((path, list(errors)))

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded chat completion requests (a snapshot)."""
        with self._lock:
            return [r for r in self.requests if r.is_chat]

    @property
    def last(self) -> RecordedRequest:
        """The most recent chat completion request."""
        chats = self.chat_requests
        if not chats:
            raise LookupError("the server has not received any chat completion request")
        return chats[-1]

    def validate_request(self, body: Any) -> list[str]:
        """Schema errors of a chat request body, with ``detail: "original"`` allowed for ``original_models``
        (see ``chat_request_errors``)."""
        return chat_request_errors(body, self.schema_dir, self.original_models)

    def validate_responses_request(self, body: Any) -> list[str]:
        """Schema errors of a Responses API request body (see ``responses_request_errors``)."""
        return responses_request_errors(body, self.schema_dir)

    # -- faults ----------------------------------------------------------------------------------

    def add_fault(self, kind: str, *, status: int | None = None, times: int = 1, **kw: Any) -> None:
        """Queue ``times`` faults of ``kind`` for the next chat requests (consumed in order); the kinds and
        their keyword arguments are listed in :mod:`fake_openai.faults`."""
        faults = make_faults(kind, status, times, kw)
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _next_fault(self) -> Fault | None:
        """The next queued fault, else a random one (``fault_rate``), else None."""
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.fault_rate is None:
                return None
            probability, what = self.fault_rate
            if self._rng.random() >= probability:
                return None
        return random_fault(what, self.retry_after)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (e.g. an Azure endpoint)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (what ``OPENAI_BASE_URL`` should be)."""
        return f"{self.root_url}/v1"

    def start(self) -> OpenAIServer:
        if self._httpd is not None:
            return self
        self._wake = threading.Event()
        httpd = HTTPServer((self.host, self.port), Handler, self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even with hung or streaming requests in flight."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._wake.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=2)

    def _track(self, conn: socket.socket, add: bool, client: tuple = ()) -> None:
        with self._lock:
            if add:
                self._conns[conn] = client
            else:
                self._conns.pop(conn, None)

    @property
    def open_clients(self) -> set[tuple]:
        """The ``(host, port)`` of every client connection open now (idle keep-alive ones included); compare
        with ``RecordedRequest.client`` to see whether a client closed its connections."""
        with self._lock:
            return set(self._conns.values())

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<OpenAIServer {self.base_url} {state}, {len(self.requests)} request(s)>"
