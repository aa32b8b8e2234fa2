"""Earlier outputs are sources: ``@N``, ``@N:K``, ``@-1`` on the magic line and in the Python API, through a
real InteractiveShell (cells run with ``store_history=True``, so each has the execution count its prompt
shows), the test server, and a real kernel running a notebook through nbclient."""

from __future__ import annotations

import base64
import io
import os
import sys

import pytest
from PIL import Image

import vision_magic
from vision_magic.engine.outputs import OutputStore
from vision_magic.engine.session import current
from vision_magic.errors import SourceErrors
from vision_magic.frontends.magic import resolve_token

RGB = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="30"><rect width="60" height="30" fill="#0000ff"/></svg>'


def encoded(colour: str, fmt: str = "PNG", size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, RGB[colour]).save(buf, fmt)
    return buf.getvalue()


def noise_png(nbytes: int, seed: int) -> bytes:
    """A PNG of random pixels: about ``nbytes`` long (noise does not compress)."""
    import numpy as np

    side = int((nbytes / 3) ** 0.5) + 1
    arr = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def ishell(shell, monkeypatch):
    """The real shell with an empty store of outputs and a kernel's formatters (a value's PNG is computed,
    as in Jupyter; the terminal shell computes text only)."""
    monkeypatch.setattr(current(), "outputs", OutputStore())
    monkeypatch.setattr(shell.display_formatter, "active_types", list(shell.display_formatter.format_types))
    shell.run_line_magic("config", "VisionMagic.model = 'gpt-4o'")
    yield shell


def cell(shell, code: str, **ns) -> int:
    """Run ``code`` as a numbered cell (as a notebook does); its execution count."""
    shell.user_ns.update(ns)
    result = shell.run_cell(code, store_history=True)
    assert result.error_in_exec is None and result.error_before_exec is None, result
    return result.execution_count


def show(shell, *colours: str) -> int:
    """A cell that displays one PNG per colour; its execution count."""
    code = "from IPython.display import Image, display\n" + "".join(
        f"display(Image(t_img{i}))\n" for i in range(len(colours))
    )
    return cell(shell, code, **{f"t_img{i}": encoded(c) for i, c in enumerate(colours)})


def colour_of(data: bytes) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def sent_colours(server) -> list[tuple[int, int, int]]:
    parts = server.last.body["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    return [colour_of(base64.b64decode(u.split(",", 1)[1])) for u in urls]


def error_line(shell, code: str, capsys) -> str:
    capsys.readouterr()
    shell.run_cell(code, store_history=True)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    (line,) = [ln for ln in text.splitlines() if "SourceError" in ln]
    return line


def test_a_cell_keeps_every_image_it_shows_as_at_n(ishell):
    n = show(ishell, "red", "lime", "blue")
    assert [(img.mime, img.data) for img in current().outputs.images(n)] == [
        ("image/png", encoded(c)) for c in ("red", "lime", "blue")
    ]
    est = vision_magic.estimate(f"@{n}")
    assert [i.source for i in est.images] == [f"@{n}:1", f"@{n}:2", f"@{n}:3"]
    parts = vision_magic.content_parts(f"@{n}:2", prompt="Which colour?")
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert colour_of(base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1])) == RGB["lime"]
    assert current().last_shown == (f"@{n}:3, the last image shown", encoded("blue"))


def test_a_pil_value_and_gif_webp_svg_bundles_are_kept(ishell):
    pil = cell(ishell, "t_pil", t_pil=Image.new("RGB", (20, 10), RGB["yellow"]))
    bundles = {
        "image/gif": base64.b64encode(encoded("red", "GIF")).decode(),
        "image/webp": base64.b64encode(encoded("lime", "WEBP")).decode(),
        "image/svg+xml": SVG,
    }
    code = "from IPython.display import display\nfor m, d in t_bundles.items(): display({m: d}, raw=True)"
    many = cell(ishell, code, t_bundles=bundles)
    (value,) = current().outputs.images(pil)
    assert value.mime == "image/png" and colour_of(value.data) == RGB["yellow"]
    assert [i.mime for i in current().outputs.images(many)] == list(bundles)
    assert current().outputs.images(many)[2].data == SVG.encode(), "kept as displayed, not rasterised"
    pytest.importorskip("cairosvg")
    est = vision_magic.estimate(f"@{many}", detail="high")
    assert [(i.source, i.mime) for i in est.images] == [
        (f"@{many}:1", "image/gif"),
        (f"@{many}:2", "image/webp"),
        (f"@{many}:3", "image/png"),
    ]
    assert est.images[2].original_size == (1536, 768), "a small SVG is drawn at a sensible size"
    parts = vision_magic.content_parts(f"@{many}:3")
    assert colour_of(base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1])) == RGB["blue"]


def test_an_svg_without_cairosvg_is_one_line_for_that_image_only(ishell, monkeypatch):
    n = cell(
        ishell,
        "from IPython.display import SVG, Image, display\ndisplay(Image(t_png)); display(SVG(t_svg))",
        t_png=encoded("red"),
        t_svg=SVG,
    )
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # import cairosvg raises ImportError
    with pytest.raises(SourceErrors) as e:
        vision_magic.estimate(f"@{n}")
    assert str(e.value) == (
        f"@{n}:2: an SVG output cannot be sent as it is: pip install cairosvg to rasterise it (nothing was sent)"
    )
    assert [i.source for i in vision_magic.estimate(f"@{n}:1").images] == [f"@{n}:1"]


def test_at_n_k_out_of_range_says_how_many_there_are(ishell, capsys):
    n = show(ishell, "red", "lime")
    one = show(ishell, "blue")
    ishell.run_line_magic("config", "VisionMagic.dry_run = True")
    line = error_line(ishell, f"%%ask_image @{n}:3 @{one}:2 @{n}:0\nWhat?", capsys)
    assert line.endswith(
        f"3 sources could not be used, nothing was sent: @{n}:3: cell [{n}] shows 2 images (use @{n}:1 to "
        f"@{n}:2); @{one}:2: cell [{one}] shows 1 image (use @{one} or @{one}:1); @{n}:0: images are counted "
        f"from 1; cell [{n}] shows 2 images (use @{n}:1 to @{n}:2)"
    ), line


def test_relative_references_and_labels_in_the_dry_run(ishell):
    first = show(ishell, "red", "lime")
    second = show(ishell, "blue")
    ishell.displays.events.clear()
    asking = cell(ishell, "%%ask_image @-1 @-2:2 --dry-run\nCompare.")
    assert asking == second + 1
    answer = vision_magic.last_answer
    assert [img.source for img in answer.images] == [f"@{second}:1", f"@{first}:2"]
    assert [colour_of(img.data) for img in answer.images] == [RGB["blue"], RGB["lime"]]
    text = ishell.displays.bundles[-1]["text/plain"]
    assert f"  @{second}:1: image/png" in text and f"  @{first}:2: image/png" in text
    # after a cell, @-1 is that cell (e.g. from code run between cells)
    assert [i.source for i in vision_magic.estimate("@-2").images] == [f"@{second}:1"]


def test_a_cell_without_images_never_run_or_before_the_first(ishell, capsys):
    a = show(ishell, "red", "lime")
    quiet = cell(ishell, "t_x = 1")
    b = show(ishell, "blue")
    ishell.run_line_magic("config", "VisionMagic.dry_run = True")
    listing = f"cells with images: @{a} (2), @{b} (1)"
    line = error_line(ishell, f"%%ask_image @{quiet} @99 @-999\nWhat?", capsys)
    assert line.endswith(
        f"3 sources could not be used, nothing was sent: @{quiet}: cell [{quiet}] shows no image; {listing}; "
        f"@99: cell [99] has not run yet; {listing}; @-999: there is no cell 999 before this one; {listing}"
    ), line


def test_the_oldest_cells_are_dropped_beyond_output_history(ishell, capsys):
    ishell.run_line_magic("config", "VisionMagic.output_history = 2")
    cells = [show(ishell, c) for c in ("red", "lime", "blue")]
    assert current().outputs.cells() == [(cells[1], 1), (cells[2], 1)]
    ishell.run_line_magic("config", "VisionMagic.dry_run = True")
    line = error_line(ishell, f"%%ask_image @{cells[0]}\nWhat?", capsys)
    assert line.endswith(
        f"@{cells[0]}: the images of cell [{cells[0]}] were dropped (outputs of the newest 2 cells, up to 200 MB, "
        f"are kept: %config VisionMagic.output_history / output_history_mb); cells with images: "
        f"@{cells[1]} (1), @{cells[2]} (1) (nothing was sent)"
    ), line
    assert [i.source for i in vision_magic.estimate(f"@{cells[1]}").images] == [f"@{cells[1]}:1"]


def test_the_oldest_cells_are_dropped_beyond_output_history_mb(ishell):
    pngs = [noise_png(4000, seed) for seed in range(4)]
    assert all(3000 < len(p) < 5000 for p in pngs)
    ishell.run_line_magic("config", "VisionMagic.output_history_mb = 0.01")  # 10,000 bytes: two cells fit
    code = "from IPython.display import Image, display\ndisplay(Image(t_png))"
    cells = [cell(ishell, code, t_png=p) for p in pngs]
    store = current().outputs
    assert store.cells() == [(cells[2], 1), (cells[3], 1)]
    assert store.nbytes == len(pngs[2]) + len(pngs[3]) <= 10_000
    assert store.dropped == {cells[0], cells[1]}
    ishell.run_line_magic("config", "VisionMagic.output_history_mb = 0.005")  # a lower bound acts at once
    with pytest.raises(SourceErrors, match="were dropped"):
        vision_magic.estimate(f"@{cells[2]}")
    assert store.cells() == [(cells[3], 1)]
    two = cell(
        ishell, code + "\ndisplay(Image(t_png))", t_png=pngs[0]
    )  # 2 x 4 KB > 5 KB: the cell goes whole
    assert store.cells() == [] and two in store.dropped
    with pytest.raises(SourceErrors, match=f"@{two}: the images of cell \\[{two}\\] were dropped"):
        vision_magic.estimate(f"@{two}")


def test_the_server_receives_the_images_named(ishell, openai_env):
    server = openai_env
    first = show(ishell, "red", "lime")
    second = show(ishell, "blue", "yellow")
    cell(ishell, f"%%ask_image @{first}:2 @{second} --no-stream\nWhat colours?")
    assert len(server.last.images) == 3
    assert sent_colours(server) == [RGB["lime"], RGB["blue"], RGB["yellow"]]
    assert [img.source for img in vision_magic.last_answer.images] == [
        f"@{first}:2",
        f"@{second}:1",
        f"@{second}:2",
    ]
    answer = vision_magic.ask("And this?", "@-2:1", display=False, stream=False)
    assert sent_colours(server) == [RGB["blue"]] and answer.images[0].source == f"@{second}:1"


def test_ask_many_asks_about_each_image_of_a_cell_in_its_own_row(ishell, openai_env):
    server = openai_env
    n = show(ishell, "red", "lime", "blue")
    table = vision_magic.ask_many("Which colour?", f"@{n}", progress=False, cache=False)
    assert list(table["source"]) == [f"@{n}:1", f"@{n}:2", f"@{n}:3"]
    assert table["error"].isna().all() and table["answer"].notna().all()
    assert len(server.chat_requests) == 3 and all(len(r.images) == 1 for r in server.chat_requests)
    rows = vision_magic.ask_many("Which?", [f"@{n}:2", "@99"], progress=False, cache=False)
    assert list(rows["source"]) == [f"@{n}:2", "@99"]
    assert rows["error"].iloc[1].startswith("@99: cell [99] has not run yet")


def test_an_updated_display_replaces_its_image(ishell):
    n = cell(
        ishell,
        "from IPython.display import Image, display\nh = display(Image(t_a), display_id=True)\nh.update(Image(t_b))",
        t_a=encoded("red"),
        t_b=encoded("blue"),
    )
    assert [colour_of(i.data) for i in current().outputs.images(n)] == [RGB["blue"]]


def test_runs_without_a_number_keep_only_the_last_image_shown(ishell):
    ishell.user_ns["t_png"] = encoded("lime")
    assert ishell.run_cell("from IPython.display import Image, display\ndisplay(Image(t_png))").success
    assert current().outputs.cells() == []
    assert current().last_shown == ("the last image shown (display)", encoded("lime"))
    cell(ishell, "%%ask_image --dry-run\nWhat?")  # the bare magic still asks about it
    assert [colour_of(i.data) for i in vision_magic.last_answer.images] == [RGB["lime"]]


def test_the_magic_line_leaves_references_alone():
    for token in ("@3", "@3:2", "@-1", "@-2:1"):
        assert resolve_token(token, {"t": 1}) == token


KERNEL_NOTEBOOK = [
    "%load_ext vision_magic\n%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])",
    "from IPython.display import Image, display\nimport base64\n"
    "display(Image(base64.b64decode(RED))); display(Image(base64.b64decode(BLUE)))",
    "import ipywidgets as widgets\nout = widgets.Output()\ndisplay(out)\nwith out:\n"
    "    display(Image(base64.b64decode(LIME)))",
    "from PIL import Image as PILImage\nPILImage.new('RGB', (40, 20), (255, 255, 0))",
    "%%ask_image @1 @2:2 @3 @-1 --dry-run\nWhat is shown?",
    "%%ask_image @1 @2:2 @3 @4 --no-stream\nWhat is shown?",
]


def test_a_real_kernel_keeps_plots_displays_widget_output_and_values(tmp_path, openai_env, monkeypatch):
    """nbclient runs a notebook in a real kernel: the plot of the cell that loads the extension is @1."""
    import nbformat
    from nbclient import NotebookClient

    server = openai_env
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    colours = {name: base64.b64encode(encoded(name.lower())).decode() for name in ("RED", "BLUE", "LIME")}
    setup = "".join(f"{k} = {v!r}\n" for k, v in colours.items())
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup + KERNEL_NOTEBOOK[0])] + [
        nbformat.v4.new_code_cell(src) for src in KERNEL_NOTEBOOK[1:]
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert [c.execution_count for c in nb.cells] == [1, 2, 3, 4, 5, 6]
    dry = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[4].outputs)
    assert "4 image(s)" in dry, dry
    for label, mime in (
        ("@1:1", "image/png"),
        ("@2:2", "image/png"),
        ("@3:1", "image/png"),
        ("@4:1", "image/png"),
    ):
        assert f"  {label}: {mime}" in dry, dry
    assert len(server.last.images) == 4
    colours_sent = sent_colours(server)
    assert colours_sent[1:] == [RGB["blue"], RGB["lime"], RGB["yellow"]]
    assert colours_sent[0] == (255, 255, 255), "the plot (white background) is @1"
