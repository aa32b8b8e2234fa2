"""``%%ask_image`` and ``%ask_image``: a thin IPython adapter: the line becomes options, then one of three runs."""

from __future__ import annotations

import glob
import keyword
import re
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..engine.config import VisionMagic
from ..engine.options import AskOptions
from ..errors import BatchInterrupted, SourceError, VisionMagicError
from .line_magic import looks_like_source, split_line
from .magic_arguments import (
    FLAGS_WITH_OPTIONAL_NUMBER,
    FLAGS_WITH_VALUES,
    ask_image_arguments,
    options_from_args,
    read_line,
    resolve_schema,
)

# Names, attribute access and literal/name subscripts: `fig`, `imgs[0]`, `ax.figure`, `d["cat"]`, `a[-1].b`,
# and whole-number tuples: `axs[0, 1]` (one subplot of `plt.subplots(2, 2)`).
_SUBSCRIPT = r"\[\s*(?:-?\d+(?:\s*,\s*-?\d+)*|'[^'\]]*'|\"[^\"\]]*\"|[A-Za-z_]\w*)\s*\]"
_EXPRESSION = re.compile(rf"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|{_SUBSCRIPT})*$")


def resolve_token(token: str, namespace: dict[str, Any], cwd: str | None = None) -> Any:
    """What one source token on the magic line means: a variable (or simple expression) in ``namespace``
    when it evaluates there, else the token itself (a path, glob or URL, resolved later).

    Examples
    --------
    >>> resolve_token("imgs[1]", {"imgs": ["a.png", "b.png"]})
    'b.png'
    >>> resolve_token("grid[1, 0]", {"grid": {(1, 0): "c.png"}})
    'c.png'
    >>> resolve_token("photo.jpg", {})
    'photo.jpg'
    >>> resolve_token("@3:2", {})  # an earlier output: the engine resolves it
    '@3:2'
    """
    if not _EXPRESSION.match(token) or keyword.iskeyword(token.split(".")[0].split("[")[0]):
        return token  # `else`, `None.png`: a path, not Python
    try:
        return eval(token, {"__builtins__": {}}, namespace)  # noqa: S307 - restricted to names/attrs/subscripts
    except SyntaxError:
        return token
    except (NameError, AttributeError, KeyError, IndexError, TypeError) as e:
        if (Path(cwd or ".") / Path(token).expanduser()).exists():
            return token  # `photo.jpg` is a file here, not an attribute of `photo`
        if isinstance(e, NameError):
            if "." in token and "[" not in token:
                return token  # `chart.png` and no `chart` variable: a path, reported as not found later
            raise SourceError(token, "no variable of that name in the notebook, and no such file") from None
        raise SourceError(token, f"{type(e).__name__}: {e} (and no file of that name exists)") from None


def resolve_source(token: str, namespace: dict[str, Any], cwd: str | None = None) -> Any:
    """:func:`resolve_token`, plus a crop of one source: ``name[x0,y0,x1,y1]`` (four numbers in brackets at
    the end of the token) is the part of ``name`` in that box.

    Precedence: a token that names an existing file (or a glob that matches files) is that path, even if it
    ends in brackets; otherwise trailing ``[x0,y0,x1,y1]`` is a crop, and the rest is resolved as any token
    (a variable, an expression, a path, a URL). Glob classes like ``img[0-9].png`` and subscripts like
    ``imgs[0]`` are never four comma-separated numbers, so they mean what they meant before.

    Examples
    --------
    >>> resolve_source("fig[0,0,0.5,0.5]", {"fig": 3})
    <Region 0,0,0.5,0.5 of int>
    >>> resolve_source("plot.png[0,0,100,80]", {})  # a path: the converter reads the crop off the path
    'plot.png[0,0,100,80]'
    """
    from ..images.regions import split_crop

    split = split_crop(token)
    if split is None or (Path(cwd or ".") / Path(token).expanduser()).exists() or glob.glob(token):
        return resolve_token(token, namespace, cwd)
    value = resolve_token(split[0], namespace, cwd)
    if value == split[0]:
        return token  # a path or URL: the converter reads the crop (and labels the part) itself
    from ..images.resolve import Region

    return Region(value, split[1])


@magics_class
class AskImageMagics(Magics):
    """The ``%%ask_image`` cell magic."""

    def __init__(self, shell: Any, cfg: VisionMagic) -> None:
        super().__init__(shell)
        self.cfg = cfg

    @ask_image_arguments
    @line_cell_magic
    def ask_image(self, line: str, cell: str | None = None) -> None:
        """Ask a vision model about images: the cell body is the question, or, as a line magic, the words
        after the sources (``--`` ends the sources when a word of the question could be read as one).

        Examples::

            %ask_image @-1 What is the trend here?

            %ask_image fig -m gpt-4o-mini -- Is fig a bar chart?

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

            %%ask_image @3 @-1:2
            Compare every image of cell [3] with the second image of the previous cell.

            %%ask_image --continue
            And the left panel?

            %%ask_image --each figures/*.png --concurrency 16 --out table
            Is there a legend?

            %%ask_image --each photos/ --batch --out job
            Describe this photo in one line.

        (``--batch``: OpenAI's Batch API, half price, answers within 24 h; ``job.wait()``, ``job.result()``;
        re-running the cell reattaches to the batch instead of submitting it again)

            %%ask_image receipt.jpg --json
            Give merchant, date and total.

            %%ask_image receipt.jpg --schema Receipt
            Read the receipt.

        (``Receipt``: a pydantic model or a JSON Schema dict defined in the notebook)

            %ask_image --models

        (the models the server offers, those known to take images marked)

            %%ask_image fig.axes[3]
            What does this subplot show? (only that Axes is sent: its title, ticks, labels and legend)

            %%ask_image axs[0, 1] axs[1, 1]
            Compare these two subplots of fig, axs = plt.subplots(2, 2).

            %%ask_image table.png --zoom --cost
            What would reading the fine print cost? (an overview plus full-resolution tiles; nothing is sent)

            %%ask_image table.png --zoom 6
            What is the total in the last row?

            %%ask_image scan.png --crop 0,0,0.5,0.25
            What is written in the top-left corner? (pixels, or fractions when all are <= 1)

            %%ask_image before.png[0,0,800,600] after.png
            What changed in this corner?

            %%ask_image --replay-from lesson.ipynb

        (loads the answers recorded in a saved notebook; re-running its cells replays them, sending nothing)

        Answers stream in as Markdown; ``vision_magic.last_answer`` holds the last one. Configure defaults
        with ``%config VisionMagic.model = "gpt-4o-mini"`` (also detail, max_tokens, temperature, system,
        base_url, timeout). The key comes from OPENAI_API_KEY; OPENAI_BASE_URL picks any compatible server.
        Re-running an identical question replays the stored answer (``--refresh`` asks again, ``--no-cache``
        bypasses; ``vision_magic.cache.stats()``); ``vision_magic.chat(NAME)`` holds a thread's turns.
        """
        if cell is None:  # %ask_image SOURCES... QUESTION
            line, cell = split_line(line, FLAGS_WITH_VALUES, self._is_source, FLAGS_WITH_OPTIONAL_NUMBER)
        args = read_line(self.ask_image, line)
        args.schema = resolve_schema(args.schema, self.shell.user_ns)
        sources = [self._resolve(token) for token in args.sources]
        run = (
            run_models
            if args.models
            else run_lesson
            if args.replay_from
            else run_cost
            if args.cost
            else run_each
            if args.each
            else run_question
        )
        result = run(args, cell, sources, options_from_args(args))
        if args.out:
            self.shell.user_ns[args.out] = result

    def _is_source(self, token: str) -> bool:
        return looks_like_source(token, self.shell.user_ns, lambda t: resolve_source(t, self.shell.user_ns))

    def _resolve(self, token: str) -> Any:
        try:
            return resolve_source(token, self.shell.user_ns)
        except SourceError as e:
            from ..images.resolve import BadSource

            return BadSource(e)  # reported with every other bad source, before anything is sent


def run_models(args: Any, cell: str, sources: list[Any], options: AskOptions) -> Any:
    """``--models``: list the models the server offers, marking those known to take images; asks nothing."""
    from IPython.display import display

    from ..engine.server_models import models, suggested_server

    if cell.strip() or sources:
        raise VisionMagicError(
            "--models lists the server's models and asks nothing: give it no sources or question"
        )
    offered = models()
    display(models_bundle(offered, suggested_server(offered)), raw=True)
    return offered


def models_bundle(offered: list[Any], server: str = "") -> dict[str, str]:
    """The Markdown and plain text of a model list (``--models``); ``server``: the row the list names.

    Examples
    --------
    >>> from vision_magic.engine.server_models import OfferedModel
    >>> print(models_bundle([OfferedModel("gpt-4o", True), OfferedModel("tts-1", False)])["text/plain"])
    gpt-4o  (images)
    tts-1
    """
    if not offered:
        return {
            "text/markdown": "*The server lists no models.*",
            "text/plain": "(the server lists no models)",
        }
    lines = [f"{m.id}  (images)" if m.vision else m.id for m in offered]
    md = [f"- `{m.id}`" + (" 🖼 takes images" if m.vision else "") for m in offered]
    pick = next((m.id for m in offered if m.vision), offered[0].id)
    md.append(
        f'\nPick one: `%config VisionMagic.model = "{pick}"` (or `-m {pick}`, or `VISION_MAGIC_MODEL`).'
    )
    if server:  # what the model list says the server is, when another row is in force
        tip = f'The model list says this is a {server} server: `%config VisionMagic.server = "{server}"` applies its facts.'
        md.append(tip)
        lines.append(tip.replace("`", ""))
    return {"text/markdown": "\n".join(md), "text/plain": "\n".join(lines)}


def run_lesson(args: Any, cell: str, sources: list[Any], options: AskOptions) -> int:
    """``--replay-from PATH``: load a lesson's recorded answers; nothing is asked."""
    if cell.strip() or sources:
        raise VisionMagicError(
            "--replay-from loads a lesson's recorded answers and asks nothing: give it no sources or question"
        )
    return load_lesson(args.replay_from)


def load_lesson(path: str) -> int:
    """``--replay-from PATH``: load the answers recorded in the saved notebook ``path`` into the replay cache
    (:func:`vision_magic.replay_from`) and say so in one line; returns how many."""
    from ..engine.recordings import replay_from

    n = replay_from(path)
    print(
        f"Loaded {n} recorded answer{'s' if n != 1 else ''} from {path}: re-run the cells to see them "
        "(marked as replayed; nothing is sent)"
    )
    return n


def run_question(args: Any, cell: str, sources: list[Any], options: AskOptions) -> Any:
    """One question (in the default thread, or ``--chat NAME``); the answer streams below the cell."""
    from ..engine.chat import DEFAULT, chat
    from ..engine.session import current

    session = current()
    thread = chat(args.chat or DEFAULT)
    if args.new or not (args.follow_up or args.chat):
        thread.reset()  # a plain question starts the default thread over; --continue follows it up
    try:
        return thread.ask(cell, *sources, labels=list(args.sources), **options.given())
    except KeyboardInterrupt:
        # The stop button: the partial answer stays on screen (marked) and in last_answer; one line, no trace.
        if args.out and session.last_answer is not None:
            _keep_in(args.out, session.last_answer)
        raise VisionMagicError(
            "Interrupted: the partial answer is kept in vision_magic.last_answer."
        ) from None


def run_each(args: Any, cell: str, sources: list[Any], options: AskOptions) -> Any:
    """``--each``: one question per image through :func:`vision_magic.ask_many`; show the table."""
    from IPython.display import display

    from ..engine.batch import ask_many

    if args.follow_up or args.chat or args.new or args.dry_run:
        raise VisionMagicError("--each cannot be combined with --continue, --chat, --new or --dry-run")
    if not sources:
        raise VisionMagicError("--each needs sources, e.g. %%ask_image --each images/*.png")
    if options.batch:
        return run_batch(args, cell, sources, options)
    try:
        table = ask_many(
            cell.strip() or "Describe this image.",
            sources[0] if len(sources) == 1 else sources,
            concurrency=args.concurrency,
            **options.given(),
        )
    except BatchInterrupted as e:  # the stop button: the partial table goes to --out too; one line, no trace
        if not args.out:
            raise
        _keep_in(args.out, e.table)
        raise e.kept_also_in(args.out) from None
    from ..engine.record import KEY
    from ..engine.session import current

    session = current()
    records = session.last_table_records if session.last_table is table else None
    display(table, metadata={KEY: records or {}})  # the records of its answers, saved with it
    return table


def run_batch(args: Any, cell: str, sources: list[Any], options: AskOptions) -> Any:
    """``--each --batch``: hand the images to the Batch API (or reattach to the batches this cell submitted
    before); show the job (its progress), after its table once it has finished."""
    from IPython.display import display

    from ..engine.batch import ask_many
    from ..engine.record import KEY
    from ..engine.session import current

    question = cell.strip() or "Describe this image."
    label = f"{' '.join(args.sources)}: {' '.join(question.split())}"[:200]
    job = ask_many(question, sources[0] if len(sources) == 1 else sources, label=label, **options.given())
    if job.done:  # finished (a re-run reattached): the table, then the job with its usage and cost
        table = job.result()
        display(table, metadata={KEY: current().last_table_records or {}})
    display(job)
    return job


def _keep_in(name: str, value: Any) -> None:
    """Put what a run ended with early into the notebook variable ``name`` (``--out NAME``)."""
    import IPython

    IPython.get_ipython().user_ns[name] = value


def run_cost(args: Any, cell: str, sources: list[Any], options: AskOptions) -> Any:
    """``--cost``: the estimate table (sizes, bytes, tokens, input cost); nothing is sent."""
    from IPython.display import display

    from ..engine.estimate import estimate

    est = estimate(*sources, prompt=cell, labels=list(args.sources), **options.given())
    display(est)
    return est
