"""Issue 3: profiles as data, resolution and encoding policy, size limits, estimates and the cost footer.

The worked examples of ../shared/notes/image-facts.md are the test vectors; images go through the real test
server where the question is what arrives there.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

import vision_magic
from vision_magic.errors import VisionMagicError
from vision_magic.images.encode import ImageOptions, fit_request, prepare_bytes, prepare_image
from vision_magic.images.profiles import PROFILES, image_tokens, patches, profile_for, used_size

GPT4O = profile_for("gpt-4o")
MINI_PATCH = profile_for("gpt-4.1-mini")


# ---------------------------------------------------------------- the notes' worked examples


@pytest.mark.parametrize(
    "w,h,detail,size,tokens",
    [
        (1024, 1024, "high", (768, 768), 765),
        (2048, 4096, "high", (768, 1536), 1105),
        (4096, 8192, "low", (256, 512), 85),
    ],
)
def test_tile_rule_vectors(w, h, detail, size, tokens):
    assert used_size(w, h, GPT4O, detail) == size
    assert image_tokens(w, h, GPT4O, detail) == tokens


def test_patch_rule_vectors():
    assert patches(1024, 1024, MINI_PATCH) == 1024
    assert used_size(1800, 2400, MINI_PATCH) == (1056, 1408)
    assert patches(1800, 2400, MINI_PATCH) == 1452
    assert image_tokens(1024, 1024, MINI_PATCH) == math.ceil(1024 * 1.62)


def test_family_constants_are_table_data():
    expected = {
        "gpt-4o": (85, 170),
        "gpt-4.1": (85, 170),
        "gpt-4.5": (85, 170),
        "gpt-4o-mini": (2833, 5667),
        "gpt-5": (70, 140),
        "gpt-5-chat-latest": (70, 140),
        "o1": (75, 150),
        "o1-pro": (75, 150),
        "o3": (75, 150),
    }
    for name, (base, tile) in expected.items():
        p = PROFILES[name]
        assert (p.rule, p.base, p.tile) == ("tile", base, tile), name
        assert p.price_in is not None and p.price_out is not None, name
    assert {n: PROFILES[n].multiplier for n in ("gpt-4.1-mini", "gpt-4.1-nano", "o4-mini")} == {
        "gpt-4.1-mini": 1.62,
        "gpt-4.1-nano": 2.46,
        "o4-mini": 1.72,
    }
    assert profile_for("gpt-4o-mini-2024-07-18").base == 2833  # longest prefix wins over gpt-4o


def test_auto_is_not_low_and_short_sides_are_never_scaled_up():
    # The popular mistake: auto counted as 85, and a 512x512 image blown up to 768.
    assert used_size(4000, 3000, GPT4O, "auto") == (1024, 768)
    assert image_tokens(4000, 3000, GPT4O, "auto") == image_tokens(4000, 3000, GPT4O, "high") == 765
    assert used_size(512, 512, GPT4O, "high") == (512, 512)
    assert image_tokens(512, 512, GPT4O, "high") == 85 + 170


def test_newer_family_original_and_high():
    p = profile_for("gpt-5.4")
    assert p.has_original
    w, h = used_size(6000, 4000, p, "original")
    assert max(w, h) <= 6000 and math.ceil(w / 32) * math.ceil(h / 32) <= 10_000
    w, h = used_size(6000, 4000, p, "high")
    assert max(w, h) <= 2048 and math.ceil(w / 32) * math.ceil(h / 32) <= 2500


def test_user_profiles_override_and_add():
    local = profile_for(
        "llava:13b", {"llava": {"rule": "fixed", "base": 576, "max_side": 672, "price_in": 0.0}}
    )
    assert (local.known, local.base, used_size(2000, 1000, local)) == (True, 576, (672, 336))
    cheaper = profile_for("gpt-4o-2024-08-06", {"gpt-4o": {"price_in": 1.0}})
    assert (cheaper.price_in, cheaper.tile) == (1.0, 170)
    with pytest.raises(ValueError, match="unknown field"):
        profile_for("x", {"x": {"tiles": 3}})


# ---------------------------------------------------------------- resolution policy


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 32 + 2, w // 32 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def sideways_phone_jpeg(w: int = 1600, h: int = 1200) -> bytes:
    """Stored landscape, EXIF orientation 6 (rotate 90 CW to view), GPS position and camera make.
    The stored image's left edge is red: upright, the top edge must be red."""
    img = photo(w, h)
    ImageDraw.Draw(img).rectangle((0, 0, w // 10, h), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"
    exif[0x0112] = 6
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def sent(request) -> list[tuple[bytes, dict]]:
    out = []
    for part in request.body["messages"][-1]["content"]:
        if part["type"] == "image_url":
            out.append((base64.b64decode(part["image_url"]["url"].partition(",")[2]), part["image_url"]))
    return out


def test_sideways_phone_photo_arrives_upright_without_metadata(openai_env, tmp_path):
    server = openai_env
    path = tmp_path / "phone.jpg"
    path.write_bytes(sideways_phone_jpeg())
    answer = vision_magic.ask("What is this?", path, model="gpt-4o", detail="high", display=False)
    ((data, part),) = sent(server.last)
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.size == (768, 1024) == used_size(1200, 1600, GPT4O, "high")
    assert part["detail"] == "high"
    top = np.asarray(img.convert("RGB").crop((0, 0, 768, 60))).reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[1] < 60 and top[2] < 60, f"top edge should be red, is {top}"
    assert not img.getexif() and "exif" not in img.info
    for marker in (b"Exif", b"TestPhone", b"GPS"):
        assert marker not in data
    assert answer.images[0].tokens == image_tokens(1200, 1600, GPT4O, "high") == 765


def test_low_sends_at_most_512_and_no_resize_keeps_the_original(openai_env, tmp_path):
    server = openai_env
    Image.new("RGB", (3000, 1000), "white").save(tmp_path / "wide.png")
    vision_magic.ask("?", tmp_path / "wide.png", detail="low", display=False)
    ((data, part),) = sent(server.last)
    assert Image.open(io.BytesIO(data)).size == (512, 171) and part["detail"] == "low"

    original = sideways_phone_jpeg(900, 600)
    (tmp_path / "p.jpg").write_bytes(original)
    vision_magic.ask("?", tmp_path / "p.jpg", detail="high", resize=False, display=False)
    ((data, _),) = sent(server.last)
    img = Image.open(io.BytesIO(data))
    assert img.size == (600, 900)  # upright, not resized


def test_content_parts_resize_for_the_chosen_model():
    big = photo(3000, 2000)
    for model, detail in [
        ("gpt-4o", "high"),
        ("gpt-4.1-mini", "high"),
        ("gpt-4o", "low"),
        ("gpt-5.4", "original"),
    ]:
        (part,) = vision_magic.content_parts(big, model=model, detail=detail)
        img = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].partition(",")[2])))
        assert img.size == used_size(3000, 2000, profile_for(model), detail), (model, detail)


def test_untouched_when_already_small_enough():
    buf = io.BytesIO()
    photo(640, 480).save(buf, "JPEG", quality=80)
    p = prepare_bytes(buf.getvalue(), "small.jpg", ImageOptions(profile=GPT4O, detail="high"))
    assert p.data == buf.getvalue() and p.notes == []  # no decode, no re-encode, nothing lost


# ---------------------------------------------------------------- encoding policy


def screenshot(w: int = 1600, h: int = 900) -> Image.Image:
    img = Image.new("RGB", (w, h), (250, 250, 250))
    d = ImageDraw.Draw(img)
    for y in range(10, h, 14):
        d.text((10, y), "def estimate(*sources, model=None): return table  # 0123456789 " * 3, fill=(0, 0, 0))
    d.line([(0, h // 2), (w, h // 3)], fill=(200, 0, 0), width=1)
    return img


def test_photos_as_jpeg_graphics_lossless_and_crisp():
    opts = ImageOptions(profile=GPT4O, detail="high", resize=False)
    assert prepare_image(photo(800, 600), "p", opts).mime == "image/jpeg"
    shot = screenshot()
    p = prepare_image(shot, "s", opts)
    assert p.mime in ("image/png", "image/webp")
    decoded = Image.open(io.BytesIO(p.data)).convert("RGB")
    assert np.array_equal(np.asarray(decoded), np.asarray(shot)), "text and thin lines must stay exact"
    png = io.BytesIO()
    shot.save(png, "PNG")
    assert p.nbytes <= len(png.getvalue())


def test_webp_can_be_turned_off_and_content_not_file_name_decides(tmp_path):
    shot = screenshot()
    p = prepare_image(shot, "s", ImageOptions(profile=GPT4O, resize=False, webp=False))
    assert p.mime == "image/png"
    # By content, not name: a photo stored as PNG becomes JPEG once it is resized, and a screenshot
    # named .jpg (PNG bytes) stays lossless.
    photo(3000, 2000).save(tmp_path / "photo.png")
    screenshot(2400, 1350).save(tmp_path / "shot.jpg", format="PNG")
    opts = ImageOptions(profile=GPT4O, detail="high")
    q = prepare_bytes((tmp_path / "photo.png").read_bytes(), "photo.png", opts)
    assert (q.mime, q.width, q.height) == ("image/jpeg", 1152, 768)
    r = prepare_bytes((tmp_path / "shot.jpg").read_bytes(), "shot.jpg", opts)
    assert r.mime in ("image/png", "image/webp") and (r.width, r.height) == (1365, 768)


def test_plot_no_larger_than_matplotlibs_png():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    x = np.linspace(0, 10, 300)
    ax.plot(x, np.sin(x))
    ax.set_title("sine")
    own = io.BytesIO()
    fig.savefig(own, format="png")
    (p,) = vision_magic.content_parts(fig, detail="high")
    data = base64.b64decode(p["image_url"]["url"].partition(",")[2])
    plt.close(fig)
    assert len(data) <= len(own.getvalue())


def test_per_image_limit_shrinks_with_a_note():
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
    p = prepare_image(noisy, "noise", ImageOptions(profile=GPT4O, resize=False, max_image_bytes=200_000))
    assert p.nbytes <= 200_000
    assert any("limit" in n and "shrunk" in n for n in p.notes), p.notes
    assert p.tokens == image_tokens(p.width, p.height, GPT4O, "auto")


def test_request_limit_shrinks_the_largest_images_with_a_note():
    opts = ImageOptions(profile=GPT4O, resize=False, max_request_bytes=400_000)
    imgs = [prepare_image(photo(1000, 800, seed=s), f"p{s}", opts) for s in range(3)]
    assert sum(i.nbytes for i in imgs) > 400_000
    fitted = fit_request(imgs, opts)
    assert sum(i.nbytes for i in fitted) <= 400_000
    assert any("total limit" in n for i in fitted for n in i.notes)
    for img in fitted:
        decoded = Image.open(io.BytesIO(img.data))
        assert decoded.size == (img.width, img.height)


# ---------------------------------------------------------------- estimates


def test_estimate_matches_the_vectors_on_real_images():
    est = vision_magic.estimate(
        Image.new("RGB", (1024, 1024), "red"),
        Image.new("RGB", (2048, 4096), "blue"),
        model="gpt-4o",
        detail="high",
        prompt="Compare.",
    )
    assert [i.sent_size for i in est.images] == [(768, 768), (768, 1536)]
    assert [i.tokens for i in est.images] == [765, 1105]
    assert est.image_tokens == 1870
    assert est.cost == pytest.approx(est.input_tokens * 2.5 / 1e6)
    assert all(i.b64_chars == 4 * math.ceil(i.nbytes / 3) for i in est.images)
    low = vision_magic.estimate(Image.new("RGB", (4096, 8192)), model="gpt-4o", detail="low")
    assert low.image_tokens == 85
    patch = vision_magic.estimate(Image.new("RGB", (1800, 2400)), model="gpt-4.1-mini", detail="high")
    assert patch.images[0].sent_size == (1056, 1408)
    assert patch.image_tokens == math.ceil(1452 * 1.62)


def test_estimate_unknown_model_and_links_say_so():
    est = vision_magic.estimate(Image.new("RGB", (100, 100)), "https://example.org/a.png", model="llava:13b")
    assert est.cost is None
    assert any("not in the model table" in n for n in est.notes)
    assert any("link" in n for n in est.notes)
    assert est.images[1].tokens is None
    assert "no price known" in str(est)
    with pytest.raises(VisionMagicError, match="original"):
        vision_magic.estimate(Image.new("RGB", (10, 10)), model="gpt-4o", detail="original")


def test_cost_magic_shows_the_table_and_sends_nothing(shell, openai_env, tmp_path, monkeypatch):
    server = openai_env
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (2048, 4096), "white").save(tmp_path / "tall.png")
    result = shell.run_cell("%%ask_image tall.png -d high --cost --out t_est\nHow much?")
    assert result.error_in_exec is None, result.error_in_exec
    assert server.requests == []
    est = shell.user_ns["t_est"]
    assert est.image_tokens == 1105 and est.images[0].sent_size == (768, 1536)
    plain = shell.displays.last()["text/plain"]  # the test shell is a terminal one: plain text only
    assert "1105 image" in plain and "768x1536" in plain and "$0.0028" in plain
    page = est._repr_html_()  # what a notebook shows
    assert "<td>1105</td>" in page and "Nothing was sent" in page


def test_footer_shows_real_usage_and_its_cost(openai_env, tmp_path):
    Image.new("RGB", (800, 600), "green").save(tmp_path / "g.png")
    answer = vision_magic.ask("Colour?", tmp_path / "g.png", model="gpt-4o-mini", display=False)
    usage = answer.usage
    assert usage["prompt_tokens"] > 0
    p = PROFILES["gpt-4o-mini"]
    expected = (usage["prompt_tokens"] * p.price_in + usage["completion_tokens"] * p.price_out) / 1e6
    assert answer.cost == pytest.approx(expected)
    footer = answer.footer()
    assert f"{usage['prompt_tokens']} tokens in" in footer and f"${expected:.4f}" in footer


def test_original_detail_accepted_for_models_that_have_it(openai_env):
    server = openai_env
    vision_magic.ask("?", photo(3000, 2000), model="gpt-5.4", detail="original", display=False)
    ((data, part),) = sent(server.last)
    assert part["detail"] == "original"
    assert Image.open(io.BytesIO(data)).size == used_size(3000, 2000, profile_for("gpt-5.4"), "original")
    with pytest.raises(VisionMagicError, match="not available"):
        vision_magic.ask("?", photo(100, 100), model="gpt-4o", detail="original", display=False)
