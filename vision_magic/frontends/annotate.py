"""Ask a vision model to caption, describe or interpret a matplotlib figure.

The model sees the figure as an image and, as text, what matplotlib knows exactly (title, axis labels, limits,
legend entries), so captions get the numbers and names right.
"""

from __future__ import annotations

from typing import Any

from ..errors import VisionMagicError
from ..images.figures import current_figure, figure_of, figure_png

KINDS = {
    "caption": "Write a concise caption (2-3 sentences) for this figure, suitable under it in a report: "
    "what is plotted and the main finding.",
    "alt": "Write alt text for this figure for a reader who cannot see it: one or two plain sentences "
    "with the chart type, what is plotted against what, and the key trend. No Markdown.",
    "interpret": "Interpret this figure: describe the trends, notable values and outliers, and what "
    "conclusions it supports (and which it does not).",
}


def _figure_of(fig: Any) -> Any:
    if fig is None:
        fig = current_figure()
        if fig is None:
            raise VisionMagicError("no open matplotlib figure: pass one, e.g. annotate(fig)")
    return figure_of(fig)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def figure_facts(fig: Any) -> str:
    """What matplotlib knows about ``fig`` as text: title, and per Axes the title, labels, limits, scales
    and legend entries.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [2, 3], label="speed"); _ = ax.set_xlabel("time (s)"); _ = ax.legend()
    >>> print(figure_facts(fig))
    Axes 1: x label 'time (s)', x from -0.05 to 1.05; y from 1.95 to 3.05; legend: 'speed'
    >>> plt.close(fig)
    """
    fig = _figure_of(fig)
    lines = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        lines.append(f"Figure title: {suptitle.get_text()!r}")
    axes = [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]
    for i, ax in enumerate(axes, 1):
        parts = []
        if ax.get_title():
            parts.append(f"title {ax.get_title()!r}")
        for axis in ("x", "y"):
            label = getattr(ax, f"get_{axis}label")()
            lo, hi = getattr(ax, f"get_{axis}lim")()
            scale = getattr(ax, f"get_{axis}scale")()
            bits = [f"{axis} label {label!r}"] if label else []
            bits.append(
                f"{axis} from {_fmt(lo)} to {_fmt(hi)}" + (f" ({scale} scale)" if scale != "linear" else "")
            )
            parts.append(", ".join(bits))
        legend = ax.get_legend()
        if legend is not None:
            entries = [t.get_text() for t in legend.get_texts() if t.get_text()]
            if entries:
                parts.append("legend: " + ", ".join(repr(e) for e in entries))
        lines.append(f"Axes {i}: " + "; ".join(parts))
    return "\n".join(lines)


def default_prompt(fig: Any, kind: str = "caption") -> str:
    """The question :func:`annotate` asks when given no prompt: the task for ``kind`` plus the figure's facts.

    Examples
    --------
    >>> default_prompt(None, kind="poem")
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of caption, alt, interpret (got 'poem')
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    facts = figure_facts(fig)
    task = KINDS[kind]
    if not facts:
        return task
    return f"{task}\n\nFacts from the plotting library (exact; use them rather than reading them off the image):\n{facts}"


def annotate(
    fig: Any = None, prompt: str | None = None, *, kind: str = "caption", display: bool = True, **options: Any
) -> str:
    """Ask a vision model for a caption, alt text or interpretation of a matplotlib figure; show the figure
    with the answer under it; return the text.

    Parameters
    ----------
    fig : a matplotlib ``Figure`` or ``Axes`` (default: the open figure).
    prompt : the question; by default one for ``kind`` that also gives the model the figure's title, axis
        labels, limits and legend entries as text.
    kind : ``"caption"`` (default), ``"alt"`` (alt text) or ``"interpret"``.
    display : show the figure and stream the answer below it (False: just return the text).
    **options : passed to :func:`vision_magic.ask` (``model``, ``detail``, ``max_tokens``, ``dry_run``, ...).

    Returns
    -------
    str : the answer's text ("" in a dry run, which shows what would be sent instead).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from vision_magic import annotate
    >>> fig, ax = plt.subplots(); ax.plot([1, 4, 9], label="squares"); ax.legend()  # doctest: +SKIP
    >>> caption = annotate(fig)                                                      # doctest: +SKIP
    >>> fig.text(0.5, -0.05, caption, ha="center", wrap=True)                        # doctest: +SKIP
    >>> alt = annotate(fig, kind="alt", model="gpt-4o-mini", display=False)          # doctest: +SKIP
    """
    from .api import ask

    fig = _figure_of(fig)
    question = prompt if prompt else default_prompt(fig, kind)
    if display:  # the figure as a PNG whatever the backend, then the answer streams in under it
        from IPython.display import Image
        from IPython.display import display as show

        show(Image(data=figure_png(fig), format="png"))
    answer = ask(question, fig, display=display, labels=["figure"], **options)
    return answer.text
