"""vision_magic's JupyterLab extension: shipped prebuilt and enabled, its built files match its sources, its
TypeScript unit tests pass, and in a real JupyterLab in headless Chromium:

- a right-click on an output image inserts ``%%ask_image @N:K`` below its cell when the running kernel showed
  it, and the image's bytes saved next to the notebook when an earlier kernel did; the inserted cell runs
  against the test server and sends the image that was clicked;
- a right-click on a Markdown image inserts its path; an output without an execution count is refused with a
  notification; undo removes the inserted cell;
- a pasted or dropped image in an ``%%ask_image`` cell is saved (bytes equal) and named on the magic line; a
  text paste and a paste into another cell are left alone.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from pathlib import Path

import nbformat
from kernel_helpers import run_notebook
from lab_helpers import ROOT, WAIT_MS, Lab, screenshot, sent_line
from lab_helpers import open_notebook as _open_notebook
from PIL import Image

sys.path.insert(0, str(ROOT / "scripts"))
import labextension  # noqa: E402 - scripts/ is on the path from the line above

LAB_EXTENSION = True
EXPECTED_SENT_LINE = {
    "open": False,
    "summary": "sent: N image, N tokens",
    "tags": "summary sub sub",
    "visible": True,
}


# ---- packaging: no browser needed ------------------------------------------------------------------------


def test_built_extension_matches_its_sources():
    assert labextension.stale() is None, "run: python scripts/labextension.py build"


def test_staleness_check_notices_an_edited_source(tmp_path):
    copy = tmp_path / "labextension"
    for file in labextension.hashed_files():
        target = copy / file.relative_to(labextension.SOURCES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    assert labextension.source_hash(copy) == labextension.source_hash()
    (copy / "src" / "logic.ts").write_text((copy / "src" / "logic.ts").read_text() + "\n// edited\n")
    assert labextension.source_hash(copy) != labextension.source_hash()


def test_typescript_unit_tests_pass():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "labextension.py"), "test"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"# pass [1-9]\d*", done.stdout) and "# fail 0" in done.stdout


def test_extension_is_listed_as_enabled():
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert re.search(r"vision-magic v0\.1\.0 enabled\s+OK \(python, vision_magic\)", listing), listing


def test_wheel_and_sdist_ship_the_built_extension(tmp_path, monkeypatch):
    import tarfile

    from hatchling.build import build_sdist, build_wheel  # the PEP 517 hooks pip calls

    monkeypatch.chdir(ROOT)
    wheel = tmp_path / build_wheel(str(tmp_path))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shared = [n for n in names if "/data/share/jupyter/labextensions/vision-magic/" in n]
    assert any(n.endswith("/vision-magic/package.json") for n in shared), names
    assert any(n.endswith("/vision-magic/install.json") for n in shared)
    assert any(re.search(r"/vision-magic/static/remoteEntry\.\w+\.js$", n) for n in shared)
    assert any(n.endswith("/schemas/vision-magic/plugin.json") for n in shared)
    sdist = tmp_path / build_sdist(str(tmp_path))
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("vision_magic/labextension/package.json") for m in members)
    assert any(m.endswith("labextension/src/index.ts") for m in members)
    assert not any("node_modules" in m for m in members)


# ---- helpers for the browser tests -----------------------------------------------------------------------


def _png(colour: str, size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _sent_colour(lab: Lab) -> tuple[int, int, int]:
    """The mean colour of the one image in the test server's last chat request."""
    parts = [
        p
        for m in lab.model_server.last.body["messages"]
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]
    assert len(parts) == 1, parts
    data = base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1])
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
    return img.getpixel((0, 0))


def _cell_sources(page) -> list[str]:
    return page.evaluate(
        "() => jupyterapp.shell.currentWidget.content.widgets.map(c => c.model.sharedModel.getSource())"
    )


def _wait_cells(page, count: int) -> None:
    page.wait_for_function(
        f"() => jupyterapp.shell.currentWidget.content.widgets.length === {count}", timeout=WAIT_MS
    )


def _ask_via_menu(page, image) -> None:
    image.click(button="right")
    item = page.locator(".lm-Menu-item", has_text="Ask about this image")
    item.wait_for()
    item.click()


def _insert_via_menu(page, image) -> list[str]:
    """Ask about ``image`` from its context menu; wait for the inserted cell; return the cells' sources."""
    before = len(_cell_sources(page))
    _ask_via_menu(page, image)
    _wait_cells(page, before + 1)
    return _cell_sources(page)


def _notebook(lab: Lab, cells: list, name: str = "nb.ipynb") -> tuple[Path, str]:
    folder = lab.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, folder / name)
    return folder, f"{folder.name}/{name}"


def open_notebook(page, lab: Lab, path: str, run_all: bool = True) -> None:
    """Open the notebook; the extension must have activated (an error in its activate() is a console error)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "vision-magic" in m.text else None)
    _open_notebook(page, lab, path, run_all)
    assert page.evaluate(
        "() => jupyterapp.hasPlugin('vision-magic:plugin') && jupyterapp.isPluginActivated('vision-magic:plugin')"
    )
    assert not errors, errors


def _run_answer(page, cell_index: int, prompt: str) -> object:
    """Type ``prompt`` where the cursor is (the inserted cell's prompt line), run the cell, wait for the answer."""
    page.keyboard.type(prompt)
    page.keyboard.press("Shift+Enter")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(cell_index)
    answer = cell.locator(".jp-OutputArea-output[data-mime-type='text/markdown']")
    answer.filter(has_text=f"You asked: {prompt}").wait_for()
    answer.locator("sub", has_text="tokens in").wait_for()
    return cell


# ---- the running kernel's outputs --------------------------------------------------------------------------


def test_right_click_an_output_inserts_its_reference_and_the_cell_sends_that_image(lab, page):
    folder, path = _notebook(
        lab,
        [
            nbformat.v4.new_code_cell("%load_ext vision_magic"),
            nbformat.v4.new_code_cell(
                "from PIL import Image\nfrom IPython.display import display\n"
                "display(Image.new('RGB', (64, 64), 'red'))\ndisplay(Image.new('RGB', (64, 64), 'blue'))"
            ),
            nbformat.v4.new_code_cell(
                "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]); plt.title('a line');"
            ),
            nbformat.v4.new_markdown_cell("A chart:\n\n![chart](pics/chart.png)"),
        ],
    )
    (folder / "pics").mkdir()
    (folder / "pics" / "chart.png").write_bytes(_png("green", (40, 30)))
    try:
        open_notebook(page, lab, path)
        outputs = page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-OutputArea-output img")
        outputs.nth(1).wait_for()
        figure = page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-OutputArea-output img")
        figure.wait_for()

        # the inline figure (cell [3]): inserted below it; undo removes the inserted cell in one step
        assert _insert_via_menu(page, figure)[3] == "%%ask_image @3:1\n"
        page.keyboard.press("Escape")
        page.keyboard.press("z")
        _wait_cells(page, 4)
        assert "%%ask_image" not in "".join(_cell_sources(page))

        # the Markdown image: its path relative to the notebook
        page.locator(".jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown img").wait_for()
        markdown_image = page.locator(".jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown img")
        assert _insert_via_menu(page, markdown_image)[4] == "%%ask_image pics/chart.png\n"
        cell = _run_answer(page, 4, "What colour is the chart?")
        assert _sent_colour(lab)[1] > 100 and _sent_colour(lab)[0] < 60  # green

        # the second image of cell [2]: @2:2, and the blue square is what the model gets
        outputs.nth(1).click(button="right")
        menu = page.locator(".lm-Menu")
        menu.wait_for()
        screenshot(page, "labextension_menu.png")
        before = len(_cell_sources(page))
        page.locator(".lm-Menu-item", has_text="Ask about this image").click()
        _wait_cells(page, before + 1)
        assert _cell_sources(page)[2] == "%%ask_image @2:2\n"
        top = page.locator(".jp-Notebook .jp-Cell").nth(1).bounding_box()
        bottom = page.locator(".jp-Notebook .jp-Cell").nth(2).bounding_box()
        screenshot(
            page,
            "labextension_inserted.png",
            clip={
                "x": top["x"],
                "y": top["y"],
                "width": top["width"],
                "height": bottom["y"] + bottom["height"] - top["y"],
            },
        )
        cell = _run_answer(page, 2, "Which colour is this square?")
        assert (
            lab.model_server.last.body["messages"][-1]["content"][0]["text"] == "Which colour is this square?"
        )
        r, g, b = _sent_colour(lab)
        assert b > 200 and r < 40 and g < 40, (r, g, b)
        assert sent_line(cell) == EXPECTED_SENT_LINE  # as without the extension (test_browser.py)
    finally:
        lab.delete_sessions(path)


# ---- a notebook saved by an earlier kernel -----------------------------------------------------------------


def _executed_elsewhere(folder: Path, name: str, monkeypatch) -> dict:
    """Run a notebook with nbclient (a kernel that is gone afterwards), as if saved yesterday."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext vision_magic"),
        nbformat.v4.new_code_cell("from PIL import Image\nImage.new('RGB', (48, 48), (250, 200, 0))"),
    ]
    run_notebook(nb, folder, {"OPENAI_API_KEY": "", "MPLBACKEND": "Agg"}, monkeypatch, timeout=120)
    # a third cell: an image output without an execution count (cleared counts, another tool's output)
    orphan = nbformat.v4.new_code_cell("Image.new('RGB', (48, 48), 'purple')")
    orphan.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(_png("purple")).decode()})
    ]
    nb.cells.append(orphan)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, folder / name)
    return nb


def test_an_earlier_kernels_output_is_handed_over_as_a_file_and_the_cell_runs(lab, page, monkeypatch):
    folder = lab.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    nb = _executed_elsewhere(folder, "saved.ipynb", monkeypatch)
    output = nb.cells[1].outputs[0]
    stamp = output["metadata"]["vision_magic"]
    assert stamp["ref"] == "@2:1" and len(stamp["kernel"]) >= 16  # the kernel side stamped its output
    saved_png = base64.b64decode(output["data"]["image/png"])
    path = f"{folder.name}/saved.ipynb"
    try:
        open_notebook(page, lab, path, run_all=False)  # a new kernel: its @2 is not yesterday's
        cells = page.locator(".jp-Notebook .jp-CodeCell")

        # no execution count: a notification, no cell
        cells.nth(2).locator(".jp-OutputArea-output img").wait_for()
        _ask_via_menu(page, cells.nth(2).locator(".jp-OutputArea-output img"))
        page.get_by_text("no execution count").first.wait_for()
        assert len(_cell_sources(page)) == 3

        inserted = _insert_via_menu(page, cells.nth(1).locator(".jp-OutputArea-output img"))[2]
        match = re.fullmatch(r"%%ask_image (images/output-[0-9a-f]{16}\.png)\n", inserted)
        assert match, inserted
        assert (folder / match.group(1)).read_bytes() == saved_png  # the bytes the notebook holds
        _run_answer(page, 2, "What colour is this?")  # runs without running the notebook's first cell
        r, g, b = _sent_colour(lab)
        assert r > 200 and 150 < g < 230 and b < 40, (r, g, b)
    finally:
        lab.delete_sessions(path)


# ---- paste and drop ------------------------------------------------------------------------------------------

_PASTE = """([index, b64, name, kind]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const data = new DataTransfer();
  if (kind === 'text') { data.setData('text/plain', b64); }
  else { data.items.add(new File([bytes], name, {type: 'image/png'})); }
  const target = document.querySelectorAll('.jp-Notebook .jp-Cell')[index].querySelector('.cm-content');
  const event = kind === 'drop'
    ? new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})
    : new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true});
  target.dispatchEvent(event);
}"""


def test_paste_and_drop_an_image_into_an_ask_image_cell(lab, page):
    folder, path = _notebook(
        lab,
        [nbformat.v4.new_code_cell("%%ask_image\nWhat is this?"), nbformat.v4.new_code_cell("x = 1")],
    )
    pasted, dropped = _png("orange", (30, 20)), _png("teal", (20, 30))
    try:
        open_notebook(page, lab, path, run_all=False)
        page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").click()

        # into another cell: left alone (JupyterLab's own behaviour; checked at the end)
        page.evaluate(_PASTE, [1, base64.b64encode(pasted).decode(), "image.png", "paste"])

        # a clipboard screenshot: saved under images/, named on the magic line
        page.evaluate(_PASTE, [0, base64.b64encode(pasted).decode(), "image.png", "paste"])
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.getSource()"
            ".split('\\n')[0].includes('images/pasted-')",
            timeout=WAIT_MS,
        )
        first_line = _cell_sources(page)[0].split("\n")[0]
        name = re.fullmatch(r"%%ask_image (images/pasted-\d{8}-\d{6}\.png)", first_line)
        assert name, first_line
        assert (folder / name.group(1)).read_bytes() == pasted

        # a file dropped from the desktop: its own name, quoted (it has a space)
        page.evaluate(_PASTE, [0, base64.b64encode(dropped).decode(), "my shot.png", "drop"])
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.getSource().includes('my shot')",
            timeout=WAIT_MS,
        )
        assert _cell_sources(page)[0] == f'%%ask_image {name.group(1)} "images/my shot.png"\nWhat is this?'
        assert (folder / "images" / "my shot.png").read_bytes() == dropped
        # the same name again: a new file, never an overwrite
        page.evaluate(_PASTE, [0, base64.b64encode(pasted).decode(), "my shot.png", "drop"])
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.getSource().includes('my shot-2')",
            timeout=WAIT_MS,
        )
        assert (folder / "images" / "my shot.png").read_bytes() == dropped
        assert (folder / "images" / "my shot-2.png").read_bytes() == pasted

        # a text paste into the ask cell: CodeMirror inserts the text as always (the extension let it through)
        page.evaluate(_PASTE, [0, "c2VlIGFsc28=", "", "text"])
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.getSource()"
            ".includes('c2VlIGFsc28=')",
            timeout=WAIT_MS,
        )
        assert _cell_sources(page)[1] == "x = 1"  # the image pasted into the other cell changed nothing
        assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(
            [Path(name.group(1)).name, "my shot.png", "my shot-2.png"]
        )
    finally:
        lab.delete_sessions(path)


def test_a_failed_save_is_a_notification(lab, page):
    folder, path = _notebook(lab, [nbformat.v4.new_code_cell("%%ask_image\nWhat is this?")])
    (folder / "images").write_text("a file where the folder should be")
    try:
        open_notebook(page, lab, path, run_all=False)
        page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".cm-content").click()
        page.evaluate(_PASTE, [0, base64.b64encode(_png("red")).decode(), "image.png", "paste"])
        page.get_by_text("Could not save the pasted image").first.wait_for()
        assert _cell_sources(page)[0] == "%%ask_image\nWhat is this?"
    finally:
        lab.delete_sessions(path)


def test_sent_line_expectation_matches_the_one_without_the_extension():
    import test_browser

    assert json.dumps(EXPECTED_SENT_LINE, sort_keys=True) == json.dumps(
        test_browser.EXPECTED_SENT_LINE, sort_keys=True
    )


def _put_settings(lab: Lab, raw: dict) -> None:
    body = json.dumps({"raw": json.dumps(raw)}).encode()
    req = urllib.request.Request(
        f"{lab.url}/lab/api/settings/vision-magic:plugin",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 204


def test_settings_palette_widget_images_broken_images_and_a_large_paste(lab, page):
    import numpy as np

    noise = io.BytesIO()
    pixels = np.random.default_rng(7).integers(0, 255, (3700, 3700, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(noise, "PNG", compress_level=1)
    large = noise.getvalue()
    assert len(large) > 40_000_000  # a 40 MB paste: saved in 4 MB requests
    folder, path = _notebook(
        lab,
        [
            nbformat.v4.new_code_cell("%load_ext vision_magic"),
            nbformat.v4.new_code_cell(
                "import ipywidgets as w\nfrom PIL import Image\nfrom IPython.display import display\n"
                "out = w.Output()\nwith out:\n    display(Image.new('RGB', (40, 40), 'magenta'))\nout"
            ),
            nbformat.v4.new_code_cell("display(Image.new('RGB', (50, 50), 'cyan'))\nprint('done')"),
            nbformat.v4.new_markdown_cell("![gone](missing.png)"),
            nbformat.v4.new_code_cell("%%ask_image\nWhat is this?"),
        ],
    )
    _put_settings(lab, {"imagesFolder": "shots/today", "defaultPrompt": "Describe it."})
    try:
        open_notebook(page, lab, path)
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(2).locator(".jp-OutputArea-output img").wait_for()

        # a broken image: the menu item is disabled and says why
        cells.nth(3).locator(".jp-RenderedMarkdown img").click(button="right")
        item = page.locator(".lm-Menu-item", has_text="Ask about this image (it did not load)")
        item.wait_for()
        assert "lm-mod-disabled" in (item.get_attribute("class") or "")
        page.keyboard.press("Escape")

        # an image inside an ipywidgets Output: its bytes handed over, into the configured folder
        widget_image = cells.nth(1).locator(".widget-output img")
        widget_image.wait_for()
        sources = _insert_via_menu(page, widget_image)
        match = re.fullmatch(r"%%ask_image (shots/today/output-[0-9a-f]{16}\.png)\nDescribe it\.", sources[2])
        assert match, sources[2]
        saved = Image.open(folder / match.group(1)).convert("RGB")
        assert saved.size == (40, 40) and saved.getpixel((20, 20)) == (255, 0, 255)

        # the command palette: the active cell's last image
        page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Shift+C")
        page.locator(".lm-CommandPalette-input").fill("Ask about the last image")
        page.locator(
            ".lm-CommandPalette-item", has_text="Ask about the last image of this cell"
        ).first.click()
        _wait_cells(page, 7)
        assert _cell_sources(page)[4] == "%%ask_image @3:1\nDescribe it."

        # a large pasted image: saved whole (in chunks); the magic's own size rules apply when it is sent
        page.locator(".jp-Notebook .jp-Cell").nth(6).locator(".cm-content").click()
        page.evaluate(_PASTE, [6, base64.b64encode(large).decode(), "image.png", "paste"])
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[6].model.sharedModel.getSource()"
            ".includes('shots/today/pasted-')",
            timeout=WAIT_MS,
        )
        pasted = re.search(r"shots/today/pasted-\S+\.png", _cell_sources(page)[6]).group(0)
        assert (folder / pasted).read_bytes() == large
        # sent like any file: at the model's resolution (gpt-4o high: 768 px short side), not 40 MB
        page.keyboard.press("Shift+Enter")
        answer = cells.nth(6).locator(".jp-OutputArea-output[data-mime-type='text/markdown']")
        answer.locator("sub", has_text="tokens in").wait_for()
        part = lab.model_server.last.body["messages"][-1]["content"][1]
        sent = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
        assert sent.size == (768, 768), sent.size
    finally:
        _put_settings(lab, {})
        lab.delete_sessions(path)


def test_a_notebook_that_never_loads_vision_magic_gets_the_load_line_and_the_cell_runs(lab, page):
    folder, path = _notebook(
        lab,
        [
            nbformat.v4.new_code_cell("from PIL import Image\nImage.new('RGB', (40, 40), (0, 160, 0))"),
            nbformat.v4.new_code_cell("x = 1"),
        ],
    )
    (folder / "pics").mkdir()
    (folder / "pics" / "from browser.png").write_bytes(_png("navy", (30, 30)))
    try:
        open_notebook(page, lab, path)
        image = page.locator(".jp-Notebook .jp-CodeCell").nth(0).locator(".jp-OutputArea-output img")
        image.wait_for()
        before = _cell_sources(page)
        _ask_via_menu(page, image)
        _wait_cells(page, len(before) + 2)
        # undo removes both inserted cells (the load line and the question) in one step
        page.keyboard.press("Escape")
        page.keyboard.press("z")
        _wait_cells(page, len(before))
        assert _cell_sources(page) == before
        _ask_via_menu(page, image)
        _wait_cells(page, len(before) + 2)
        sources = _cell_sources(page)
        assert sources[1] == "%load_ext vision_magic"  # the record, so the notebook replays top to bottom
        assert re.fullmatch(r"%%ask_image images/output-[0-9a-f]{16}\.png\n", sources[2]), sources[2]
        # the kernel had no %%ask_image: it was loaded, so the question runs without running the line above
        page.wait_for_function(
            "() => document.activeElement && document.activeElement.classList.contains('cm-content')",
            timeout=WAIT_MS,
        )
        _run_answer(page, 2, "What colour is it?")
        r, g, b = _sent_colour(lab)
        assert g > 120 and r < 40 and b < 40, (r, g, b)

        # an image dragged from JupyterLab's file browser onto the ask cell: its path, nothing copied
        page.locator(".jp-DirListing-item", has_text="pics").dblclick()
        listed = page.locator(".jp-DirListing-item", has_text="from browser.png")
        listed.wait_for()
        target = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".cm-content").bounding_box()
        listed.hover()
        page.mouse.down()
        page.mouse.move(target["x"] + 40, target["y"] + 8, steps=12)  # Lumino drags need real moves
        page.mouse.up()
        page.wait_for_function(
            "() => jupyterapp.shell.currentWidget.content.widgets[2].model.sharedModel.getSource()"
            ".includes('from browser')",
            timeout=WAIT_MS,
        )
        assert _cell_sources(page)[2].split("\n")[0].endswith(' "pics/from browser.png"')
        assert sorted(p.name for p in (folder / "pics").iterdir()) == ["from browser.png"]
    finally:
        lab.delete_sessions(path)
