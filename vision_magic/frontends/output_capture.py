"""Capture the images the notebook displays: each cell's, for ``@N`` references, and the last one shown, for
a bare ``%%ask_image``.

The extension wraps the shell's display publisher and display hook: the image of a published bundle
(``image/png``, ``image/jpeg``, ``image/gif``, ``image/webp`` or ``image/svg+xml``: a figure shown by the inline
backend, ``display(img)``, a PIL image as a cell's value, a display inside an ``ipywidgets.Output``) is kept
as the bytes displayed in the session's store of outputs, under the execution count of the cell being run
(``pre_run_cell`` / ``post_run_cell`` events say which). Nothing is decoded here. :func:`uninstall` puts the
originals back.

In a Jupyter kernel each kept image output is stamped in its metadata with its reference and the kernel's
session, ``{"vision_magic": {"ref": "@3:1", "kernel": "<session id>"}}``: the JupyterLab extension inserts
``@3:1`` only when the running kernel made that output (a notebook saved by an earlier kernel gets the
image's bytes saved next to it instead; docs/jupyterlab.md).
"""

from __future__ import annotations

import base64
import weakref
from typing import Any

from ..engine.outputs import IMAGE_MIMES
from ..engine.session import Session, current


def bundle_image(bundle: Any) -> tuple[str, bytes] | None:
    """(MIME type, bytes as displayed) of the image in a mime bundle (the first of PNG, JPEG, GIF, WebP, SVG
    it holds), or None. Base64 text is decoded to its bytes; an SVG's text is kept as UTF-8.

    Examples
    --------
    >>> bundle_image({"text/plain": "<Figure>", "image/png": "iVBORw0KGgo="})
    ('image/png', b'\\x89PNG\\r\\n\\x1a\\n')
    >>> bundle_image({"image/svg+xml": "<svg/>"}), bundle_image({"text/plain": "3"})
    (('image/svg+xml', b'<svg/>'), None)
    """
    if not isinstance(bundle, dict):
        return None
    for mime in IMAGE_MIMES:
        data = bundle.get(mime)
        if not data:
            continue
        if isinstance(data, str):
            try:
                data = data.encode() if mime == "image/svg+xml" else base64.b64decode(data)
            except ValueError:
                continue
        if isinstance(data, (bytes, bytearray)):
            return mime, bytes(data)
    return None


def remember(
    bundle: Any,
    where: str = "output",
    session: Session | None = None,
    *,
    display_id: str | None = None,
    update: bool = False,
) -> str | None:
    """Keep the image of a mime bundle, if any: in the session's store of outputs under the cell being run
    (``@N:K``; an update of a display replaces the image it showed), and, unless it is an SVG, as the last
    image shown. Returns the reference it is kept under, or None.

    Examples
    --------
    >>> s = Session(); remember({"image/png": "iVBORw0KGgo="}, "display", s); s.last_shown
    ('the last image shown (display)', b'\\x89PNG\\r\\n\\x1a\\n')
    >>> s.outputs.begin(4); remember({"image/png": "iVBORw0KGgo="}, "display", s)
    '@4:1'
    >>> s.last_shown[0]
    '@4:1, the last image shown'
    """
    found = bundle_image(bundle)
    if found is None:
        return None
    mime, data = found
    session = session or current()
    store = session.output_store()
    description = f"the last image shown ({where})"
    reference = None
    if update and display_id:
        reference = store.update(display_id, mime, data)
    elif store.running is not None:
        store.add(store.running, mime, data, display_id)
        kept = store.images(store.running)
        if kept and kept[-1].data is data:
            reference = f"@{store.running}:{len(kept)}"
            description = f"{reference}, the last image shown"
    if mime != "image/svg+xml":
        session.last_shown = (description, data)
    return reference


def stamped(metadata: Any, reference: str, kernel: str) -> dict[str, Any]:
    """A copy of an output's metadata with the stamp the JupyterLab extension reads (the caller's dict is
    left alone).

    Examples
    --------
    >>> stamped({"image/png": {"width": 300}}, "@3:1", "k-1")
    {'image/png': {'width': 300}, 'vision_magic': {'ref': '@3:1', 'kernel': 'k-1'}}
    >>> stamped(None, "@3:1", "k-1")
    {'vision_magic': {'ref': '@3:1', 'kernel': 'k-1'}}
    """
    merged = dict(metadata) if isinstance(metadata, dict) else {}
    merged["vision_magic"] = {"ref": reference, "kernel": kernel}
    return merged


def _kernel_session(owner: Any) -> str | None:
    """The session id of the Jupyter kernel whose publisher ``owner`` is (the ``session`` of every message
    it sends), or None outside a kernel."""
    session = getattr(getattr(owner, "session", None), "session", None)
    return session if isinstance(session, str) and session else None


# (shell attribute, method, where the image was shown, the method's metadata argument)
_TARGETS = (
    ("display_pub", "publish", "display", "metadata"),
    ("displayhook", "write_format_data", "cell result", "md_dict"),
)


class _Capture:
    """The wrappers put on one shell, and whether they capture (a wrapper that another wrapper has since
    wrapped cannot be taken out of the chain; it is switched off instead)."""

    def __init__(self) -> None:
        self.enabled = True
        self.events: list[tuple[str, Any]] = []  # (event name, callback) registered on the shell
        self.wrapped: list[
            tuple[Any, str, Any, bool, Any]
        ] = []  # (owner, method, original, had_own, wrapper)


_captures: weakref.WeakKeyDictionary[Any, _Capture] = weakref.WeakKeyDictionary()


def install(shell: Any) -> None:
    """Wrap ``shell``'s display publisher and display hook to feed :func:`remember` (once per shell; a
    second install after :func:`uninstall` switches the same wrappers back on)."""
    capture = _captures.get(shell)
    if capture is None:
        capture = _captures[shell] = _Capture()
    capture.enabled = True
    for owner_name, method, where, metadata_name in _TARGETS:
        owner = getattr(shell, owner_name, None)
        if owner is None or not hasattr(owner, method):
            continue
        if any(o is owner and m == method for o, m, *_ in capture.wrapped):
            continue  # still wrapped (switched back on above)
        original = getattr(owner, method)

        def wrapper(
            data: Any,
            *args: Any,
            _original: Any = original,
            _where: str = where,
            _metadata: str = metadata_name,
            _owner: Any = owner,
            **kwargs: Any,
        ) -> Any:
            if capture.enabled:
                display_id = (kwargs.get("transient") or {}).get("display_id")
                reference = remember(data, _where, display_id=display_id, update=bool(kwargs.get("update")))
                kernel = _kernel_session(_owner) if reference else None
                if reference and kernel:
                    if args:
                        args = (stamped(args[0], reference, kernel), *args[1:])
                    else:
                        kwargs[_metadata] = stamped(kwargs.get(_metadata), reference, kernel)
            return _original(data, *args, **kwargs)

        capture.wrapped.append((owner, method, original, method in vars(owner), wrapper))
        setattr(owner, method, wrapper)
    _watch_cells(shell, capture)


def _watch_cells(shell: Any, capture: _Capture) -> None:
    """Tell the session which cell runs: count every run (``Session.cell_runs``), and give the store of
    outputs its execution count, the number its prompt shows (a run that stores no history has none; its
    displays are not kept under a number)."""
    events = getattr(shell, "events", None)
    if events is None or capture.events:
        return

    def begin(info: Any = None) -> None:
        if capture.enabled:
            session = current()
            session.cell_runs += 1  # every run, numbered or not: "this cell" vs "a later one" (render.py)
            count = shell.execution_count  # already counts this cell when it stores history
            numbered = bool(getattr(info, "store_history", False))
            session.output_store().begin(count - 1 if numbered else None, next_cell=count)

    def end(*_: Any) -> None:
        if capture.enabled:
            current().outputs.end()

    for name, callback in (("pre_run_cell", begin), ("post_run_cell", end)):
        events.register(name, callback)
        capture.events.append((name, callback))
    running = _running_cell(shell)
    store = current().outputs
    if store.running is None and running is not None:  # loaded by the cell that is running: it counts too
        store.running = store.current = running


def _running_cell(shell: Any) -> int | None:
    """The execution count of the cell running now when it has one (IPython hands the display hook the
    cell's result while its code runs), else None."""
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    info = getattr(result, "info", None)
    count = getattr(result, "execution_count", None)
    numbered = getattr(info, "store_history", False) and not getattr(info, "silent", False)
    return count if numbered and isinstance(count, int) else None


def uninstall(shell: Any) -> None:
    """Undo :func:`install`: nothing is captured any more, and the publisher and display hook are what they
    were before wherever no other code has wrapped them since."""
    capture = _captures.get(shell)
    if capture is None:
        return
    capture.enabled = False
    for name, callback in capture.events:
        if callback in shell.events.callbacks.get(name, []):
            shell.events.unregister(name, callback)
    capture.events = []
    current().outputs.end()
    kept = []
    for owner, method, original, had_own, wrapper in capture.wrapped:
        if vars(owner).get(method) is not wrapper:
            kept.append((owner, method, original, had_own, wrapper))  # wrapped again by someone else
        elif had_own:
            setattr(owner, method, original)
        else:
            delattr(owner, method)
    capture.wrapped = kept
    if not kept:
        del _captures[shell]


def installed(shell: Any) -> bool:
    """True while images the shell displays are captured."""
    capture = _captures.get(shell)
    return capture is not None and capture.enabled
