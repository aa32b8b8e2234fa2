"""The one-line ``%ask_image``: sources (and flags) first, then the question, e.g.
``%ask_image @-1 What is the trend here?``.

Two things make a one-liner work:

- :func:`split_line` tells the sources and flags at the start of the line from the question that follows:
  flags and source-like tokens (``@N`` references, URLs, existing files and globs, notebook variables that
  are not strings) are taken until the first word that is none of these; ``--`` ends them explicitly (then
  every word before it is a flag or a source, and a missing file is reported as such).
- :func:`keep_question` rewrites an ``%ask_image ...`` line into a plain call before IPython reads a line
  that ends in ``?`` as a help request (``%ask_image?`` alone still shows the help).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

# A token: a quoted string, or a run of non-space characters in which a bracket of numbers may hold spaces
# (`axs[0, 1]`, `fig[0, 0, 0.5, 0.5]` are one token each).
_QUOTED = r"\"[^\"]*\"|'[^']*'"
_NUMBER_BRACKET = r"\[[-\d.,\s]*\]"
_TOKEN = re.compile(rf"{_QUOTED}|(?:{_NUMBER_BRACKET}|\S)+")
_QUOTED_OR_NUMBER_BRACKET = re.compile(rf"{_QUOTED}|{_NUMBER_BRACKET}")
_LINE = re.compile(r"^(?P<indent>\s*)%ask_image(?P<rest>\s+\S.*)$")
_SOURCE_PREFIXES = ("@", "http://", "https://", "data:", "file://")


def join_brackets(head: str) -> str:
    """``head`` (the flags and sources of a magic line, never the question) with the spaces inside brackets of
    numbers taken out, so that the line's splitter keeps ``axs[0, 1]`` or ``fig[0, 0, 0.5, 0.5]`` in one
    token. Quoted tokens are left as they are.

    Examples
    --------
    >>> join_brackets('axs[0, 1] fig[0, 0, .5, .5] "my pics/a [1, 2].png" -d low')
    'axs[0,1] fig[0,0,.5,.5] "my pics/a [1, 2].png" -d low'
    """
    return _QUOTED_OR_NUMBER_BRACKET.sub(
        lambda m: m[0] if m[0][0] in "'\"" else re.sub(r"\s+", "", m[0]), head
    )


def split_line(
    line: str,
    takes_value: Iterable[str],
    is_source: Callable[[str], bool],
    takes_number: Iterable[str] = (),
) -> tuple[str, str]:
    """``(head, question)``: the flags and sources at the start of ``line``, and the rest as it was typed.

    ``takes_value`` are the flags followed by a value (``-m gpt-4o``), ``takes_number`` those that may be
    followed by a whole number (``--zoom 6``); ``is_source(token)`` says whether a token names an image.

    Examples
    --------
    >>> split_line("@-1 -d low What's the trend here?", {"-d"}, lambda t: t.startswith("@"))
    ('@-1 -d low', "What's the trend here?")
    >>> split_line("fig -- fig or table?", set(), lambda t: t == "fig")
    ('fig', 'fig or table?')
    >>> split_line("missing.png -- What is it?", set(), lambda t: False)
    ('missing.png', 'What is it?')
    >>> split_line("t.png --zoom 6 What does it say?", set(), lambda t: t == "t.png", {"--zoom"})
    ('t.png --zoom 6', 'What does it say?')
    """
    separator = re.search(r"(?:^|\s)--(?:\s|$)", line)
    if separator is not None:  # everything before it is flags and sources, whatever they look like
        return line[: separator.start()].strip(), line[separator.end() :].strip()
    return _scan(line, set(takes_value), is_source, set(takes_number))


def _scan(
    line: str, takes_value: set[str], is_source: Callable[[str], bool], takes_number: set[str]
) -> tuple[str, str]:
    expect_value = expect_number = False
    for match in _TOKEN.finditer(line):
        token = match.group(0)
        if expect_value or (expect_number and token.isdigit()):
            expect_value = expect_number = False
        elif token.startswith("-") and len(token) > 1:
            expect_value = token in takes_value
            expect_number = token in takes_number
        elif not is_source(token):
            return line[: match.start()].strip(), line[match.start() :].strip()
        else:
            expect_number = False
    return line.strip(), ""


def looks_like_source(token: str, namespace: dict[str, Any], resolve: Callable[[str], Any]) -> bool:
    """Whether ``token`` names an image: an ``@N`` reference, a URL, an image file name (existing or not),
    an existing file, directory or glob match, or a notebook variable (or expression) that is not a string.

    Examples
    --------
    >>> [looks_like_source(t, {}, lambda t: t) for t in ("@3", "typo.png", "What")]
    [True, True, False]
    """
    from ..images.resolve import IMAGE_SUFFIXES  # on the first one-line question, not at %load_ext

    text = token[1:-1] if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"" else token
    if text.startswith(_SOURCE_PREFIXES) or os.path.splitext(text)[1].lower() in IMAGE_SUFFIXES:
        return True  # an image file name is a source even when missing: it is reported, not asked about
    path = os.path.expanduser(text)
    if os.path.exists(path) or (any(ch in text for ch in "*?[") and glob.glob(path)):
        return True
    try:
        value = resolve(text)
    except Exception:
        return False
    return value is not text and not isinstance(value, str)


def keep_question(lines: list[str]) -> list[str]:
    """An IPython cleanup transformer: ``%ask_image <rest>`` becomes
    ``get_ipython().run_line_magic('ask_image', '<rest>')``, so a question ending in ``?`` reaches the magic
    instead of IPython's help.

    Examples
    --------
    >>> keep_question(["x = 1\\n", "%ask_image @-1 What is the trend?\\n"])[1]
    "get_ipython().run_line_magic('ask_image', '@-1 What is the trend?')\\n"
    >>> keep_question(["%ask_image?\\n", "%%ask_image a.png\\n"]) == ["%ask_image?\\n", "%%ask_image a.png\\n"]
    True
    """
    if lines and lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic's body is not Python
    out = []
    for line in lines:
        body = line.rstrip("\n")
        match = _LINE.match(body)
        if match:
            newline = "\n" if line.endswith("\n") else ""
            rest = match.group("rest").strip()
            line = f"{match.group('indent')}get_ipython().run_line_magic('ask_image', {rest!r}){newline}"
        out.append(line)
    return out
