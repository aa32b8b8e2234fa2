"""HTTP plumbing under the OpenAI endpoints: the threading HTTP server, connection tracking, reading request
bodies (also chunked), and writing JSON responses and chunked SSE streams."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import OpenAIServer


class Abort(Exception):
    """Close the connection now, without (the rest of) a response."""


class HTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its ``OpenAIServer`` (``owner``) and ignores vanished clients."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog (socketserver's default of 5 resets bursts of connections)

    def __init__(self, address, handler, owner: OpenAIServer):
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), which may do a (slow) reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away, socket shut down by stop(), ...
            return
        super().handle_error(request, client_address)


class HTTPConnection(BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1, keep-alive). Subclasses implement ``route()``.

    ``route()`` may raise ``Abort`` to shut the socket down without (the rest of) a response.
    """

    protocol_version = "HTTP/1.1"
    server_version = "vision-magic-test-openai/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections

    server: HTTPServer
    request_id = ""  # x-request-id of the current request (set by route())

    def route(self) -> None:
        raise NotImplementedError

    # -- connection lifecycle --------------------------------------------------------------------

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection, True, tuple(self.client_address[:2]))

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self.connection, False)

    def handle(self):
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        if self.server.owner.verbose:
            sys.stderr.write(f"[fake_openai] {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._guarded()

    def do_POST(self):
        self._guarded()

    def do_PUT(self):
        self._guarded()

    def do_DELETE(self):
        self._guarded()

    def do_PATCH(self):
        self._guarded()

    def _guarded(self):
        try:
            self.route()
        except Abort:
            self._hard_close()
        except OSError:
            self.close_connection = True

    def _hard_close(self):
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def wait(self, wake: threading.Event, seconds: float) -> None:
        """Sleep; raise ``Abort`` if reset()/stop() interrupt the sleep (they set ``wake``)."""
        if wake.wait(seconds):
            raise Abort

    # -- reading ---------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body; ``Abort`` when the client closes the connection before sending all of it (a
        cancelled request): like a real server, the cut-off request is then neither recorded nor answered."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self._read_exactly(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exactly(length) if length > 0 else b""

    def _read_exactly(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise Abort
        return data

    # -- writing ---------------------------------------------------------------------------------

    def send(self, status: int, payload: bytes, content_type: str, *, headers: dict | None = None):
        """A whole response with ``Content-Length`` (and ``Connection: close`` if the connection ends)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:  # tell the client not to reuse the connection
            self.send_header("Connection", "close")
        self._common_headers(headers)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def send_json(self, status: int, obj: Any, headers: dict | None = None):
        self.send(status, json.dumps(obj).encode("utf-8"), "application/json", headers=headers)

    def send_head_and_part(self, payload: bytes, part: bytes) -> None:
        """A 200 JSON head announcing ``payload``'s length, then only ``part`` of the body."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self._common_headers(None)
        self.end_headers()
        self.wfile.write(part)
        self.wfile.flush()

    def _common_headers(self, headers: dict | None):
        self.send_header("x-request-id", self.request_id)
        self.send_header("openai-processing-ms", "1")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))

    def start_sse(self, close: bool = False, content_type: str = "text/event-stream; charset=utf-8"):
        """The head of a chunked ``text/event-stream`` response (``content_type``: what it claims to be)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if close:
            self.send_header("Connection", "close")
        self._common_headers(None)
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def write_event(self, obj: Any):
        self.write_chunk(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def end_sse_with_done(self):
        # [DONE] and the end of the chunked body in one write, so a client that stops reading
        # at [DONE] usually has the whole message and can keep the connection alive
        self.wfile.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
        self.wfile.flush()
