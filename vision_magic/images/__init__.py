"""The image layer: anything a user points at in, exactly what the model will see out.

Rules (checked by ``tests/test_layers.py``): this package imports Pillow, numpy (optional), the standard
library and :mod:`vision_magic.errors` only; never ``openai``, ``IPython``, ``ipywidgets``, nor
:mod:`vision_magic.engine` or :mod:`vision_magic.frontends`.

Modules
-------
sniff      MIME type from the bytes; lossless JPEG/PNG metadata stripping.
profiles   per-model facts as data: the size each model really uses, its image tokens, its prices.
encode     one image (bytes or PIL) to a :class:`PreparedImage`: upright, resized, encoded by content.
resolve    every source kind (paths, globs, URLs, figures, arrays, ...) to prepared images.
figures    a matplotlib figure as PNG bytes.
thumbnail  small previews for dry runs and the panel.
memo       prepared images of unchanged files, reused on re-runs.
download   fetching an image URL for servers that cannot.
parts      :func:`content_parts`, the pure front door: sources in, content parts out.
svg        SVG to PNG (with cairosvg when installed) for SVG outputs.
digest     what an image is whatever format carries it: the SHA-256 of its pixels (the replay key's).
"""
