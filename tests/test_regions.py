"""Issue 15: one subplot, a crop, or fine print: what reaches the server (pixel sizes and content, the
captions before zoom tiles), and what the estimate says it costs, against the test server."""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pytest
from PIL import Image

import vision_magic
from vision_magic.errors import SourceErrors, VisionMagicError

QUADRANTS = {"tl": (255, 0, 0), "tr": (0, 160, 0), "bl": (0, 0, 255), "br": (255, 200, 0)}


def quadrants(w: int = 2000, h: int = 1000) -> Image.Image:
    """Four flat colours, one per quarter."""
    img = Image.new("RGB", (w, h))
    img.paste(QUADRANTS["tl"], (0, 0, w // 2, h // 2))
    img.paste(QUADRANTS["tr"], (w // 2, 0, w, h // 2))
    img.paste(QUADRANTS["bl"], (0, h // 2, w // 2, h))
    img.paste(QUADRANTS["br"], (w // 2, h // 2, w, h))
    return img


def fine_print(w: int = 3000, h: int = 2000) -> Image.Image:
    """Small print on white: an 8-px square every 40 px whose colour says where it is, so a tile's pixels
    tell where it was cut from (mostly white: a graphic, sent losslessly)."""
    arr = np.full((h, w, 3), 255, dtype=np.uint8)
    for row, y in enumerate(range(4, h - 8, 40)):
        for col, x in enumerate(range(4, w - 8, 40)):
            arr[y : y + 8, x : x + 8] = (col * 3 % 256, row * 5 % 256, 128 + (col * 3 // 256) * 40)
    return Image.fromarray(arr)


def sent(request) -> list[tuple[str | None, Image.Image]]:
    """(caption or None, image) for each image part of the last user message, in order."""
    out: list[tuple[str | None, Image.Image]] = []
    caption = None
    for part in request.body["messages"][-1]["content"][1:]:
        if part["type"] == "text":
            caption = part["text"]
            continue
        data = base64.b64decode(part["image_url"]["url"].partition(",")[2])
        img = Image.open(io.BytesIO(data))
        img.load()
        out.append((caption, img.convert("RGB")))
        caption = None
    return out


def colours(img: Image.Image) -> set[tuple[int, int, int]]:
    return {c for _, c in img.convert("RGB").getcolors(maxcolors=1 << 20)}


def billed_image_tokens(body: dict, base: int = 85, tile: int = 170) -> int:
    """Image tokens of a request by the tile rule of gpt-4o at detail high, written out here from OpenAI's
    guide (not the package's code): fit in 2048x2048, short side down to 768, 512-px tiles."""
    total = 0
    for part in body["messages"][-1]["content"]:
        if part["type"] != "image_url":
            continue
        img = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].partition(",")[2])))
        w, h = img.size
        if max(w, h) > 2048:
            s = 2048 / max(w, h)
            w, h = round(w * s), round(h * s)
        if min(w, h) > 768:
            s = 768 / min(w, h)
            w, h = (768, round(h * s)) if w <= h else (round(w * s), 768)
        total += base + tile * math.ceil(w / 512) * math.ceil(h / 512)
    return total


# ---------------------------------------------------------------- one Axes


@pytest.fixture
def grid():
    """A 2x2 figure whose four Axes have their own face colours, titles and a legend each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(2, 2, figsize=(8, 6), dpi=100)
    faces = ["#ff0000", "#00a000", "#0000ff", "#ffc800"]
    for k, (ax, face) in enumerate(zip(axs.flat, faces, strict=True)):
        ax.set_facecolor(face)
        ax.plot([0, 1, 2], [k, k + 1, k], color="white", label=f"series {k}")
        ax.set(title=f"panel {k}", xlabel="x", ylabel="y")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside the Axes: part of its tight box
    fig.suptitle("four panels")
    yield fig, list(axs.flat), [tuple(int(face[i : i + 2], 16) for i in (1, 3, 5)) for face in faces]
    plt.close(fig)


def figure_state(fig):
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    return (
        [a.get_visible() for a in fig.get_children()],
        [tuple(round(float(v), 9) for v in a.get_position().bounds) for a in fig.axes],  # layout: float noise
        tuple(fig.get_size_inches()),
        fig.dpi,
        fig.get_layout_engine(),
        plt.get_fignums(),
        plt.gcf() is fig,
        dict(mpl.rcParams),
    )


def test_an_axes_sends_only_that_subplot_at_the_figure_dpi(openai_env, grid):
    fig, axs, faces = grid
    before = figure_state(fig)
    answer = vision_magic.ask("What does this panel show?", fig.axes[3], display=False, cache=False)
    assert figure_state(fig) == before, "the figure and matplotlib's state are as they were"
    [(_, img)] = sent(openai_env.last)
    seen = colours(img)
    assert faces[3] in seen, "the subplot's own face colour"
    assert not {faces[0], faces[1], faces[2]} & seen, "no other subplot"
    # its tight box (title, tick labels, axis labels, legend) plus 0.1 in padding, at 100 dpi
    fig.draw_without_rendering()
    box = fig.axes[3].get_tightbbox()
    assert abs(img.width - (box.width + 20)) <= 2 and abs(img.height - (box.height + 20)) <= 2
    legend = fig.axes[3].get_legend().get_window_extent()
    assert box.x1 >= legend.x1 > fig.axes[3].get_window_extent().x1, "the legend outside the Axes is in"
    assert answer.images[0].source == "image 0"


def test_an_axes_inside_a_list_and_as_an_expression_on_the_magic_line(shell, openai_env, grid):
    fig, axs, faces = grid
    shell.user_ns.update(fig=fig, panels=[axs[0], axs[1]])
    result = shell.run_cell("%%ask_image panels fig.axes[2]\nCompare.")
    assert result.error_in_exec is None, result.error_in_exec
    images = [img for _, img in sent(openai_env.last)]
    assert len(images) == 3
    expected = [(faces[0], (1, 2, 3)), (faces[1], (0, 2, 3)), (faces[2], (0, 1, 3))]
    for img, (face, others) in zip(images, expected, strict=True):
        seen = colours(img)
        assert face in seen and not {faces[k] for k in others} & seen


def test_a_subplot_of_a_grid_by_two_indices_on_the_magic_line(shell, openai_env, grid):
    # `fig, axs = plt.subplots(2, 2)`: `axs[0, 1]` (with or without the space) is one source, that subplot
    import numpy as np

    fig, axs, faces = grid
    shell.user_ns["axs"] = np.array(axs, dtype=object).reshape(2, 2)
    result = shell.run_cell("%%ask_image axs[0, 1] axs[1,0] -d low\nCompare.")
    assert result.error_in_exec is None, result.error_in_exec
    images = [img for _, img in sent(openai_env.last)]
    assert [colours(img) & set(faces) for img in images] == [{faces[1]}, {faces[2]}]
    assert [img.source for img in vision_magic.last_answer.images] == ["axs[0,1]", "axs[1,0]"]

    # one line: the sources end where the question starts, and the question keeps its own brackets
    result = shell.run_cell("%ask_image axs[1, 1][0, 0, 0.5, 1] Which series is in [0, 1]?")
    assert result.error_in_exec is None, result.error_in_exec
    [(_, img)] = sent(openai_env.last)
    assert openai_env.last.body["messages"][-1]["content"][0] == {
        "type": "text",
        "text": "Which series is in [0, 1]?",
    }
    assert faces[3] in colours(img), "the fourth subplot"
    assert (img.width, img.height) == (232, 294), "the left half of its 464x294 render"


def test_an_axes_of_a_constrained_layout_figure_leaves_its_layout_alone(openai_env):
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(9, 3), layout="constrained")
    for ax in axs:
        ax.set_facecolor("#00a000")
    axs[1].set_facecolor("#ff0000")
    fig.draw_without_rendering()
    before = figure_state(fig)
    vision_magic.ask("What?", axs[1], display=False, cache=False)
    assert figure_state(fig) == before
    [(_, img)] = sent(openai_env.last)
    assert (255, 0, 0) in colours(img) and (0, 160, 0) not in colours(img)
    assert img.width < 9 * 100 / 2, "one of three panels, not the figure"
    plt.close(fig)


# ---------------------------------------------------------------- crops


def test_crop_fractions_on_the_magic_line_apply_to_every_image(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quadrants().save(tmp_path / "q.png")
    shell.user_ns["quad"] = quadrants(4000, 2000)
    result = shell.run_cell("%%ask_image q.png quad --crop 0.5,0,1,0.5\nWhat colour?")
    assert result.error_in_exec is None, result.error_in_exec
    (_, a), (_, b) = sent(openai_env.last)
    assert a.size == (1000, 500) and colours(a) == {QUADRANTS["tr"]}
    # 2000x1000 cut from the 4000x2000 image first, then shrunk to the model's size (short side 768)
    assert b.size == (1536, 768) and colours(b) == {QUADRANTS["tr"]}


def test_crop_in_pixels_is_cut_before_resizing(openai_env):
    big = fine_print(4000, 3000)
    answer = vision_magic.ask("Read it.", big, crop=(1000, 500, 1600, 1200), display=False, cache=False)
    [(_, img)] = sent(openai_env.last)
    assert img.size == (600, 700), "the crop at full resolution (it needs no resize)"
    assert np.array_equal(np.asarray(img), np.asarray(big.crop((1000, 500, 1600, 1200))))
    assert answer.images[0].original_size == (4000, 3000)
    assert "cropped to 1000,500,1600,1200 of 4000x3000" in answer.images[0].notes


def test_a_crop_of_one_source_and_path_precedence(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quadrants().save(tmp_path / "q.png")
    quadrants().save(tmp_path / "q1.png")
    Image.new("RGB", (20, 10), "white").save(tmp_path / "odd.png[0,0,0.5,0.5]", "PNG")  # so named: a path
    shell.user_ns["quad"] = quadrants()
    line = "quad[0,500,1000,1000] q.png[0.5,0.5,1,1] 'q[0-9].png' odd.png[0,0,0.5,0.5] quad"
    result = shell.run_cell(f"%%ask_image {line}\nWhat colours?")
    assert result.error_in_exec is None, result.error_in_exec
    images = [img for _, img in sent(openai_env.last)]
    assert [img.size for img in images] == [(1000, 500), (1000, 500), (1536, 768), (20, 10), (1536, 768)]
    assert colours(images[0]) == {QUADRANTS["bl"]} and colours(images[1]) == {QUADRANTS["br"]}
    whole = set(QUADRANTS.values())
    assert whole <= colours(images[2]), "the glob's character class still matches q1.png, whole"
    assert colours(images[3]) == {(255, 255, 255)} and whole <= colours(images[4])
    labels = [img.source for img in vision_magic.last_answer.images]
    assert labels[:2] == ["quad[0,500,1000,1000]", "q.png[0.5,0.5,1,1]"]


def test_region_in_the_api_overrides_the_request_crop(openai_env):
    quad = quadrants()
    vision_magic.ask(
        "What?",
        vision_magic.region(quad, "0,0,0.5,0.5"),
        quad,
        crop="0.5,0.5,1,1",
        display=False,
        cache=False,
    )
    (_, a), (_, b) = sent(openai_env.last)
    assert colours(a) == {QUADRANTS["tl"]} and colours(b) == {QUADRANTS["br"]}


@pytest.mark.parametrize(
    ("crop", "message"),
    [
        ("0,0,3000,100", r"q.png: crop 0,0,3000,100 is outside the 2000x1000 image \(x1 3000 > width 2000\)"),
        ("-5,0,100,100", r"crop -5,0,100,100 is outside the 2000x1000 image \(x0 -5 < 0\)"),
        ("100,100,100,200", r"crop 100,100,100,200 is empty: x1 must be greater than x0"),
        ("0.5,0.5,0.2,1", r"crop 0.5,0.5,0.2,1 is empty"),
    ],
)
def test_bad_crops_are_one_line_and_nothing_is_sent(shell, openai_env, tmp_path, monkeypatch, crop, message):
    monkeypatch.chdir(tmp_path)
    quadrants().save(tmp_path / "q.png")
    result = shell.run_cell(f"%%ask_image q.png --crop={crop}\nWhat?")
    err = result.error_in_exec
    assert isinstance(err, SourceErrors) and re.search(message, str(err)), err
    assert "\n" not in str(err) and str(err).endswith("(nothing was sent)")
    assert openai_env.chat_requests == []


@pytest.fixture
def web(tmp_path):
    """A tiny web server on 127.0.0.1 serving q.png (the quadrants)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    quadrants().save(tmp_path / "q.png")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_crop_of_a_url_downloads_it_and_sends_the_part_inline(shell, openai_env, web):
    result = shell.run_cell(f"%%ask_image {web}/q.png[0.5,0.5,1,1] {web}/q.png\nWhat colour?")
    assert result.error_in_exec is None, result.error_in_exec
    (_, part), (_, whole) = sent(openai_env.last)
    assert part.size == (1000, 500) and colours(part) == {QUADRANTS["br"]}
    assert whole.size == (1536, 768) and set(QUADRANTS.values()) <= colours(whole)
    labels = [img.source for img in vision_magic.last_answer.images]
    assert labels == [f"{web}/q.png[0.5,0.5,1,1]", f"{web}/q.png"]


def test_a_crop_that_is_not_four_numbers(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quadrants().save(tmp_path / "q.png")
    result = shell.run_cell("%%ask_image q.png --crop 0,0,10\nWhat?")
    assert isinstance(result.error_in_exec, VisionMagicError)
    assert "crop '0,0,10' is not four numbers: use X0,Y0,X1,Y1" in str(result.error_in_exec)
    with pytest.raises(VisionMagicError, match="is not four numbers"):
        vision_magic.ask("What?", quadrants(), crop=(1, 2), display=False)
    assert openai_env.chat_requests == []


def test_a_crop_of_a_figure_is_in_its_own_pixels(openai_env, grid):
    fig, axs, faces = grid
    vision_magic.ask("What?", fig, crop="0,0,0.4,0.4", display=False, cache=False)
    [(_, img)] = sent(openai_env.last)
    assert faces[0] in colours(img) and not {faces[1], faces[2], faces[3]} & colours(img)


# ---------------------------------------------------------------- zoom


TILE = re.compile(r"^tile (\d+) of (\d+), rows (\d+)-(\d+), columns (\d+)-(\d+) of a (\d+)x(\d+) image$")


def test_zoom_sends_an_overview_and_labelled_tiles_covering_the_image(openai_env):
    table = fine_print(3000, 2000)
    answer = vision_magic.ask("Read the table.", table, zoom=True, display=False, cache=False, model="gpt-4o")
    parts = sent(openai_env.last)
    (overview_caption, overview), *tiles = parts
    assert overview_caption.startswith("overview of a 3000x2000 image (shown at 1152x768); the 6 tiles")
    assert overview.size == (1152, 768)
    covered = np.zeros((2000, 3000), dtype=np.int32)
    for k, (caption, tile) in enumerate(tiles, 1):
        m = TILE.match(caption or "")
        assert m, caption
        index, count, r0, r1, c0, c1, w, h = map(int, m.groups())
        assert (index, count, w, h) == (k, len(tiles), 3000, 2000)
        assert tile.size == (c1 - c0 + 1, r1 - r0 + 1), "at full resolution"
        # the tile's pixels are the image's at the place its caption names
        assert np.array_equal(np.asarray(tile), np.asarray(table.crop((c0 - 1, r0 - 1, c1, r1))))
        covered[r0 - 1 : r1, c0 - 1 : c1] += 1
    assert (covered == 1).all(), "the tiles cover the image exactly once"
    assert len(tiles) <= 12
    # what the estimate said is what the model's rule bills for the images sent
    assert answer.estimated_tokens == billed_image_tokens(openai_env.last.body)
    est = vision_magic.estimate(table, zoom=True, model="gpt-4o")
    assert est.image_tokens == billed_image_tokens(openai_env.last.body)
    assert any(n.startswith("zoom adds 6 tiles to 1 overview: +4590 image tokens") for n in est.notes)


def test_zoom_n_bounds_the_tiles_and_says_they_are_still_shrunk(openai_env):
    big = fine_print(6000, 4000)
    answer = vision_magic.ask("Read.", big, zoom=3, display=False, cache=False, model="gpt-4o")
    parts = sent(openai_env.last)
    assert len(parts) == 4, "overview + at most 3 tiles"
    assert any("each is still shrunk" in n and "--zoom N" in n for n in answer.images[0].notes)
    assert answer.estimated_tokens == billed_image_tokens(openai_env.last.body)


def test_zoom_on_an_image_that_needs_none_sends_one_image_and_says_so(openai_env):
    answer = vision_magic.ask("Read.", fine_print(900, 600), zoom=True, display=False, cache=False)
    parts = sent(openai_env.last)
    assert [(caption, img.size) for caption, img in parts] == [(None, (900, 600))]
    assert "no zoom needed: the model sees this 900x600 image at full size" in answer.images[0].notes[0]


def test_zoom_with_a_crop_tiles_the_crop(openai_env):
    table = fine_print(4000, 3000)
    vision_magic.ask("Read.", table, zoom=True, crop="0,0,0.75,1", display=False, cache=False)
    (caption, _), *tiles = sent(openai_env.last)
    assert "of a 3000x3000 image" in caption
    for tile_caption, tile in tiles:
        _, _, r0, r1, c0, c1, _, _ = map(int, TILE.match(tile_caption).groups())
        assert np.array_equal(np.asarray(tile), np.asarray(table.crop((c0 - 1, r0 - 1, c1, r1))))


def test_zoom_on_a_patch_rule_model_keeps_each_tile_under_its_budget(openai_env):
    from vision_magic.images.profiles import patches, profile_for

    profile = profile_for("gpt-4.1-mini")
    vision_magic.ask(
        "Read.", fine_print(3000, 2000), zoom=True, model="gpt-4.1-mini", display=False, cache=False
    )
    _, *tiles = sent(openai_env.last)
    assert tiles and all(patches(*t.size, profile) <= profile.patch_budget for _, t in tiles)
    assert all(math.ceil(t.width / 32) * math.ceil(t.height / 32) <= 1536 for _, t in tiles)


def test_cost_and_dry_run_show_the_tile_grid_and_what_zoom_adds(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fine_print(3000, 2000).save(tmp_path / "table.png")
    result = shell.run_cell("%%ask_image table.png --zoom --cost\nRead it.")
    assert result.error_in_exec is None, result.error_in_exec
    text = shell.displays.last()["text/plain"]
    assert "zoom adds 6 tiles to 1 overview: +4590 image tokens (the overview alone: 1105)" in text
    assert "table.png tile 6/6" in text
    result = shell.run_cell("%%ask_image table.png --zoom 4 --dry-run\nRead it.")
    assert result.error_in_exec is None, result.error_in_exec
    text = shell.displays.last()["text/plain"]
    assert "zoom: overview + " in text and "tiles of" in text
    assert "tile 2 of 4, rows" in text
    assert openai_env.chat_requests == []


def test_zoom_flag_takes_an_optional_number_and_a_source_may_follow(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fine_print(3000, 2000).save(tmp_path / "table.png")
    result = shell.run_cell("%%ask_image --zoom table.png\nRead it.")
    assert result.error_in_exec is None, result.error_in_exec
    assert len(sent(openai_env.last)) == 7
    result = shell.run_cell("%%ask_image --zoom 2 table.png\nRead it.")
    assert result.error_in_exec is None, result.error_in_exec
    assert len(sent(openai_env.last)) == 3
    shell.run_line_magic("ask_image", "table.png --zoom 2 What does it say?")
    assert len(sent(openai_env.last)) == 3
    assert openai_env.last.body["messages"][-1]["content"][0]["text"] == "What does it say?"
    result = shell.run_cell("%%ask_image table.png --zoom 1\nRead it.")
    assert "zoom=1: give True or the most tiles to send (2 to 64)" in str(result.error_in_exec)


def test_each_takes_a_crop_suffix_and_zoom(shell, openai_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quadrants().save(tmp_path / "q.png")
    fine_print(3000, 2000).save(tmp_path / "table.png")
    result = shell.run_cell("%%ask_image --each q.png[0,0,0.5,0.5] --out t\nWhat colour?")
    assert result.error_in_exec is None, result.error_in_exec
    assert list(shell.user_ns["t"]["error"].fillna("")) == [""]
    [(_, img)] = sent(openai_env.last)
    assert colours(img) == {QUADRANTS["tl"]}
    result = shell.run_cell("%%ask_image --each table.png q.png --zoom 2 --out t\nRead it.")
    assert result.error_in_exec is None, result.error_in_exec
    counts = sorted(len(sent(r)) for r in openai_env.chat_requests[-2:])
    assert counts == [1, 3], "q.png needs no zoom (one image); table.png: overview + 2 tiles"


def test_a_figure_is_sent_as_the_inline_backend_shows_it_whatever_savefig_rc_says(openai_env):
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from vision_magic.images.figures import figure_pixels

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([0, 1], [0, 1])
    ax.set(title="a title", xlabel="x", ylabel="y")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    inline = Image.open(buf).size
    assert all(abs(a - b) <= 2 for a, b in zip(figure_pixels(fig).size, inline, strict=True))
    with mpl.rc_context({"savefig.bbox": "tight", "savefig.pad_inches": 0.3}):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        padded = Image.open(buf).size
        assert all(abs(a - b) <= 2 for a, b in zip(figure_pixels(fig).size, padded, strict=True))
    ax.legend(["a line"], bbox_to_anchor=(1.02, 1), loc="upper left")  # drawn outside the figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    assert figure_pixels(fig).size == Image.open(buf).size, "enlarged to take the legend in, as inline does"
    plt.close(fig)


def test_zoom_past_a_servers_image_limit_is_refused_before_sending(openai_env):
    from vision_magic.engine.session import settings

    cfg = settings()
    cfg.endpoints = {"small": {"base_url": openai_env.base_url, "max_images": 4}}
    try:
        with pytest.raises(
            VisionMagicError, match=r"7 images in one request, but small takes at most 4.*--zoom N"
        ):
            vision_magic.ask("Read.", fine_print(3000, 2000), zoom=True, display=False, cache=False)
        assert openai_env.chat_requests == []
        vision_magic.ask("Read.", fine_print(3000, 2000), zoom=3, display=False, cache=False)
        assert len(sent(openai_env.last)) == 4
    finally:
        cfg.endpoints = {}


def test_zoom_without_resizing_still_tiles_what_the_model_would_shrink(openai_env):
    answer = vision_magic.ask(
        "Read.", fine_print(3000, 2000), zoom=True, resize=False, display=False, cache=False
    )
    (_, overview), *tiles = sent(openai_env.last)
    assert overview.size == (3000, 2000) and len(tiles) == 6
    assert answer.estimated_tokens == billed_image_tokens(openai_env.last.body)


def test_a_crop_of_a_sideways_phone_jpeg_is_in_upright_pixels(openai_env, tmp_path):
    upright = quadrants(4000, 2000)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers turn it 90 degrees clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", quality=90, exif=exif.tobytes())
    answer = vision_magic.ask(
        "What?", str(tmp_path / "phone.jpg"), crop="0.5,0,1,0.5", display=False, cache=False
    )
    [(_, img)] = sent(openai_env.last)
    assert img.size == (1536, 768), (
        "the 2000x1000 top-right quarter of the upright photo, at the model's size"
    )
    mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - QUADRANTS["tr"]).max() < 8, mean
    assert answer.images[0].original_size == (4000, 2000), "its upright size"


def test_an_axes_keeps_its_colorbar_and_twin_and_works_inside_a_subfigure(openai_env):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4), dpi=100)
    left, right = fig.subfigures(1, 2)
    ax_left = left.subplots()
    ax_left.set_facecolor("#00a000")
    ax_right = right.subplots()
    image = ax_right.imshow(np.arange(100).reshape(10, 10), cmap="viridis")
    right.colorbar(image, ax=ax_right)
    twin = ax_right.twinx()
    twin.set_ylabel("twin axis label")
    fig.draw_without_rendering()
    own = ax_right.get_tightbbox()
    before = figure_state(fig)
    vision_magic.ask("What?", ax_right, display=False, cache=False)
    assert figure_state(fig) == before
    [(_, img)] = sent(openai_env.last)
    assert (0, 160, 0) not in colours(img), "not the other subfigure's Axes"
    assert img.width > own.width + 40, "the twin's label and the colorbar are in"
    plt.close(fig)


def test_zoom_captions_go_before_their_tiles_with_the_responses_api(openai_env):
    from vision_magic.engine.session import settings

    cfg = settings()
    saved = cfg.api
    cfg.api = "responses"
    try:
        vision_magic.ask("Read it.", fine_print(3000, 2000), zoom=2, display=False, cache=False)
    finally:
        cfg.api = saved
    request = openai_env.requests[-1]
    assert request.path == "/v1/responses"
    kinds = [(p["type"], p.get("text", "")[:7]) for p in request.body["input"][0]["content"]]
    assert kinds == [
        ("input_text", "Read it"),
        ("input_text", "overvie"),
        ("input_image", ""),
        ("input_text", "tile 1 "),
        ("input_image", ""),
        ("input_text", "tile 2 "),
        ("input_image", ""),
    ]
