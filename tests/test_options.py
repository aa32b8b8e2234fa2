"""One options object: every AskOptions field reaches the engine from every front end (ask, Chat.ask,
ask_many, estimate, the panel, the magic's question/--each/--cost runs), and what it does lands in the
request body. Adding a field without wiring it somewhere makes these tests fail."""

from __future__ import annotations

from dataclasses import fields

import pytest
from PIL import Image

import vision_magic
from vision_magic.engine.options import AskOptions
from vision_magic.errors import VisionMagicError
from vision_magic.frontends.magic_arguments import NOT_ON_THE_LINE, OPTION_FLAGS, parser_of, read_line

# a value other than the default for every option, and the magic line flag that asks for it
SAMPLES = {
    "model": ("gpt-4o-mini", "-m gpt-4o-mini"),
    "detail": ("low", "-d low"),
    "system": ("Be brief.", "--system Brief."),
    "max_tokens": (77, "--max-tokens 77"),
    "temperature": (0.3, "--temperature 0.3"),
    "seed": (7, "--seed 7"),
    "stream": (False, "--no-stream"),
    "resize": (False, "--no-resize"),
    "dry_run": (True, "--dry-run"),
    "cache": (False, "--no-cache"),
    "refresh": (True, "--refresh"),
    "json_mode": (True, "--json"),
    "schema": (
        {"title": "Colour", "type": "object", "properties": {"name": {"type": "string"}}},
        "--schema colour_schema",
    ),
    "via": ("batch", "--batch"),
    "crop": ("0,0,0.5,0.5", "--crop 0,0,0.5,0.5"),
    "zoom": (4, "--zoom 4"),
}
MAGIC_VALUE = {"system": "Brief."}  # the line's value where it differs from the Python one


@pytest.fixture
def seen(monkeypatch):
    """Every AskOptions the engine resolved (each question and estimate resolves its options once)."""
    found: list[AskOptions] = []
    original = AskOptions.resolved

    def resolved(self, cfg):
        found.append(self)
        return original(self, cfg)

    monkeypatch.setattr(AskOptions, "resolved", resolved)
    return found


@pytest.fixture
def red():
    return Image.new("RGB", (40, 30), "red")


def test_every_option_has_a_sample_and_a_place_on_the_magic_line():
    names = {f.name for f in fields(AskOptions)}
    assert set(SAMPLES) == names, f"add a sample (and flag) for {names ^ set(SAMPLES)}"
    assert set(OPTION_FLAGS) | set(NOT_ON_THE_LINE) == names
    assert not set(OPTION_FLAGS) & set(NOT_ON_THE_LINE)
    assert {n for n, (_, flag) in SAMPLES.items() if flag} == set(OPTION_FLAGS)


def _calls(red):
    """(front end, call(name, value)) for each Python front end."""

    def ask(name, value):
        return vision_magic.ask("Which colour?", red, display=False, **{name: value})

    def chat(name, value):
        return vision_magic.chat("options").ask("Which colour?", red, display=False, **{name: value})

    def ask_many(name, value):
        return vision_magic.ask_many("Which colour?", [red], progress=False, **{name: value})

    def estimate(name, value):
        return vision_magic.estimate(red, prompt="Which colour?", **{name: value})

    def panel(name, value):
        p = vision_magic.ask_panel(red, prompt="Which colour?", **{name: value})
        p.ask(wait=True)
        return p

    return {"ask": ask, "Chat.ask": chat, "ask_many": ask_many, "estimate": estimate, "panel": panel}


@pytest.mark.parametrize("front", ["ask", "Chat.ask", "ask_many", "estimate", "panel"])
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_python_front_end_passes_every_option(openai_env, seen, red, front, name):
    value = SAMPLES[name][0]
    if front == "ask_many" and name == "dry_run":
        with pytest.raises(VisionMagicError, match="dry run"):
            _calls(red)[front](name, value)
        return
    if front in ("ask", "Chat.ask") and name == "via":  # one question is never a Batch API job
        with pytest.raises(VisionMagicError, match=r"ask_many\(\.\.\., via='batch'\)"):
            _calls(red)[front](name, value)
    else:
        result = _calls(red)[front](name, value)
        if front == "ask_many" and name == "via":
            assert isinstance(result, vision_magic.BatchJob) and result.batch_ids
    assert seen, f"{front} built no options"
    assert getattr(seen[-1], name) == value, f"{front} lost {name}={value!r}"


@pytest.mark.parametrize("run", ["question", "each", "cost"])
@pytest.mark.parametrize("name", sorted(OPTION_FLAGS))
def test_every_magic_run_passes_every_flag(shell, openai_env, seen, red, run, name):
    shell.user_ns["red_image"] = red
    shell.user_ns["colour_schema"] = SAMPLES["schema"][0]
    extra = {"question": "", "each": " --each", "cost": " --cost"}[run]
    if run == "each" and name == "dry_run":
        result = shell.run_cell(f"%%ask_image red_image{extra} {SAMPLES[name][1]}\nWhich colour?")
        assert "--dry-run" in str(result.error_in_exec)
        return
    if run == "question" and name == "via":  # --batch without --each: one line saying to add it
        result = shell.run_cell(f"%%ask_image red_image {SAMPLES[name][1]}\nWhich colour?")
        assert "--each --batch" in str(result.error_in_exec)
        assert getattr(seen[-1], name) == "batch"
        return
    result = shell.run_cell(f"%%ask_image red_image{extra} {SAMPLES[name][1]}\nWhich colour?")
    assert result.error_in_exec is None, result.error_in_exec
    assert seen, f"%%ask_image{extra} built no options"
    assert getattr(seen[-1], name) == MAGIC_VALUE.get(name, SAMPLES[name][0])


def test_options_shape_the_request_body(openai_env, red):
    """What the options do, in the body the server received."""
    server = openai_env
    vision_magic.ask(
        "Which colour?",
        red,
        display=False,
        model="gpt-4o-mini",
        detail="low",
        system="Be brief.",
        max_tokens=77,
        temperature=0.3,
        seed=7,
        stream=False,
        cache=False,
        json_mode=True,
    )
    body = server.last.body
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 77
    assert body["temperature"] == 0.3 and body["seed"] == 7 and "stream" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1]["image_url"]["detail"] == "low"
    assert body["response_format"] == {"type": "json_object"}


def test_an_unknown_option_is_one_line_naming_the_valid_ones(red):
    with pytest.raises(
        TypeError, match=r"unexpected option 'colour': use cache, crop, detail, .*temperature, via, zoom"
    ):
        vision_magic.ask("What?", red, colour="red")
    with pytest.raises(TypeError, match="unexpected option"):
        vision_magic.ask_many("What?", [red], colour="red")


def test_the_keyword_signature_lists_every_option():
    import inspect

    for func in (vision_magic.ask, vision_magic.ask_many, vision_magic.estimate, vision_magic.ask_panel):
        params = inspect.signature(func).parameters
        assert {f.name for f in fields(AskOptions)} <= set(params), func.__name__


@pytest.mark.parametrize(
    "line",
    [
        "",
        "photo.png",
        "fig ax 'my pics/a b.png' https://example.org/c.png",
        "axs[0, 1] axs[1,1]",
        "@3 @-1:2",
        "scan.png[0,0,0.5,0.5] x",
        '"quoted name.png"',
    ],
)
def test_a_line_without_flags_reads_as_argparse_reads_it(shell, line):
    """The flagless fast path (no parser built) gives exactly argparse's namespace: every flag at its default."""
    from vision_magic.frontends.magic import AskImageMagics

    magic = AskImageMagics.ask_image
    fast = vars(read_line(magic, line))
    if not line:  # nothing at all: argparse's own defaults
        assert fast == vars(parser_of(magic).parse_args([]))
    # the same line with a flag that changes nothing goes through argparse
    through_argparse = vars(read_line(magic, line + " --concurrency 8"))
    assert fast == through_argparse


def test_the_first_flagless_line_builds_no_parser():
    from vision_magic.frontends.magic import AskImageMagics

    func = AskImageMagics.ask_image
    func.__dict__.pop("parser", None)
    assert read_line(func, "photo.png").sources == ["photo.png"]
    assert "parser" not in func.__dict__
    assert read_line(func, "photo.png -m gpt-4o-mini").model == "gpt-4o-mini"
    assert "parser" in func.__dict__
