"""The Python API as a notebook front end: :func:`ask` and :func:`chat` draw answers into the notebook.

The engine's :func:`vision_magic.engine.run.ask` draws nothing by itself; these set the session's view to
:class:`~vision_magic.frontends.render.NotebookView` first (unless another front end set one).
"""

from __future__ import annotations

import functools
from typing import Any

from ..engine import run
from ..engine.answer import Answer
from ..engine.chat import DEFAULT, Chat
from ..engine.chat import chat as engine_chat
from ..engine.session import current
from .extension import notebook_view


def use_notebook_views() -> None:
    """Draw answers into the notebook unless a front end already chose how."""
    session = current()
    if session.make_view is None:
        session.make_view = notebook_view


@functools.wraps(run.ask)
def ask(prompt: str, *sources: Any, **kwargs: Any) -> Answer:
    use_notebook_views()
    return run.ask(prompt, *sources, **kwargs)


def chat(name: str = DEFAULT) -> Chat:
    """The conversation thread ``name`` (created empty on first use); its answers are drawn in the notebook.

    Examples
    --------
    >>> c = vision_magic.chat("figure")  # doctest: +SKIP
    >>> c.ask("What does this plot show?", fig)  # doctest: +SKIP
    >>> c.ask("And the left panel?")  # doctest: +SKIP
    """
    use_notebook_views()
    return engine_chat(name)
