"""The project's exceptions: each message is one line saying what happened and how to fix it."""

from __future__ import annotations

import os
import re


class VisionMagicError(Exception):
    """Base class of every error vision_magic shows a user; ``str(err)`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(str(message).split())))


class SourceError(VisionMagicError):
    """One image source could not be used.

    Examples
    --------
    >>> str(SourceError("cat.png", "file not found"))
    'cat.png: file not found'
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class SourceErrors(VisionMagicError):
    """Several sources of one request could not be used; nothing was sent."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = errors
        if len(errors) == 1:
            msg = f"{errors[0]} (nothing was sent)"
        else:
            msg = f"{len(errors)} sources could not be used, nothing was sent: " + "; ".join(map(str, errors))
        super().__init__(msg)


def warn(message: str, topic: str = "request") -> None:
    """Tell the user something that does not stop the question: one line (keys redacted) on the
    ``vision_magic.<topic>`` logger at WARNING. With no logging set up, Python prints just the line to stderr;
    ``logging.getLogger("vision_magic").setLevel(logging.ERROR)`` silences every such line."""
    import logging

    logging.getLogger(f"vision_magic.{topic}").warning(redact(" ".join(message.split())))


class ConfigError(VisionMagicError):
    """Missing or wrong configuration (API key, base URL, model profile)."""


class APIError(VisionMagicError):
    """The server answered with an error, or could not be reached.

    ``kind`` names errors the engine can give more advice about: ``"unknown_model"`` (the server does not
    offer the model asked for), ``"too_large"`` (413: the request is over the server's size limit),
    ``"image_format"`` (the server could not decode an image) and ``"json_mode"`` (it refused the JSON mode).
    """

    def __init__(self, message: str, status: int | None = None, kind: str | None = None) -> None:
        self.status = status
        self.kind = kind
        super().__init__(message)


class BatchInterrupted(VisionMagicError):
    """A batch was stopped (the stop button, Ctrl-C): nothing more is sent, and ``table`` holds every row,
    the unfinished ones with the error ``"not run: interrupted"``.

    Examples
    --------
    >>> str(BatchInterrupted(None, answered=37, total=120))  # doctest: +NORMALIZE_WHITESPACE
    'Interrupted: 37 of 120 images answered (the table so far is in vision_magic.last_table); re-run to ask
    only about the other 83 (answered ones are replayed from the cache)'
    """

    def __init__(
        self,
        table: object,
        answered: int,
        total: int,
        kept_in: str = "vision_magic.last_table",
        resumable: bool = True,
    ) -> None:
        self.table, self.answered, self.total, self.resumable = table, answered, total, resumable
        if resumable:
            rest = total - answered
            rerun = f"re-run to ask only about the other {rest} (answered ones are replayed from the cache)"
        else:
            rerun = (
                f"re-running asks about all {total} again (cache=False or refresh=True: nothing is replayed)"
            )
        super().__init__(
            f"Interrupted: {answered} of {total} images answered (the table so far is in {kept_in}); {rerun}"
        )

    def kept_also_in(self, name: str) -> BatchInterrupted:
        """The same error, naming one more place the table was put (the magic's ``--out NAME``)."""
        where = f"vision_magic.last_table and {name}"
        return BatchInterrupted(self.table, self.answered, self.total, where, self.resumable)


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-\.]{8,})")
# scheme://userinfo@ : greedy up to the last "@" of the authority, so a password holding "@" goes too
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#\"'<>\\]+@")
# ?name=value or &name=value (also HTML-escaped &amp;) where the name looks like a credential; the value ends
# before &, #, whitespace, quotes or brackets, and a final ":,.;!" stays (as in "URL: reason")
_SECRET_QUERY = re.compile(
    r"([?&](?:amp;)?)([^=&\s?#\"'<>\\]*(?:key|token|sig|secret|passw|pwd|credential|auth)[^=&\s?#\"'<>\\]*)"
    r"=[^&\s#\"'<>\\)]+?(?=[:,.;!]?(?:[&\s#\"'<>\\)]|$))",
    re.IGNORECASE,
)
_MIN_SECRET = 6  # shorter values would blank ordinary words; the patterns above still catch them in URLs

_secret_variables = {"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"}
_secret_values: set[str] = set()


def add_secret(value: str = "", variable: str = "") -> None:
    """Tell :func:`redact` about a secret vision_magic has read: its value, and/or the environment variable
    that holds it (whose current value is then redacted too). Values shorter than 6 characters are ignored.

    Examples
    --------
    >>> add_secret("hunter2-long-password")
    >>> redact("login with hunter2-long-password")
    'login with ***'
    """
    if variable:
        _secret_variables.add(variable)
    if value and len(value) >= _MIN_SECRET:
        _secret_values.add(value)


def redact(text: str) -> str:
    """Remove every secret vision_magic knows of from ``text``: the values of ``OPENAI_API_KEY``,
    ``AZURE_OPENAI_API_KEY`` and every variable and value given to :func:`add_secret` (endpoint keys, URL
    passwords), anything that looks like an API key or bearer token, the user:password part of any URL, and
    URL query values named like a credential (key, token, sig, signature, secret, password, api-key,
    access_token, ...; any case).

    Examples
    --------
    >>> redact("Incorrect API key provided: sk-proj-abcdefghijklmnop")
    'Incorrect API key provided: sk-***'
    >>> redact("Could not reach http://me:pa55word@host:8000/v1")
    'Could not reach http://***@host:8000/v1'
    >>> redact("https://cdn.example/cat.png?w=100&X-Amz-Signature=abc123&Token=t0k&sig=s1g")
    'https://cdn.example/cat.png?w=100&X-Amz-Signature=***&Token=***&sig=***'
    """
    secrets = set(_secret_values)
    for name in tuple(_secret_variables):
        value = os.environ.get(name, "").strip()
        if len(value) >= _MIN_SECRET:
            secrets.add(value)
    # longest first: a key that contains another goes whole
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _SECRET_QUERY.sub(r"\1\2=***", text)
    return _KEY_PATTERN.sub(lambda m: "Bearer ***" if m.group(0).startswith("Bearer") else "sk-***", text)


def one_line(e: BaseException) -> str:
    """The one line a user sees for any exception: a project error as it is, anything else with its type;
    keys redacted, whitespace folded.

    Examples
    --------
    >>> one_line(SourceError("a.png", "file not found"))
    'a.png: file not found'
    >>> one_line(ValueError("bad\\n value"))
    'ValueError: bad value'
    """
    text = str(e) if isinstance(e, VisionMagicError) else redact(f"{type(e).__name__}: {e}")
    return " ".join(text.split()) or type(e).__name__
