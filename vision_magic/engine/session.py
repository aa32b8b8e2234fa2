"""The session: what one kernel remembers between questions, in one object instead of module globals.

``current()`` is the session of this process. The IPython extension gives it the shell's ``VisionMagic``
settings and a view factory (how answers are drawn); front ends feed it the last image shown.

Examples
--------
>>> s = Session()
>>> s.settings.model == VisionMagic().model, s.last_answer, s.last_table, s.chats
(True, None, None, {})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import VisionMagic
from .outputs import OutputStore

if TYPE_CHECKING:
    from .answer import Answer
    from .views import AnswerView


@dataclass
class Session:
    """Settings in force, the last answer and batch table, the last image shown, the threads, and how to draw.

    Attributes
    ----------
    settings : the ``VisionMagic`` configurable (``%config VisionMagic.*``).
    last_answer : the most recent :class:`Answer` of ``ask``, the magic or the panel (``vision_magic.last_answer``).
    last_table : the most recent table of ``ask_many`` or ``--each``, complete or, after an interrupt,
        partial (``vision_magic.last_table``).
    last_shown : ``(description, encoded bytes)`` of the newest image the notebook displayed, or None.
    outputs : the images of earlier cells' outputs, by execution count (``@N``; filled by a front end, see
        :mod:`vision_magic.engine.outputs`); :meth:`output_store` applies the bounds in ``%config``.
    chats : conversation threads by name (``%%ask_image --chat NAME``, :func:`vision_magic.chat`).
    cell_runs : how many cells the shell has run (counted by the output capture's ``pre_run_cell`` hook; a front end tells "this cell"
        from "a later cell" with it).
    make_view : makes the view an answer is drawn into when ``display=True`` (set by the front ends;
        None: answers are not drawn, e.g. the engine used on its own).
    """

    settings: VisionMagic = field(default_factory=VisionMagic)
    last_answer: Answer | None = None
    last_table: Any = None  # a pandas DataFrame
    last_table_records: dict[str, Any] | None = None  # its answers' records (the table's output metadata)
    last_shown: tuple[str, bytes] | None = None
    chats: dict[str, Any] = field(default_factory=dict)  # name -> vision_magic.engine.chat.Chat
    make_view: Callable[[], AnswerView] | None = None
    cell_runs: int = 0
    outputs: OutputStore = field(default_factory=OutputStore)

    def view(self) -> Any:
        """A new view to draw one answer into, or None when no front end draws answers."""
        return self.make_view() if self.make_view is not None else None

    def output_store(self) -> OutputStore:
        """The store of earlier outputs, bounded by ``%config VisionMagic.output_history`` (cells) and
        ``output_history_mb`` now (a lowered bound drops the oldest cells at once)."""
        cfg = self.settings
        self.outputs.limit(cfg.output_history, int(cfg.output_history_mb * 1_000_000))
        return self.outputs


_session: Session | None = None


def current() -> Session:
    """The session of this process (created on first use)."""
    global _session
    if _session is None:
        _session = Session()
    return _session


def settings() -> VisionMagic:
    """The settings in force: the instance the IPython extension registered, else a default one."""
    return current().settings
