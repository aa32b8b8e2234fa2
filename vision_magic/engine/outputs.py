"""Earlier outputs as sources: ``@N`` (every image cell ``[N]`` showed), ``@N:K`` (its K-th), ``@-1`` / ``@-2``
(the previous / second-previous cell).

:class:`OutputStore` keeps the images each cell displayed as the bytes that were displayed (nothing is
decoded), the newest ``%config VisionMagic.output_history`` cells and at most ``output_history_mb`` MB; the
oldest cells are dropped first. A front end fills it (``frontends/output_capture.py``); here references are
resolved into sources :mod:`vision_magic.images` prepares, which never learns about cells.

Examples
--------
>>> store = OutputStore()
>>> store.begin(3); store.add(3, "image/png", b"png-1"); store.add(3, "image/png", b"png-2"); store.end()
>>> [label for label, _ in resolve_reference("@3", store)], [label for label, _ in resolve_reference("@-1", store)]
(['@3:1', '@3:2'], ['@3:1', '@3:2'])
>>> resolve_reference("@7", store)
Traceback (most recent call last):
...
vision_magic.errors.SourceError: @7: cell [7] has not run yet; cells with images: @3 (2)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import SourceError

REFERENCE = re.compile(r"^@(-?\d+)(?::(-?\d+))?$")
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")
LISTED_CELLS = 12  # an error names at most this many cells with images (the newest)


@dataclass
class OutputImage:
    """One image a cell displayed: its MIME type, the bytes as displayed, and its display id (for updates)."""

    mime: str
    data: bytes
    display_id: str | None = None


class OutputStore:
    """The images of the newest cells' outputs, by execution count; bounded by cells and bytes.

    Attributes
    ----------
    max_cells, max_bytes : the bounds (``%config VisionMagic.output_history`` and ``output_history_mb``).
    nbytes : bytes of every image kept.
    running : the cell whose displays are being recorded, or None between cells and in unnumbered runs.
    current : the cell relative references (``@-1``) count back from: the cell being run, or after a cell
        the next one; None before any cell.

    Examples
    --------
    >>> store = OutputStore(max_cells=2)
    >>> for cell in (1, 2, 3):
    ...     store.add(cell, "image/png", b"x" * cell)
    >>> store.cells(), store.nbytes, store.dropped
    ([(2, 1), (3, 1)], 5, {1})
    """

    def __init__(self, max_cells: int = 50, max_bytes: int = 200_000_000) -> None:
        self.max_cells, self.max_bytes = max_cells, max_bytes
        self._cells: dict[int, list[OutputImage]] = {}  # insertion order: oldest first
        self.nbytes = 0
        self.dropped: set[int] = set()
        self.running: int | None = None
        self.current: int | None = None

    def begin(self, cell: int | None, next_cell: int | None = None) -> None:
        """A cell starts: ``cell`` is its execution count (None: a run without one, whose displays are not
        kept; relative references then count back from ``next_cell``). A number seen before (after
        ``%reset``) starts empty."""
        self.running = cell
        self.current = cell if cell is not None else next_cell
        if cell is not None:
            self._drop(cell)
            self.dropped.discard(cell)

    def end(self) -> None:
        """The cell has finished: later displays belong to no cell; ``@-1`` now means the cell just run."""
        if self.running is not None:
            self.current = self.running + 1
        self.running = None

    def add(self, cell: int, mime: str, data: bytes, display_id: str | None = None) -> None:
        """Keep one image ``cell`` displayed, then drop the oldest cells beyond the bounds (a cell already
        dropped, e.g. by an image larger than the byte bound, keeps nothing more: its K would be wrong)."""
        if cell in self.dropped:
            return
        self._cells.setdefault(cell, []).append(OutputImage(mime, data, display_id))
        self.nbytes += len(data)
        self.trim()

    def update(self, display_id: str, mime: str, data: bytes) -> str | None:
        """Replace the image shown under ``display_id`` (an ``update_display``); its reference ``@N:K``, or
        None when none is kept.

        >>> store = OutputStore(); store.add(2, "image/png", b"a"); store.add(2, "image/png", b"b", "d1")
        >>> store.update("d1", "image/png", b"c"), store.update("gone", "image/png", b"c")
        ('@2:2', None)
        """
        for cell, images in self._cells.items():
            for position, img in enumerate(images, 1):
                if img.display_id == display_id:
                    self.nbytes += len(data) - len(img.data)
                    img.mime, img.data = mime, data
                    self.trim()
                    return f"@{cell}:{position}"
        return None

    def images(self, cell: int) -> list[OutputImage]:
        """The images ``cell`` displayed, in order (empty when none is kept)."""
        return list(self._cells.get(cell, ()))

    def cells(self) -> list[tuple[int, int]]:
        """(cell, number of images) of every cell kept, oldest first."""
        return [(cell, len(images)) for cell, images in self._cells.items()]

    def limit(self, max_cells: int, max_bytes: int) -> None:
        """Set the bounds and drop what is now beyond them."""
        self.max_cells, self.max_bytes = max_cells, max_bytes
        self.trim()

    def trim(self) -> None:
        """Drop the oldest cells while more than ``max_cells`` cells or ``max_bytes`` bytes are kept."""
        while self._cells and (len(self._cells) > max(self.max_cells, 0) or self.nbytes > self.max_bytes):
            oldest = next(iter(self._cells))
            self._drop(oldest)
            self.dropped.add(oldest)

    def clear(self) -> None:
        """Forget every image (the bounds and cell numbering stay)."""
        self._cells.clear()
        self.nbytes = 0
        self.dropped.clear()

    def _drop(self, cell: int) -> None:
        self.nbytes -= sum(len(img.data) for img in self._cells.pop(cell, ()))


def is_reference(source: Any) -> bool:
    """True when ``source`` is a string naming earlier outputs: ``@N``, ``@N:K``, ``@-1``.

    Examples
    --------
    >>> is_reference("@3"), is_reference("@3:2"), is_reference("@-1"), is_reference("@cat.png"), is_reference(3)
    (True, True, True, False, False)
    """
    return isinstance(source, str) and REFERENCE.match(source.strip()) is not None


def resolve_reference(reference: str, store: OutputStore) -> list[tuple[str, OutputImage]]:
    """(label ``@N:K``, image) for each image ``reference`` names; a one-line :class:`SourceError` when it
    names none (a cell without images, one not run yet or dropped; a K out of range).

    Examples
    --------
    >>> store = OutputStore(); store.add(2, "image/png", b"a"); store.add(2, "image/jpeg", b"b")
    >>> [(label, img.mime) for label, img in resolve_reference("@2:2", store)]
    [('@2:2', 'image/jpeg')]
    >>> resolve_reference("@2:5", store)
    Traceback (most recent call last):
    ...
    vision_magic.errors.SourceError: @2:5: cell [2] shows 2 images (use @2:1 to @2:2)
    """
    text = reference.strip()
    match = REFERENCE.match(text)
    if match is None:
        raise SourceError(text, "not a reference to an earlier output (use @N, @N:K, @-1)")
    cell = int(match.group(1))
    if cell <= 0:
        if cell == 0:
            raise SourceError(text, "cells are numbered from 1 (use @-1 for the previous cell)")
        if store.current is None:
            raise SourceError(text, "no cell has run yet")
        relative, cell = cell, store.current + cell
        if cell < 1:
            raise SourceError(text, f"there is no cell {-relative} before this one{_listing(store)}")
    images = store.images(cell)
    if not images:
        raise SourceError(text, _missing(cell, store))
    if match.group(2) is None:
        return [(f"@{cell}:{k}", img) for k, img in enumerate(images, 1)]
    k = int(match.group(2))
    if not 1 <= k <= len(images):
        which = f"@{cell} or @{cell}:1" if len(images) == 1 else f"@{cell}:1 to @{cell}:{len(images)}"
        first = "images are counted from 1; " if k < 1 else ""
        plural = "s" if len(images) != 1 else ""
        raise SourceError(text, f"{first}cell [{cell}] shows {len(images)} image{plural} (use {which})")
    return [(f"@{cell}:{k}", images[k - 1])]


def _missing(cell: int, store: OutputStore) -> str:
    if cell in store.dropped:
        reason = (
            f"the images of cell [{cell}] were dropped (outputs of the newest {store.max_cells} cells, up to "
            f"{store.max_bytes / 1e6:g} MB, are kept: %config VisionMagic.output_history / output_history_mb)"
        )
    elif store.current is None or cell > store.current or (cell == store.current and store.running is None):
        reason = f"cell [{cell}] has not run yet"
    else:
        reason = f"cell [{cell}] shows no image"
    return reason + _listing(store)


def _listing(store: OutputStore) -> str:
    cells = store.cells()
    if not cells:
        return "; no cell has shown an image yet"
    shown = ", ".join(f"@{cell} ({n})" for cell, n in cells[-LISTED_CELLS:])
    older = f" and {len(cells) - LISTED_CELLS} older" if len(cells) > LISTED_CELLS else ""
    return f"; cells with images: {shown}{older}"


def sendable(image: OutputImage, label: str) -> bytes:
    """The bytes of ``image`` as :mod:`vision_magic.images` can prepare them (an SVG rasterised).

    Examples
    --------
    >>> sendable(OutputImage("image/png", b"png bytes"), "@1:1")
    b'png bytes'
    """
    from ..images.svg import rasterise_svg

    return rasterise_svg(image.data, label) if image.mime == "image/svg+xml" else image.data


def reference_items(reference: str, store: OutputStore) -> list[tuple[str, Any]]:
    """(label, bytes) per image of ``reference``; a problem becomes the item's :class:`SourceError` (so a
    batch gives it its own row): one item for the whole reference, or one per SVG that cannot be drawn.

    Examples
    --------
    >>> store = OutputStore(); store.add(1, "image/png", b"a"); store.add(1, "image/png", b"b")
    >>> reference_items("@1", store)
    [('@1:1', b'a'), ('@1:2', b'b')]
    >>> [(label, str(e)) for label, e in reference_items("@4", store)]
    [('@4', '@4: cell [4] has not run yet; cells with images: @1 (2)')]
    """
    try:
        found = resolve_reference(reference, store)
    except SourceError as e:
        return [(reference.strip(), e)]
    items: list[tuple[str, Any]] = []
    for label, image in found:
        try:
            items.append((label, sendable(image, label)))
        except SourceError as e:
            items.append((label, e))
    return items


def with_references(sources: Iterable[Any], store: OutputStore) -> list[Any]:
    """``sources`` with each reference (``@N``, ``@N:K``, ``@-1``) replaced by the images it names, labelled
    ``@N:K``; a reference that names none, or an SVG that cannot be drawn, becomes a bad source listed with
    every other problem of the request.

    Examples
    --------
    >>> store = OutputStore(); store.add(2, "image/png", b"png")
    >>> [type(s).__name__ for s in with_references(["cat.png", "@2", "@9"], store)]
    ['str', 'Group', 'BadSource']
    """
    from ..images.resolve import BadSource, Group

    out: list[Any] = []
    for src in sources:
        if not is_reference(src):
            out.append(src)
            continue
        items = reference_items(src, store)
        if len(items) == 1 and items[0][0] == src.strip() and isinstance(items[0][1], SourceError):
            out.append(BadSource(items[0][1]))
        else:
            out.append(
                Group([(label, BadSource(v) if isinstance(v, SourceError) else v) for label, v in items])
            )
    return out
