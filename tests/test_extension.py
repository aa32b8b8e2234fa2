"""The IPython extension can be unloaded and reloaded: %unload_ext undoes every hook, %reload_ext works,
and %config settings survive a reload."""

from __future__ import annotations

import io

from PIL import Image

from vision_magic.engine.session import current
from vision_magic.frontends import output_capture


def _png(colour: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    return buf.getvalue()


def _show(shell, colour: str) -> None:
    shell.user_ns["png_bytes"] = _png(colour)
    assert shell.run_cell("from IPython.display import Image, display\ndisplay(Image(png_bytes))").success


def test_unload_undoes_every_hook_and_reload_restores_them(shell, openai_env):
    session = current()
    try:
        shell.run_line_magic("config", "VisionMagic.max_tokens = 321")
        shell.run_line_magic("unload_ext", "vision_magic")
        assert "ask_image" not in shell.magics_manager.magics["cell"]
        assert shell.custom_exceptions == ()
        assert not output_capture.installed(shell)
        assert session.make_view is None
        session.last_shown = None
        _show(shell, "red")
        assert session.last_shown is None, "an unloaded extension still captures displays"
        result = shell.run_cell("%%ask_image\nWhat?")
        assert result.error_in_exec is not None or result.error_before_exec is not None

        shell.run_line_magic("load_ext", "vision_magic")
        _show(shell, "blue")
        assert session.last_shown is not None and session.last_shown[1] == _png("blue")
        assert shell.run_cell("%%ask_image --no-stream\nWhat is this?").error_in_exec is None
        assert openai_env.last.body["max_tokens"] == 321, "%config settings survive unload/load"
    finally:
        if "ask_image" not in shell.magics_manager.magics["cell"]:
            shell.run_line_magic("load_ext", "vision_magic")


def test_reload_ext_keeps_one_capture_and_one_magic(shell, openai_env):
    calls = []
    original = output_capture.remember
    shell.run_line_magic("reload_ext", "vision_magic")
    shell.run_line_magic("reload_ext", "vision_magic")
    try:
        output_capture.remember = lambda *a, **k: (calls.append(a), original(*a, **k))
        _show(shell, "green")
    finally:
        output_capture.remember = original
    assert len(calls) == 1, f"a reloaded extension captures each display once, not {len(calls)} times"
    result = shell.run_cell("%%ask_image --no-stream\nAnd this?")
    assert result.error_in_exec is None
    assert openai_env.last.body["messages"][-1]["content"][1]["image_url"]["url"].startswith("data:image/png")


def test_errors_are_one_line_again_after_reload(shell, capsys):
    shell.run_line_magic("reload_ext", "vision_magic")
    shell.run_cell("%%ask_image no/such/file.png\nWhat?")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "file not found" in text and "Traceback" not in text
