"""The IPython extension: ``%load_ext vision_magic`` registers, ``%unload_ext`` undoes, ``%reload_ext`` both."""

from __future__ import annotations

from typing import Any

from ..engine import warm
from ..engine.config import VisionMagic
from ..engine.endpoints import warm_up_client
from ..engine.session import current
from ..errors import VisionMagicError
from . import output_capture
from .line_magic import keep_question


def _show_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """One red line instead of a traceback for every vision_magic error."""
    line = f"\x1b[31m{etype.__name__}\x1b[0m: {value}"
    # IPython ignores what a custom handler returns when the error comes from running code: show it here
    # (in a kernel this sends the error message, so the notebook shows the line and stops "Run all").
    shell._showtraceback(etype, value, [line])
    return [line]


def notebook_view() -> Any:
    """A new :class:`~vision_magic.frontends.render.NotebookView` (render is imported on the first answer, so
    ``%load_ext`` stays cheap)."""
    from .render import NotebookView

    return NotebookView()


def load(shell: Any) -> None:
    """Register the magic, the ``VisionMagic`` configurable, the output capture and the one-line errors."""
    from .magic import AskImageMagics

    cfg = next((c for c in shell.configurables if isinstance(c, VisionMagic)), None)
    if cfg is None:  # kept across %reload_ext, so %config settings survive it
        cfg = VisionMagic(parent=shell)
        shell.configurables.append(cfg)
    session = current()
    session.settings = cfg
    session.make_view = notebook_view
    shell.register_magics(AskImageMagics(shell, cfg))
    output_capture.install(shell)
    shell.set_custom_exc((VisionMagicError,), _show_error)
    if keep_question not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(keep_question)
    events = shell.events
    for event, callback in _CELL_EVENTS:
        if callback not in events.callbacks[event]:
            events.register(event, callback)
    make_client = warm_up_client(cfg)  # None for a dry run or without a key: nothing would be sent
    if make_client is not None:
        # while the kernel is idle: the first question's modules, the openai SDK and the client
        in_cell = getattr(shell.displayhook, "exec_result", None) is not None  # %load_ext ran in a cell
        warm.begin(lambda: (load_question_path(), make_client()), busy=in_cell)


def _cell_started(*_: Any) -> None:
    warm.cell_started()


def _cell_ended(*_: Any) -> None:
    warm.cell_ended()


# pre_execute/post_execute: every execution, silent ones (a front end's own requests) included
_CELL_EVENTS = (("pre_execute", _cell_started), ("post_execute", _cell_ended))


def load_question_path() -> None:
    """Import what the first question runs: the ask path, its rendering, Pillow and its common codecs."""
    from ..engine import chat, replay_store, run  # noqa: F401
    from ..images.encode import load_codecs
    from . import render  # noqa: F401

    load_codecs()


def unload(shell: Any) -> None:
    """Undo :func:`load`: the magic, the output capture, the error printer, the notebook view and the cell
    events are gone; a warm-up still waiting is cancelled."""
    manager = shell.magics_manager
    manager.magics["cell"].pop("ask_image", None)
    manager.magics["line"].pop("ask_image", None)
    manager.registry.pop("AskImageMagics", None)
    output_capture.uninstall(shell)
    for event, callback in _CELL_EVENTS:
        if callback in shell.events.callbacks[event]:
            shell.events.unregister(event, callback)
    warm.wait()  # cells are no longer followed: a warm-up still waiting for an idle kernel is cancelled
    if keep_question in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(keep_question)
    if getattr(shell, "custom_exceptions", ()) == (VisionMagicError,):
        shell.set_custom_exc((), None)
    session = current()
    if session.make_view is notebook_view:
        session.make_view = None
