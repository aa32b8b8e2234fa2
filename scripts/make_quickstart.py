"""Writes notebooks/quickstart.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from pathlib import Path

import nbformat as nbf
from notebook_setup import SETUP

cells = [
    nbf.v4.new_markdown_cell(
        "# vision_magic quickstart\n\n"
        "Ask a vision model about images with `%%ask_image`. Every kind of source is shown once below.\n\n"
        "Set `OPENAI_API_KEY` for OpenAI, or `OPENAI_BASE_URL` for any OpenAI-compatible server "
        "(Ollama with `VISION_MAGIC_MODEL=qwen2.5vl`, vLLM, LM Studio: recipes in docs/servers.md). With neither, this notebook runs as a **dry run**: it shows exactly "
        "what would be sent (thumbnails, sizes, tokens, the request JSON) and sends nothing."
    ),
    nbf.v4.new_code_cell(SETUP),
    nbf.v4.new_markdown_cell(
        "Make a few images to ask about: a phone-style photo (stored sideways, with GPS tags) and a chart."
    ),
    nbf.v4.new_code_cell(
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from PIL import Image\n\n"
        "Path('images').mkdir(exist_ok=True)\n"
        "y, x = np.mgrid[0:900, 0:1200]\n"
        "sky = np.stack([x * 255 // 1200, y * 255 // 900, np.full_like(x, 180)], axis=-1).astype('uint8')\n"
        "photo = Image.fromarray(sky).rotate(90, expand=True)  # stored sideways, as phones do\n"
        "exif = Image.Exif()\n"
        "exif[0x0112] = 6  # orientation: rotate 90 degrees to view\n"
        "exif[0x8825] = {1: 'N', 2: (52.0, 31.0, 12.0)}  # GPS: never leaves the machine\n"
        "photo.save('images/photo.jpg', exif=exif, quality=90)\n\n"
        "import matplotlib\n"
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot(range(10), [v * v for v in range(10)], label='squares')\n"
        "ax.set_title('Growth'); ax.legend()\n"
        "fig.savefig('images/chart.png')\n"
        "plt.close(fig)\n"
        "sorted(p.name for p in Path('images').iterdir())"
    ),
    nbf.v4.new_markdown_cell(
        "### A file path (EXIF orientation applied, metadata stripped, resized to what the model uses)"
    ),
    nbf.v4.new_code_cell(
        "%%ask_image images/photo.jpg --out photo_answer\nWhat colours do you see, and which way is up?"
    ),
    nbf.v4.new_markdown_cell("### A glob, and a whole directory"),
    nbf.v4.new_code_cell("%%ask_image images/*.png\nWhat does this chart show?"),
    nbf.v4.new_code_cell("%%ask_image images/ -d low\nDescribe each image in one sentence."),
    nbf.v4.new_markdown_cell(
        "### Variables: a matplotlib figure and Axes, a PIL image, a numpy array, bytes, a list"
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(4, 3))\n"
        "ax.bar(['a', 'b', 'c'], [3, 1, 2])\n"
        "plt.close(fig)\n"
        "pil_img = Image.open('images/photo.jpg')\n"
        "array = np.linspace(0, 1, 64 * 64).reshape(64, 64)  # float in [0, 1]\n"
        "png_bytes = Path('images/chart.png').read_bytes()\n"
        "imgs = [pil_img, array]"
    ),
    nbf.v4.new_code_cell("%%ask_image fig ax.figure\nAre these the same plot?"),
    nbf.v4.new_code_cell("%%ask_image pil_img array png_bytes\nWhich of these is a chart?"),
    nbf.v4.new_code_cell("%%ask_image imgs[1]\n这张图片是什么？请用中文回答。"),
    nbf.v4.new_markdown_cell("### No source: the last image the notebook showed"),
    nbf.v4.new_code_cell("plt.plot([3, 1, 4, 1, 5, 9, 2, 6])\nplt.title('Digits of pi')\nplt.show()"),
    nbf.v4.new_code_cell("%%ask_image\nWhat does the plot above show?"),
    nbf.v4.new_markdown_cell(
        "### URLs\n\n`%%ask_image https://example.org/chart.png` sends the link for the server to fetch "
        "(`data:` URLs work too). Not run here, so this notebook needs no internet."
    ),
    nbf.v4.new_markdown_cell("### The Python API: `ask()`, `content_parts()` and the `Answer` object"),
    nbf.v4.new_code_cell(
        "answer = vision_magic.ask('Is the photo upright?', 'images/photo.jpg', detail='high')\n"
        "[img.describe() for img in answer.images]"
    ),
    nbf.v4.new_code_cell(
        "parts = vision_magic.content_parts('images/chart.png', prompt='What is this?', detail='low')\n"
        "[(p['type'], p.get('image_url', {}).get('url', p.get('text', ''))[:40]) for p in parts]"
    ),
    nbf.v4.new_code_cell("photo_answer"),
    nbf.v4.new_code_cell("vision_magic.last_answer"),
    nbf.v4.new_markdown_cell(
        "### An output you can see: `@N`, `@N:K`, `@-1`\n\n"
        "Any image a cell displayed is a source: `@N` is every image of the cell whose prompt shows `[N]`, "
        "`@N:K` its K-th image, `@-1` the cell run just before. The one-line `%ask_image` takes the sources "
        "first, then the question."
    ),
    nbf.v4.new_code_cell("Image.open('images/chart.png')  # shown as the cell's value"),
    nbf.v4.new_code_cell("%ask_image @-1 What is the trend here?"),
]

nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
out = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
out.parent.mkdir(exist_ok=True)
nbf.write(nb, out)
print(out)
