"""The ``%%ask_image`` line: its flags, how it is read, and how flags become :class:`AskOptions`.

Adding an option: one ``argument(...)`` below and one entry in :data:`OPTION_FLAGS`; an option that cannot
be given on a line goes in :data:`NOT_ON_THE_LINE` with the reason (``tests/test_options.py`` checks that
every :class:`AskOptions` field is in one of the two).
"""

from __future__ import annotations

import re
from argparse import Namespace
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser, argument, real_name
from IPython.utils.process import arg_split

from ..engine.options import AskOptions
from ..errors import VisionMagicError
from .line_magic import join_brackets

ZOOM_ON = "on"  # ``--zoom`` given without a number

# option field -> its value from the parsed line (None: not given, so %config decides)
OPTION_FLAGS: dict[str, Callable[[Any], Any]] = {
    "model": lambda a: a.model,
    "detail": lambda a: a.detail,
    "system": lambda a: a.system,
    "max_tokens": lambda a: a.max_tokens,
    "temperature": lambda a: a.temperature,
    "seed": lambda a: a.seed,
    "stream": lambda a: False if a.no_stream else None,
    "resize": lambda a: False if a.no_resize else None,
    "dry_run": lambda a: True if a.dry_run else None,
    "cache": lambda a: False if a.no_cache else None,
    "refresh": lambda a: a.refresh,
    "json_mode": lambda a: a.json,
    "schema": lambda a: getattr(a, "schema", None),  # the object the name stands for (resolve_schema)
    "via": lambda a: "batch" if a.batch else None,
    "crop": lambda a: a.crop,
    "zoom": lambda a: zoom_value(a.zoom),
}
NOT_ON_THE_LINE: dict[str, str] = {}

_ARGUMENTS = [
    argument(
        "sources",
        nargs="*",
        help="Images: URLs, data: URLs, file paths, globs, directories, or names/expressions of notebook "
        "variables (PIL image, matplotlib Figure/Axes, numpy array, bytes, path, list). None: the last image shown.",
    ),
    argument("-m", "--model", help="Model to ask (default: %%config VisionMagic.model, gpt-4o)."),
    argument("-d", "--detail", choices=["auto", "low", "high", "original"], help="Image detail level."),
    argument("--max-tokens", type=int, help="Longest answer in tokens (default 1024)."),
    argument("--temperature", type=float, help="Sampling temperature."),
    argument("--seed", type=int, help="Seed for more repeatable answers."),
    argument("--system", help="System message."),
    argument("--no-stream", action="store_true", help="Wait for the whole answer instead of streaming."),
    argument("--no-resize", action="store_true", help="Send images at their own size (not the model's)."),
    argument("--dry-run", action="store_true", help="Show what would be sent; send nothing."),
    argument(
        "--cost", action="store_true", help="Show sizes, tokens and the estimated input cost; send nothing."
    ),
    argument("--out", metavar="NAME", help="Store the Answer (with --each: the DataFrame) in this variable."),
    argument("--refresh", action="store_true", help="Ask again even if this exact question is cached."),
    argument("--no-cache", action="store_true", help="Neither replay from nor store in the replay cache."),
    argument("--json", action="store_true", help="JSON mode: the parsed answer is in Answer.data."),
    argument(
        "--schema",
        metavar="NAME",
        help="Structured output: NAME is a pydantic model or a JSON Schema dict in the notebook; the answer is "
        "parsed (and a pydantic model validated) into Answer.data.",
    ),
    argument(
        "--models",
        action="store_true",
        help="List the models the server offers, marking those known to take images; asks nothing.",
    ),
    argument(
        "--crop",
        metavar="X0,Y0,X1,Y1",
        help="Send only this part of every image (pixels, or fractions when all are <= 1), cut before "
        "resizing. One source only: name[X0,Y0,X1,Y1].",
    ),
    argument(
        "--zoom",
        nargs="?",
        const=ZOOM_ON,
        metavar="N",
        help="Fine print: when the model would shrink an image more than 1.5x, also send tiles it sees at full "
        "resolution, each labelled with its place (at most N tiles, default 12).",
    ),
    argument(
        "--continue",
        dest="follow_up",
        action="store_true",
        help="Follow up: send the thread's earlier turns.",
    ),
    argument("--chat", metavar="NAME", help="Ask in (and continue) the conversation thread NAME."),
    argument("--new", action="store_true", help="Start the thread (default or --chat NAME) over."),
    argument("--each", action="store_true", help="Ask about each image on its own; shows a DataFrame."),
    argument("--concurrency", type=int, default=8, help="Requests in flight with --each (default 8)."),
    argument(
        "--batch",
        action="store_true",
        help="With --each: hand the images to OpenAI's Batch API (half price, answers within 24 h); shows the "
        "job at once, and re-running the cell reattaches to it. With --cost: the Batch API price.",
    ),
    argument(
        "--replay-from",
        metavar="PATH",
        help="Load the answers recorded in a saved notebook (a lesson run with a key) into the replay cache; "
        "re-running its cells shows them and sends nothing. The cell stays empty.",
    ),
]


# flags followed by a value (``-m gpt-4o``): how the one-line magic tells a flag's value from the question
FLAGS_WITH_VALUES = frozenset(
    name
    for deco in _ARGUMENTS
    if deco.kwds.get("action") not in ("store_true", "store_false") and deco.kwds.get("nargs") != "?"
    for name in deco.args
    if name.startswith("-")
)
# flags whose value is optional and a whole number (``--zoom`` or ``--zoom 6``)
FLAGS_WITH_OPTIONAL_NUMBER = frozenset({"--zoom"})


def zoom_value(value: str | None) -> bool | int | None:
    """``--zoom`` alone is True (at most 12 tiles), ``--zoom N`` is N; a value that is not a number is a
    one-line error.

    Examples
    --------
    >>> zoom_value(None), zoom_value(ZOOM_ON), zoom_value("6")
    (None, True, 6)
    """
    if value is None:
        return None
    if value == ZOOM_ON:
        return True
    if not value.isdigit():
        raise VisionMagicError(f"--zoom {value}: give the most tiles to send as a number, e.g. --zoom 6")
    return int(value)


def ask_image_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the magic method with every flag, as IPython's ``magic_arguments`` does, except that nothing is
    built at import: the argparse parser is made when a line first has a flag (:func:`read_line`), and the
    ``%%ask_image?`` help (the docstring, then every flag) when first asked for (IPython's inspector calls
    ``getdoc()``). A first question without flags then never builds either (~10 ms; bench/cold_start.py)."""
    for deco in reversed(_ARGUMENTS):
        func = deco(func)
    func.getdoc = lambda: help_text(func)
    return func


def parser_of(magic: Callable[..., Any]) -> MagicArgumentParser:
    """The magic's argparse parser, built from its ``argument`` decorators on first use (as IPython's
    ``construct_parser``, without rewriting the docstring)."""
    func = getattr(magic, "__func__", magic)
    parser = func.__dict__.get("parser")
    if parser is None:
        parser = MagicArgumentParser(real_name(func), description=func.__doc__)
        group = None
        for deco in func.decorators[::-1]:  # the decorators in the order they are written
            result = deco.add_to_parser(parser, group)
            if result is not None:
                group = result
        func.parser = parser
    return parser


def help_text(magic: Callable[..., Any]) -> str:
    """What ``%%ask_image?`` shows: usage, the docstring, every flag."""
    return parser_of(magic).format_help()


def _defaults() -> dict[str, Any]:
    """Each flag's value when it is not on the line, as argparse gives it (``dest`` or the long name,
    ``store_true`` False, else its ``default`` or None)."""
    out: dict[str, Any] = {}
    for deco in _ARGUMENTS:
        names = [a for a in deco.args if a.startswith("-")]
        if not names:  # the positional sources
            continue
        long_names = [n for n in names if n.startswith("--")] or names
        dest = deco.kwds.get("dest") or long_names[0].lstrip("-").replace("-", "_")
        action = deco.kwds.get("action")
        fallback = False if action == "store_true" else True if action == "store_false" else None
        out[dest] = deco.kwds.get("default", fallback)
    return out


_DEFAULTS = _defaults()


def read_line(magic: Callable[..., Any], line: str) -> Any:
    """The parsed line: quotes taken off tokens, ``--out`` checked; an unreadable line is a one-line
    ``UsageError``. A line without flags (no word starts with ``-``) is all sources and needs no argparse."""
    # `--zoom photo.png`: the value is optional, so a word after it that is not a number is a source
    line = re.sub(r"(?<!\S)--zoom(?=\s*$|\s+(?!\d+(?:\s|$))\S)", f"--zoom={ZOOM_ON}", line)
    line = join_brackets(line)  # `axs[0, 1]`: one source, not two
    try:
        argv = arg_split(line, strict=True)  # as MagicArgumentParser.parse_argstring splits it
    except ValueError as e:  # shlex: "No closing quotation"
        raise UsageError(
            f"%%ask_image: cannot read the line ({e}): close the quote around the path"
        ) from None
    if any(word.startswith("-") for word in argv):
        args = parser_of(magic).parse_args(argv)
    else:
        args = Namespace(sources=argv, **_DEFAULTS)
    # IPython's splitter keeps quotes around a token ("my pics/a.png"); they are not part of the value.
    args.sources = [unquote(t) for t in args.sources]
    for name in ("model", "system", "out", "replay_from"):
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, unquote(getattr(args, name)))
    if args.out and not args.out.isidentifier():
        raise VisionMagicError(f"--out {args.out!r} is not a valid variable name")
    return args


def resolve_schema(name: str | None, namespace: dict[str, Any]) -> Any:
    """The pydantic model or JSON Schema dict ``--schema NAME`` names (``NAME`` or ``module.Name``).

    Examples
    --------
    >>> resolve_schema("S", {"S": {"type": "object"}})
    {'type': 'object'}
    >>> resolve_schema("Missing", {})
    Traceback (most recent call last):
    ...
    IPython.core.error.UsageError: --schema Missing: no such variable; define a pydantic model or a JSON Schema dict first
    """
    if not name:
        return None
    head, *rest = unquote(name).split(".")
    if head not in namespace:
        raise UsageError(
            f"--schema {name}: no such variable; define a pydantic model or a JSON Schema dict first"
        )
    obj = namespace[head]
    for attr in rest:
        obj = getattr(obj, attr, None)
    if not (isinstance(obj, dict) or hasattr(obj, "model_json_schema")):
        raise UsageError(
            f"--schema {name}: not a pydantic model or a JSON Schema dict ({type(obj).__name__})"
        )
    return obj


def options_from_args(args: Any) -> AskOptions:
    """The :class:`AskOptions` a parsed line asks for.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> line = dict(model="gpt-4o-mini", detail=None, system=None, max_tokens=None, temperature=None, seed=None,
    ...             no_stream=True, no_resize=False, dry_run=False, no_cache=False, refresh=False, json=False,
    ...             batch=False, crop=None, zoom=None)
    >>> options_from_args(NS(**line)).given()
    {'model': 'gpt-4o-mini', 'stream': False}
    """
    return AskOptions(**{name: value(args) for name, value in OPTION_FLAGS.items()})


def unquote(token: str) -> str:
    """``"a b.png"`` -> ``a b.png``.

    Examples
    --------
    >>> unquote('"a b.png"'), unquote("c.png")
    ('a b.png', 'c.png')
    """
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    return token
