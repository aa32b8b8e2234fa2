"""The front ends: everything that knows IPython or ipywidgets, over the engine's one ask path.

Rules (checked by ``tests/test_layers.py``): may import :mod:`vision_magic.engine`, :mod:`vision_magic.images`,
:mod:`vision_magic.errors`, IPython, ipywidgets; nothing below imports this package.

Modules
-------
extension        ``%load_ext`` / ``%unload_ext``: registers and undoes the magic, capture and error printer.
magic            ``%%ask_image``: the line becomes options, then one of three runs (question, each, cost).
magic_arguments  the magic's flags and how they become :class:`~vision_magic.engine.options.AskOptions`.
line_magic       the one-line ``%ask_image``: where the sources end and the question begins; keeping its ``?``.
api              :func:`ask` and :func:`chat` as the Python API, drawing into the notebook.
render           :class:`NotebookView`: the streaming answer display and the dry-run table.
output_capture   remembers the images the notebook displays, by cell (``@N``) and the last one (bare ``%%ask_image``).
panel            :func:`ask_panel`: prompt, pickers, estimate, Ask and Stop.
source_list      the panel's images: upload, URL, current figure, thumbnails.
annotate         :func:`annotate`: captions, alt text and interpretations of matplotlib figures.
"""
