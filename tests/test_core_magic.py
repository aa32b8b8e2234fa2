"""%%ask_image and ask() through a real IPython shell, against the real HTTP test server."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

import vision_magic
from vision_magic.errors import ConfigError, SourceErrors


@pytest.fixture
def pics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my pics").mkdir()
    Image.new("RGB", (60, 40), "red").save(tmp_path / "my pics" / "red one.png")
    Image.new("RGB", (30, 20), "blue").save(tmp_path / "blue.jpg")
    return tmp_path


def sent_images(request) -> list[Image.Image]:
    out = []
    for part in request.body["messages"][-1]["content"][1:]:
        data = base64.b64decode(part["image_url"]["url"].partition(",")[2])
        out.append(Image.open(io.BytesIO(data)))
    return out


def test_magic_streams_one_updating_markdown_display(shell, openai_env, pics):
    server = openai_env
    server.chunk_size = 3
    result = shell.run_cell('%%ask_image "my pics/red one.png" blue.jpg --out t_ans\nWhat differs?')
    assert result.error_in_exec is None, result.error_in_exec
    req = server.last
    assert req.body["stream"] is True and req.body["stream_options"] == {"include_usage": True}
    assert req.body["model"] == "gpt-4o" and req.body["max_tokens"] == 1024
    assert req.body["messages"][-1]["content"][0] == {"type": "text", "text": "What differs?"}
    assert [im.size for im in sent_images(req)] == [(60, 40), (30, 20)]
    assert req.headers["authorization"] == "Bearer sk-test-VMFAKEKEY-0123456789abcdef"

    events = [e for e in shell.displays.events if "text/markdown" in e["data"]]
    ids = {e["transient"].get("display_id") for e in events}
    assert len(ids) == 1 and None not in ids, "one display, updated in place"
    assert events[0]["update"] is False and all(e["update"] for e in events[1:])
    final = events[-1]["data"]
    answer = shell.user_ns["t_ans"]
    assert answer is vision_magic.last_answer
    assert "You asked: What differs?" in answer.text
    assert final["text/markdown"].startswith(answer.text.split("\\(")[0])
    assert "$E = mc^2$" in final["text/markdown"], "LaTeX delimiters rewritten for JupyterLab"
    assert "gpt-4o" in final["text/plain"] and f"{answer.tokens_in} tokens in" in final["text/plain"]
    assert "<IPython" not in final["text/plain"]
    assert answer.usage["prompt_tokens"] > 0 and answer.usage["completion_tokens"] > 0
    assert [i.mime for i in answer.images] == ["image/png", "image/jpeg"]
    assert answer.images[0].nbytes == len(
        base64.b64decode(req.body["messages"][-1]["content"][1]["image_url"]["url"].partition(",")[2])
    )


def test_updates_are_throttled(shell, openai_env, pics):
    server = openai_env
    server.chunk_size = 1
    server.reply = "x" * 400  # 400 chunks
    shell.run_line_magic("config", "VisionMagic.render_interval = 0.05")
    server.chunk_delay = 0.0005
    result = shell.run_cell("%%ask_image blue.jpg\nthrottle please")
    assert result.error_in_exec is None
    updates = [e for e in shell.displays.events if e["update"]]
    assert vision_magic.last_answer.text == "x" * 400
    assert 1 <= len(updates) < 100, len(updates)


def test_chinese_prompt_reaches_server_byte_for_byte(shell, openai_env, pics):
    prompt = "这两张图片有什么不同？请详细说明。"
    shell.run_cell(f"%%ask_image blue.jpg\n{prompt}")
    raw = openai_env.last.raw.decode("utf-8")
    assert json.loads(raw)["messages"][-1]["content"][0]["text"] == prompt


def test_variables_and_expressions(shell, openai_env, pics):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    ax.plot([0, 1])
    shell.user_ns.update(
        t_img=Image.new("RGB", (11, 11)),
        t_list=[np.zeros((4, 5), dtype=np.uint8), b""],
        t_ax=ax,
        t_bytes=(pics / "blue.jpg").read_bytes(),
        t_path=pics / "blue.jpg",
        blue=Image.new("RGB", (3, 3)),  # a variable named like the file: the variable wins for `blue`
    )
    result = shell.run_cell("%%ask_image t_img t_list[0] t_ax.figure t_ax t_bytes t_path blue\nWhat?")
    assert result.error_in_exec is None, result.error_in_exec
    sizes = [im.size for im in sent_images(openai_env.last)]
    assert sizes[0] == (11, 11) and sizes[1] == (5, 4) and sizes[2] == sizes[3]
    assert sizes[4:] == [(30, 20), (30, 20), (3, 3)]
    plt.close(fig)


def test_bad_sources_listed_together_nothing_sent(shell, openai_env, pics):
    (pics / "fake.png").write_text("not an image")
    result = shell.run_cell("%%ask_image no_such_var missing.png fake.png t_nothing[0] blue.jpg\nWhat?")
    err = result.error_in_exec
    assert isinstance(err, SourceErrors)
    msg = str(err)
    assert msg.startswith("4 sources could not be used, nothing was sent")
    for needle in (
        "no_such_var: no variable",
        "missing.png: file not found",
        "fake.png: not an image",
        "t_nothing[0]",
    ):
        assert needle in msg
    assert openai_env.chat_requests == []


def test_error_is_one_line_without_traceback(shell, openai_env, pics, capsys):
    shell.run_cell("%%ask_image missing.png\nWhat?")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "missing.png: file not found" in text
    assert "Traceback" not in text and 'File "' not in text


def test_no_key_error_names_the_variable(shell, pics, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = shell.run_cell("%%ask_image blue.jpg\nWhat?")
    assert isinstance(result.error_in_exec, ConfigError)
    assert "OPENAI_API_KEY" in str(result.error_in_exec) and "OPENAI_BASE_URL" in str(result.error_in_exec)


def test_api_error_shows_status_and_server_message(shell, openai_env, pics):
    openai_env.add_fault("status", status=404, message="The model `nope` does not exist")
    result = shell.run_cell("%%ask_image blue.jpg -m nope\nWhat?")
    msg = str(result.error_in_exec)
    assert "404" in msg and "The model `nope` does not exist" in msg and "\n" not in msg


def test_options_reach_the_request(shell, openai_env, pics):
    result = shell.run_cell(
        "%%ask_image blue.jpg -m gpt-4.1 -d high --max-tokens 77 --temperature 0.2 --seed 5 --system 'Be brief.' --no-stream\nQ?"
    )
    assert result.error_in_exec is None
    body = openai_env.last.body
    assert body["model"] == "gpt-4.1" and body["max_tokens"] == 77 and body["temperature"] == 0.2
    assert body["seed"] == 5 and "stream" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1]["image_url"]["detail"] == "high"
    assert vision_magic.last_answer.usage["prompt_tokens"] > 0


def test_config_traits_and_env_model(shell, openai_env, pics, monkeypatch):
    shell.run_line_magic("config", "VisionMagic.model = 'gpt-4o-mini'")
    shell.run_line_magic("config", "VisionMagic.detail = 'low'")
    shell.run_cell("%%ask_image blue.jpg\nQ?")
    body = openai_env.last.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][-1]["content"][1]["image_url"]["detail"] == "low"
    from vision_magic.engine.config import VisionMagic

    monkeypatch.setenv("VISION_MAGIC_MODEL", "llava:13b")
    assert VisionMagic().model == "llava:13b"
    assert "api_key" not in VisionMagic.class_trait_names()


def test_dry_run_sends_nothing_and_shows_request(shell, openai_env, pics):
    result = shell.run_cell("%%ask_image blue.jpg --dry-run\nQ?")
    assert result.error_in_exec is None
    assert openai_env.chat_requests == []
    bundle = shell.displays.last()
    assert "Dry run: nothing was sent" in bundle["text/plain"]
    assert (
        "base64 chars elided" in bundle["text/plain"] and '<img src="data:image/jpeg' in bundle["text/html"]
    )
    assert "blue.jpg" in bundle["text/html"] and "30x20" in bundle["text/html"]
    assert vision_magic.last_answer.dry_run


def test_no_source_uses_last_displayed_image(shell, openai_env, pics, monkeypatch):
    from IPython.display import display

    # A notebook front end asks for rich formats; the terminal shell only for text/plain.
    formatter = shell.display_formatter
    monkeypatch.setattr(formatter, "active_types", [*formatter.active_types, "image/png"])
    shell.run_cell("from PIL import Image\nImage.new('RGB', (25, 15), 'green')")  # shown as the cell's value
    shell.run_cell("%%ask_image\nWhat is this?")
    assert [im.size for im in sent_images(openai_env.last)] == [(25, 15)]
    buf = io.BytesIO()
    Image.new("RGB", (9, 8)).save(buf, "PNG")
    display({"image/png": base64.b64encode(buf.getvalue()).decode()}, raw=True)
    shell.run_cell("%%ask_image\nAnd now?")
    assert [im.size for im in sent_images(openai_env.last)] == [(9, 8)]


def test_no_source_falls_back_to_open_figure(shell, openai_env, pics):
    shell.run_cell(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(3, 2), dpi=50)\nplt.plot([1, 3, 2]);"
    )
    result = shell.run_cell("%%ask_image\nWhat does the plot show?")
    assert result.error_in_exec is None, result.error_in_exec
    (img,) = sent_images(openai_env.last)
    assert img.width <= 150 and img.height <= 100
    shell.run_cell("plt.close('all')")


def test_help_has_examples(shell, capsys):
    """``%%ask_image?`` shows the usage, the examples and every flag (built on demand, not at import)."""
    doc = shell.object_inspect_text("%%ask_image")
    assert "%%ask_image photo.jpg" in doc and "--dry-run" in doc and "--out NAME" in doc
    shell.run_cell("%%ask_image?\n")
    shown = capsys.readouterr().out
    assert "--zoom [N]" in shown and "--replay-from PATH" in shown and "What is in this photo?" in shown


def test_a_notebooks_help_for_the_magic_lists_every_flag(tmp_path):
    """In a real kernel, what Shift+Tab and ``%%ask_image?`` ask for (an inspect request) has the usage, the
    examples and the flags, though nothing built the argparse parser when the extension loaded."""
    from kernel_helpers import Kernel

    with Kernel(tmp_path, {}) as kernel:
        kernel.run("%load_ext vision_magic")
        built = kernel.printed(
            "print('parser' in get_ipython().find_cell_magic('ask_image').__func__.__dict__)"
        )
        kernel.kc.inspect("%%ask_image", cursor_pos=len("%%ask_image"), detail_level=0)
        reply = kernel.kc.get_shell_msg(timeout=30)
        while reply["msg_type"] != "inspect_reply":
            reply = kernel.kc.get_shell_msg(timeout=30)
    assert built.strip() == "False"
    assert reply["content"]["found"]
    text = reply["content"]["data"]["text/plain"]
    assert "--zoom [N]" in text and "--out NAME" in text and "%%ask_image photo.jpg" in text


def test_python_api_mirrors_magic(openai_env, pics):
    answer = vision_magic.ask(
        "Which colour?", "blue.jpg", Image.new("RGB", (5, 5)), detail="low", display=False
    )
    assert "You asked: Which colour?" in answer.text and answer.usage["completion_tokens"] > 0
    assert [i.width for i in answer.images] == [30, 5]
    assert openai_env.last.body["messages"][-1]["content"][1]["image_url"]["detail"] == "low"
    assert repr(answer).startswith("<Answer gpt-4o, ")
