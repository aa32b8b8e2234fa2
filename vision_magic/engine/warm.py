"""The warm-up: while the kernel is idle after ``%load_ext``, the modules the first question runs and the
``openai`` SDK are imported and the client for the endpoint in force is made on a background thread, so the
first question does not wait for them.

Importing the SDK, loading the certificate store and the SDK's chat resources take most of a second, longer
than everything else of a first answered cell together. A notebook usually runs ``%load_ext`` a while before
its first question: that pause is when the work is done, so the question then starts at once (about 0.2 s
instead of a second; ``bench/cold_start.py``). The client is the one ``make_client`` hands to every question
(``reuse=True``), so it is made once.

It runs only while no cell runs (the front end reports cells starting and ending: :func:`cell_started`,
:func:`cell_ended`), and starts only once the kernel has been idle for :data:`IDLE_BEFORE_START` seconds:
with one GIL, a thread importing beside a running cell slows that cell down by more than it saves
(every file the importer opens hands the GIL over), and a user's own cell should never pay for it. A question
asked before the warm-up started (cells run back to back) cancels it and imports the SDK itself; one asked
while it runs waits for it (:func:`wait`, from ``make_client``). This module imports nothing of
vision_magic's; the caller decides whether anything is warmed (not for a dry run, nor without a key: nothing
would be sent). Whatever goes wrong on the thread is dropped: the question then does the work itself and
reports any error as usual.

Examples
--------
>>> from vision_magic.engine import warm
>>> warm.wait()  # returns at once when nothing is warming (a waiting warm-up is cancelled)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

IDLE_BEFORE_START = 0.15  # seconds without a running cell before the warm-up starts ("Run all" never pauses)

_thread: threading.Thread | None = None
_changed = threading.Condition()  # guards the state below; notified when a cell starts or ends, or on cancel
_state = "off"  # off -> waiting -> working -> done; waiting -> cancelled
_running_cells = 0
_cells_started = 0  # counts cell starts: an idle spell is unbroken while it does not change


def begin(job: Callable[[], Any], *, busy: bool = False) -> bool:
    """Start the warm-up thread, once per process: it runs ``job`` (imports and makes the client: see
    :func:`vision_magic.engine.endpoints.warm_up_client`) once no cell has run for
    :data:`IDLE_BEFORE_START` seconds. ``busy``: a cell is running now (the one that ran ``%load_ext``; its
    end is reported by :func:`cell_ended`). Whether it started."""
    global _thread, _state, _running_cells
    with _changed:
        if _thread is not None:
            return False
        _state = "waiting"
        _running_cells = 1 if busy else 0
        _thread = threading.Thread(target=_warm, args=(job,), name="vision_magic-warm-up", daemon=True)
        _thread.start()
    if hasattr(os, "register_at_fork"):  # POSIX
        os.register_at_fork(before=_before_fork)
    return True


def cell_started() -> None:
    """A cell started running (the warm-up does not start while one runs)."""
    global _running_cells, _cells_started
    with _changed:
        _running_cells += 1
        _cells_started += 1
        _changed.notify_all()


def cell_ended() -> None:
    """A cell ended."""
    global _running_cells
    with _changed:
        _running_cells = max(0, _running_cells - 1)
        _changed.notify_all()


def wait() -> None:
    """For a question about to use the SDK: wait for a warm-up at work to finish; cancel one that has not
    started (the question then does the work itself). At once when none runs, or on the warm-up thread."""
    global _state
    thread = _thread
    if thread is None or thread is threading.current_thread():
        return
    with _changed:
        if _state == "waiting":
            _state = "cancelled"
            _changed.notify_all()
            return
    thread.join()


def state() -> str:
    """``off`` (never begun), ``waiting`` (for the kernel to be idle), ``working``, ``done`` or ``cancelled``
    (a question came first)."""
    return _state


def _before_fork() -> None:
    """``os.fork()`` (multiprocessing's default start method on Linux) while the warm-up imports would give
    the child the import locks the warm-up thread holds, with no thread to release them: the child's next
    import of that module would wait forever. So a fork waits for a warm-up at work (at most about a second);
    a waiting one holds no lock."""
    thread = _thread
    if _state == "working" and thread is not None and thread is not threading.current_thread():
        thread.join()


def _warm(job: Callable[[], Any]) -> None:
    global _state
    with _changed:
        while not _idle_long_enough():
            if _state == "cancelled":
                return
        _state = "working"
    try:
        with contextlib.suppress(Exception):  # the question does the work itself and reports any error
            job()
    finally:
        _state = "done"


def _idle_long_enough() -> bool:
    """With ``_changed`` held: wait until no cell has run for IDLE_BEFORE_START seconds (True), or until
    something changed (False: look again)."""
    if _state != "waiting":
        return False
    if _running_cells:
        _changed.wait()
        return False
    spell, deadline = _cells_started, time.monotonic() + IDLE_BEFORE_START
    while (left := deadline - time.monotonic()) > 0:
        _changed.wait(left)
        if _state != "waiting" or _running_cells or _cells_started != spell:
            return False
    return True
