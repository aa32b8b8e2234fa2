"""Writes notebooks/plots.ipynb and notebooks/teaching.ipynb (kept as code so their cells are reviewed as text).

Both run top to bottom against any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY) and, with
neither set, as a dry run that shows what would be sent.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf
from notebook_setup import SETUP

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell

INTRO = (
    "Set `OPENAI_API_KEY` for OpenAI, or `OPENAI_BASE_URL` for any OpenAI-compatible server (Ollama with "
    "`VISION_MAGIC_MODEL=qwen2.5vl`, vLLM, LM Studio: recipes in docs/servers.md). With neither, the notebook runs as a **dry run**: it shows what would be sent and sends nothing."
)

plots = [
    md(
        "# Asking about plots\n\n"
        "Captions and alt text for matplotlib figures with `vision_magic.annotate`, comparing two figures, "
        "and asking about the last plot shown.\n\n" + INTRO
    ),
    code(SETUP),
    md(
        "Two figures of the same (made-up) data: monthly visitors of two museums, on a linear and a log scale."
    ),
    code(
        "import numpy as np\n"
        "import matplotlib.pyplot as plt\n\n"
        "months = np.arange(1, 13)\n"
        "north = 1000 + 120 * months + 80 * np.sin(months)\n"
        "south = 400 * 1.25 ** months\n\n"
        "fig_a, ax = plt.subplots(figsize=(6, 4))\n"
        "ax.plot(months, north, marker='o', label='North museum')\n"
        "ax.plot(months, south, marker='s', label='South museum')\n"
        "ax.set_title('Monthly visitors, 2025')\n"
        "ax.set_xlabel('month'); ax.set_ylabel('visitors')\n"
        "ax.legend()\n\n"
        "fig_b, ax_b = plt.subplots(figsize=(6, 4))\n"
        "ax_b.semilogy(months, north, marker='o', label='North museum')\n"
        "ax_b.semilogy(months, south, marker='s', label='South museum')\n"
        "ax_b.set_title('Monthly visitors, 2025 (log scale)')\n"
        "ax_b.set_xlabel('month'); ax_b.set_ylabel('visitors')\n"
        "ax_b.legend()\n"
        "plt.close(fig_a); plt.close(fig_b)  # annotate() and the magic show them where needed"
    ),
    md(
        "### A caption\n\n"
        "`annotate` shows the figure with the answer under it and returns the text. Its default question "
        "also gives the model what matplotlib knows exactly (title, axis labels, limits, legend entries):"
    ),
    code("from vision_magic.frontends.annotate import figure_facts\n\nprint(figure_facts(fig_a))"),
    code("caption = vision_magic.annotate(fig_a)"),
    md("The returned text can go straight into the figure (in a dry run it is empty):"),
    code(
        "if caption:\n"
        "    fig_a.text(0.5, -0.02, caption.splitlines()[0][:120], ha='center', va='top', fontsize=8, wrap=True)\n"
        "fig_a"
    ),
    md("### Alt text, and an interpretation with your own options"),
    code("alt = vision_magic.annotate(fig_a, kind='alt', detail='low')"),
    code(
        "interpretation = vision_magic.annotate(\n"
        "    ax_b, kind='interpret', max_tokens=300, display=False\n"
        ")\n"
        "print(interpretation or '(dry run: nothing was sent)')"
    ),
    md("### Comparing two figures"),
    code(
        "%%ask_image fig_a fig_b -d low\nThese two plots show the same data. What does the log scale reveal?"
    ),
    md(
        "### The last plot shown\n\nWith no source, `%%ask_image` asks about the last image the notebook showed."
    ),
    code(
        "x = np.linspace(0, 4 * np.pi, 200)\n"
        "plt.plot(x, np.sin(x) * np.exp(-x / 6))\n"
        "plt.title('A damped oscillation')\n"
        "plt.show()"
    ),
    code("%%ask_image\nWhat does the plot above show? Estimate the period."),
    md(
        "### An earlier output by its number\n\n"
        "`@N` is every image the cell `[N]` displayed, `@-1` and `@-2` the cells run just before this one; "
        "`%ask_image` asks on one line."
    ),
    code("%ask_image @-2 -d low Is the oscillation really damped? By how much per period?"),
    md("### From Python"),
    code(
        "answer = vision_magic.ask('Which museum grows faster?', fig_a, fig_b, display=False)\n"
        "print(answer.text or f'(dry run: about {answer.estimated_tokens} image tokens would be sent)')"
    ),
]

teaching = [
    md(
        "# A class demo: the ask panel\n\n"
        "`vision_magic.ask_panel()` puts a small app in front of students: the images in play as thumbnails, "
        "an upload button, a URL field, a *current figure* button, a prompt box, model and detail pickers with "
        "a live token estimate, and Ask / Stop. The answer streams into the panel.\n\n" + INTRO
    ),
    code(SETUP),
    code(
        "# A student with the answers recorded when the teacher ran this lesson (see the end) and no key:\n"
        "# with VISION_MAGIC_REPLAY_ONLY=1 they are replayed instead of a dry run, and nothing is sent.\n"
        "if vision_magic.settings().replay_only:\n"
        "    get_ipython().run_line_magic('config', 'VisionMagic.dry_run = False')\n"
        "    print('REPLAY ONLY: recorded answers are shown, nothing is sent.')"
    ),
    md("Today's material: a drawing of shapes and a chart."),
    code(
        "from pathlib import Path\n"
        "from PIL import Image, ImageDraw\n"
        "import matplotlib.pyplot as plt\n\n"
        "Path('images').mkdir(exist_ok=True)\n"
        "shapes = Image.new('RGB', (480, 320), 'white')\n"
        "draw = ImageDraw.Draw(shapes)\n"
        "draw.ellipse((30, 60, 170, 200), fill='red')\n"
        "draw.rectangle((200, 80, 300, 180), fill='blue')\n"
        "draw.polygon([(340, 200), (450, 200), (395, 90)], fill='green')\n"
        "shapes.save('images/shapes.png')\n\n"
        "fig, ax = plt.subplots(figsize=(5, 3))\n"
        "ax.bar(['red', 'blue', 'green'], [1, 1, 1], color=['red', 'blue', 'green'])\n"
        "ax.set_title('Shapes by colour')\n"
        "fig.savefig('images/chart.png')\n"
        "plt.close(fig)\n"
        "sorted(p.name for p in Path('images').iterdir())"
    ),
    md(
        "### The panel\n\n"
        "Students type a question and click **Ask**; **Stop** ends a long answer and keeps what arrived. "
        "Changing the model or detail updates the token estimate before anything is sent."
    ),
    code(
        "panel = vision_magic.ask_panel(\n"
        "    'images/shapes.png', prompt='How many shapes are there, and what colours are they?', detail='low'\n"
        ")\n"
        "panel"
    ),
    md("What the Ask button does, from code (handy when preparing the lesson):"),
    code(
        "answer = panel.ask(wait=True)\n"
        "print(answer.text or f'(dry run: about {answer.estimated_tokens} image tokens would be sent)')"
    ),
    md("Add the chart to the question and compare the estimates for low and high detail:"),
    code(
        "panel.add_source('images/chart.png')\n"
        "low = panel.image_tokens\n"
        "panel.detail.value = 'high'\n"
        "print(f'{len(panel.sources)} images: ~{low} image tokens at low detail, ~{panel.image_tokens} at high')"
    ),
    md("### The same question with the magic\n\nFor students who prefer typing:"),
    code("%%ask_image images/shapes.png images/chart.png -d low\nDoes the chart match the drawing?"),
    md(
        "### Sharing the lesson with its answers\n\n"
        "Every answer above is saved in this notebook with a record of what was sent: the model, endpoint "
        "(never a key), prompt, options, each image's SHA-256, size and tokens, the usage and cost. The "
        "collapsed *sent* line under an answer shows the images and tokens; the record is the output's "
        "metadata (`vision_magic`):"
    ),
    code(
        "record = vision_magic.last_answer.record\n"
        "print({k: record[k] for k in ('model', 'endpoint', 'detail', 'usage', 'cost_usd', 'replayed')})\n"
        "print([(image['label'], image['sha256'][:12], image['tokens']) for image in record['images']])"
    ),
    md(
        "Run the lesson once with a key, save it, and give students the `.ipynb`. A student needs no key and "
        "no server: a first cell loads the recorded answers, and re-running the cells shows them, marked as "
        "replayed, sending nothing. With `replay_only`, a cell that was changed says what differs from the "
        "recording (the prompt, an image, the model, the detail) instead of sending it.\n\n"
        "```python\n"
        "vision_magic.replay_from('teaching.ipynb')   # or: %ask_image --replay-from teaching.ipynb\n"
        "%config VisionMagic.replay_only = True       # or: export VISION_MAGIC_REPLAY_ONLY=1\n"
        "```\n\n"
        "The answers can also travel on their own, as one JSON Lines file (keys and answers: no API key, no "
        "image bytes); a student loads it with `vision_magic.cache.load('lesson-answers.jsonl')`:"
    ),
    code(
        "n = vision_magic.cache.export('lesson-answers.jsonl')\nprint(f'{n} answers in lesson-answers.jsonl')"
    ),
]


def write(name: str, cells: list) -> Path:
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = Path(__file__).resolve().parent.parent / "notebooks" / name
    out.parent.mkdir(exist_ok=True)
    nbf.write(nb, out)
    return out


if __name__ == "__main__":
    import sys

    wanted = sys.argv[1:] or ["plots.ipynb", "teaching.ipynb"]  # e.g. only teaching.ipynb
    for name, cells in (("plots.ipynb", plots), ("teaching.ipynb", teaching)):
        if name in wanted:
            print(write(name, cells))
