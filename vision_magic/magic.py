"""``%%ask_image``: a thin IPython adapter over :func:`vision_magic.ask`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import last_image
from .config import VisionMagic, set_settings
from .errors import SourceError, VisionMagicError
from .sources import BadSource

# Names, attribute access and literal/name subscripts: `fig`, `imgs[0]`, `ax.figure`, `d["cat"]`, `a[-1].b`.
_SUBSCRIPT = r"\[\s*(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\"|[A-Za-z_]\w*)\s*\]"
_EXPRESSION = re.compile(rf"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|{_SUBSCRIPT})*$")


def resolve_token(token: str, namespace: dict[str, Any], cwd: str | None = None) -> Any:
    """What one source token on the magic line means: a variable (or simple expression) in ``namespace``
    when it evaluates there, else the token itself (a path, glob or URL, resolved later).

    Examples
    --------
    >>> resolve_token("imgs[1]", {"imgs": ["a.png", "b.png"]})
    'b.png'
    >>> resolve_token("photo.jpg", {})
    'photo.jpg'
    """
    if not _EXPRESSION.match(token):
        return token
    try:
        return eval(token, {"__builtins__": {}}, namespace)  # noqa: S307 - restricted to names/attrs/subscripts
    except (NameError, AttributeError, KeyError, IndexError, TypeError) as e:
        if (Path(cwd or ".") / Path(token).expanduser()).exists():
            return token  # `photo.jpg` is a file here, not an attribute of `photo`
        if isinstance(e, NameError):
            if "." in token and "[" not in token:
                return token  # `chart.png` and no `chart` variable: a path, reported as not found later
            raise SourceError(token, "no variable of that name in the notebook, and no such file") from None
        raise SourceError(token, f"{type(e).__name__}: {e} (and no file of that name exists)") from None


def _unquote(token: str) -> str:
    """``"a b.png"`` -> ``a b.png``."""
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    return token


@magics_class
class AskImageMagics(Magics):
    """The ``%%ask_image`` cell magic."""

    def __init__(self, shell: Any, cfg: VisionMagic) -> None:
        super().__init__(shell)
        self.cfg = cfg

    @magic_arguments()
    @argument(
        "sources",
        nargs="*",
        help="Images: URLs, data: URLs, file paths, globs, directories, or names/expressions of notebook "
        "variables (PIL image, matplotlib Figure/Axes, numpy array, bytes, path, list). None: the last image shown.",
    )
    @argument("-m", "--model", help="Model to ask (default: %%config VisionMagic.model, gpt-4o).")
    @argument("-d", "--detail", choices=["auto", "low", "high", "original"], help="Image detail level.")
    @argument("--max-tokens", type=int, help="Longest answer in tokens (default 1024).")
    @argument("--temperature", type=float, help="Sampling temperature.")
    @argument("--seed", type=int, help="Seed for more repeatable answers.")
    @argument("--system", help="System message.")
    @argument("--no-stream", action="store_true", help="Wait for the whole answer instead of streaming.")
    @argument("--no-resize", action="store_true", help="Send images at their own size (not the model's).")
    @argument("--dry-run", action="store_true", help="Show what would be sent; send nothing.")
    @argument(
        "--cost", action="store_true", help="Show sizes, tokens and the estimated input cost; send nothing."
    )
    @argument("--out", metavar="NAME", help="Store the Answer (with --each: the DataFrame) in this variable.")
    @argument("--refresh", action="store_true", help="Ask again even if this exact question is cached.")
    @argument("--no-cache", action="store_true", help="Neither replay from nor store in the replay cache.")
    @argument("--json", action="store_true", help="JSON mode: the parsed answer is in Answer.data.")
    @argument(
        "--continue",
        dest="follow_up",
        action="store_true",
        help="Follow up: send the thread's earlier turns.",
    )
    @argument("--chat", metavar="NAME", help="Ask in (and continue) the conversation thread NAME.")
    @argument("--new", action="store_true", help="Start the thread (default or --chat NAME) over.")
    @argument("--each", action="store_true", help="Ask about each image on its own; shows a DataFrame.")
    @argument("--concurrency", type=int, default=8, help="Requests in flight with --each (default 8).")
    @cell_magic
    def ask_image(self, line: str, cell: str) -> None:
        """Ask a vision model about images; the cell body is the question.

        Examples::

            %%ask_image photo.jpg
            What is in this photo?

            %%ask_image "my holiday/beach.png" fig https://example.org/chart.png -d low
            What is different between these three images?

            %%ask_image images/*.png --out answer
            Which of these plots shows a trend?

            %%ask_image imgs[0] ax.figure --dry-run
            Compare these.

            %%ask_image photos/*.jpg -m gpt-4o-mini -d high --cost
            What would this cost? (sizes, tokens and price; nothing is sent)

            %%ask_image
            What does the plot above show?

            %%ask_image --continue
            And the left panel?

            %%ask_image --each figures/*.png --concurrency 16 --out table
            Is there a legend?

            %%ask_image receipt.jpg --json
            Give merchant, date and total.

        Answers stream in as Markdown; ``vision_magic.last_answer`` holds the last one. Configure defaults
        with ``%config VisionMagic.model = "gpt-4o-mini"`` (also detail, max_tokens, temperature, system,
        base_url, timeout). The key comes from OPENAI_API_KEY; OPENAI_BASE_URL picks any compatible server.
        Re-running an identical question replays the stored answer (``--refresh`` asks again, ``--no-cache``
        bypasses; ``vision_magic.cache.stats()``); ``vision_magic.chat(NAME)`` holds a thread's turns.
        """
        try:
            args = parse_argstring(self.ask_image, line)
        except ValueError as e:  # shlex: "No closing quotation"
            raise UsageError(
                f"%%ask_image: cannot read the line ({e}): close the quote around the path"
            ) from None
        # IPython's splitter keeps quotes around a token ("my pics/a.png"); they are not part of the value.
        args.sources = [_unquote(t) for t in args.sources]
        for name in ("model", "system", "out"):
            if isinstance(getattr(args, name, None), str):
                setattr(args, name, _unquote(getattr(args, name)))
        if args.out and not args.out.isidentifier():
            raise VisionMagicError(f"--out {args.out!r} is not a valid variable name")
        sources = [self._resolve(token) for token in args.sources]
        if args.cost:
            self._cost(args, cell, sources)
            return
        if args.each:
            self._each(args, cell, sources)
            return
        from .conversations import DEFAULT, chat

        thread = chat(args.chat or DEFAULT)
        if args.new or not (args.follow_up or args.chat):
            thread.reset()  # a plain question starts the default thread over; --continue follows it up
        try:
            answer = thread.ask(
                cell,
                *sources,
                model=args.model,
                detail=args.detail,
                stream=False if args.no_stream else None,
                dry_run=True if args.dry_run else None,
                system=args.system,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                seed=args.seed,
                resize=False if args.no_resize else None,
                labels=list(args.sources),
                cache=False if args.no_cache else None,
                refresh=args.refresh,
                json_mode=args.json,
            )
        except KeyboardInterrupt:
            # The stop button: the partial answer stays on screen (marked) and in last_answer; one line, no trace.
            from . import asking

            if args.out and asking.last_answer is not None:
                self.shell.user_ns[args.out] = asking.last_answer
            raise VisionMagicError(
                "Interrupted: the partial answer is kept in vision_magic.last_answer."
            ) from None
        if args.out:
            self.shell.user_ns[args.out] = answer

    def _each(self, args: Any, cell: str, sources: list[Any]) -> None:
        """``--each``: one question per image through :func:`vision_magic.ask_many`; show the table."""
        from IPython.display import display

        from .batch import ask_many

        if args.follow_up or args.chat or args.new or args.dry_run:
            raise VisionMagicError("--each cannot be combined with --continue, --chat, --new or --dry-run")
        if not sources:
            raise VisionMagicError("--each needs sources, e.g. %%ask_image --each images/*.png")
        table = ask_many(
            cell.strip() or "Describe this image.",
            sources[0] if len(sources) == 1 else sources,
            concurrency=args.concurrency,
            model=args.model,
            detail=args.detail,
            json_mode=args.json,
            system=args.system,
            max_tokens=args.max_tokens,
            cache=False if args.no_cache else None,
            refresh=args.refresh,
        )
        display(table)
        if args.out:
            self.shell.user_ns[args.out] = table

    def _cost(self, args: Any, cell: str, sources: list[Any]) -> None:
        """``--cost``: the estimate table (sizes, bytes, tokens, input cost); nothing is sent."""
        from IPython.display import display

        from .estimates import estimate

        est = estimate(
            *sources,
            model=args.model,
            detail=args.detail,
            prompt=cell,
            resize=False if args.no_resize else None,
            labels=list(args.sources),
        )
        display(est)
        if args.out:
            self.shell.user_ns[args.out] = est

    def _resolve(self, token: str) -> Any:
        try:
            return resolve_token(token, self.shell.user_ns)
        except SourceError as e:
            return BadSource(e)  # reported with every other bad source, before anything is sent


def _show_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """One red line instead of a traceback for every vision_magic error."""
    line = f"\x1b[31m{etype.__name__}\x1b[0m: {value}"
    # IPython ignores what a custom handler returns when the error comes from running code: show it here
    # (in a kernel this sends the error message, so the notebook shows the line and stops "Run all").
    shell._showtraceback(etype, value, [line])
    return [line]


def load(shell: Any) -> None:
    """Register the magic, the ``VisionMagic`` configurable, the last-image hook and the error printer."""
    cfg = next((c for c in shell.configurables if isinstance(c, VisionMagic)), None)
    if cfg is None:
        cfg = VisionMagic(parent=shell)
        shell.configurables.append(cfg)
    set_settings(cfg)
    shell.register_magics(AskImageMagics(shell, cfg))
    last_image.install(shell)
    shell.set_custom_exc((VisionMagicError,), _show_error)
