"""Download an image URL for servers that cannot fetch links themselves: size cap, total deadline, type check.

The standard library only. The time limit is a total deadline, not a per-read timeout (``urllib``'s restarts
with every byte, so a server sending a byte every few seconds would keep the cell busy for ever): each
connection gets the time that is left, the body is read in chunks with the clock checked between reads, and
when time runs out a watchdog shuts the download's sockets, which also ends a server trickling its headers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from ..errors import SourceError

DEFAULT_INLINE_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_INLINE_TIMEOUT = 15.0
CHUNK_BYTES = 64 * 1024


class Deadline:
    """The total time one download may take: it gives every socket the download opens the time that is left,
    and shuts them when it runs out (while it is entered as a context manager).

    Examples
    --------
    >>> with Deadline(5.0) as d:
    ...     0 < d.remaining() <= 5.0, d.expired
    (True, False)
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.received = 0  # body bytes so far, for the message
        self.sockets: list[socket.socket] = []
        self.cut = False
        self._timer = threading.Timer(max(seconds, 0.0), self._shut)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.cut or self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        """Count ``sock`` as one of this download's sockets (shut at the deadline) and limit its reads."""
        self.sockets.append(sock)
        self.tighten()

    def tighten(self) -> None:
        """Set every socket's timeout to the time that is left, so no single read outlasts the deadline."""
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.settimeout(max(self.remaining(), 0.001))

    def error(self, label: str) -> SourceError:
        """The one line for a download that ran out of time."""
        return SourceError(
            label,
            f"downloading the image took longer than {self.seconds:g} s in total ({self.received:,} bytes "
            "received); raise inline_timeout in VisionMagic.endpoints or download it yourself",
        )

    def _shut(self) -> None:
        self.cut = True
        for sock in list(self.sockets):  # the plain socket's shutdown (also under TLS) wakes a blocked read
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def download(url: str, label: str, max_bytes: int, timeout: float) -> bytes:
    """The bytes at ``url``, refusing non-images, bodies over ``max_bytes`` and downloads that take longer
    than ``timeout`` seconds in total (one line each)."""
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "vision-magic", "Accept": "image/*"})
    with Deadline(timeout) as deadline:
        try:
            with _opener(deadline).open(request, timeout=timeout) as resp:
                ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
                    raise SourceError(label, f"the URL returned {ctype}, not an image")
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    raise SourceError(
                        label, f"the image is {int(length) / 1e6:.1f} MB, over the inline limit"
                    )
                data = _read_body(resp, deadline, max_bytes, label)
        except SourceError:
            raise
        except urllib.error.HTTPError as e:
            raise SourceError(label, f"downloading the image failed: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None)
            if deadline.expired or isinstance(e, TimeoutError) or isinstance(reason, TimeoutError):
                raise deadline.error(label) from None  # every socket timeout here is the deadline's
            reason = reason or f"{type(e).__name__}: {e}"
            raise SourceError(label, f"downloading the image failed ({reason})") from None
    if len(data) > max_bytes:
        raise SourceError(
            label,
            f"the image is over the inline limit of {max_bytes / 1e6:.1f} MB "
            "(raise inline_max_bytes in VisionMagic.endpoints)",
        )
    return data


def _read_body(resp: Any, deadline: Deadline, max_bytes: int, label: str) -> bytes:
    """Up to ``max_bytes + 1`` bytes of the body, one system call at a time, within ``deadline``."""
    chunks = []
    while deadline.received <= max_bytes:
        if deadline.expired:
            raise deadline.error(label)
        deadline.tighten()
        chunk = resp.read1(CHUNK_BYTES)
        if not chunk:  # the end, or the watchdog shut the socket
            if deadline.expired:
                raise deadline.error(label)
            break
        chunks.append(chunk)
        deadline.received += len(chunk)
    return b"".join(chunks)


def _opener(deadline: Deadline) -> Any:
    """A ``urllib`` opener for http(s) only whose every connection is watched by ``deadline``."""
    import http.client
    import urllib.request

    def watched(base: type) -> type:
        class Watched(base):  # type: ignore[valid-type, misc]
            def connect(self) -> None:
                self.timeout = max(deadline.remaining(), 0.001)
                super().connect()
                deadline.watch(self.sock)

        return Watched

    class Handler(urllib.request.HTTPSHandler):
        http_request = urllib.request.AbstractHTTPHandler.do_request_

        def http_open(self, req: Any) -> Any:
            return self.do_open(watched(http.client.HTTPConnection), req)

        def https_open(self, req: Any) -> Any:
            return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

    opener = urllib.request.OpenerDirector()  # no ftp:, file: or data: handlers: a redirect cannot go there
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        Handler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener
