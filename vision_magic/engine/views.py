"""What the engine needs from whatever draws an answer (a notebook cell, the panel's output widget).

The engine calls a view; it never imports one. :class:`vision_magic.frontends.render.NotebookView` is the
notebook's; the session's ``make_view`` says which one ``display=True`` uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .answer import Answer


class AnswerView(Protocol):
    """Draws one answer: a placeholder, the text as it streams in, the finished answer (also a replayed one,
    without ``start``), or a dry run instead; or nothing, when the question failed before any text."""

    def start(self) -> None: ...

    def update(self, text: str) -> None: ...

    def finish(self, answer: Answer) -> None: ...

    def dry_run(self, answer: Answer, note: str) -> None: ...

    def discard(self) -> None:
        """Take back what :meth:`start` drew: the question failed before any text (its error is shown
        as one line elsewhere)."""
