"""The package's three layers, checked on the import graph (every import statement, also those inside
functions) and at run time:

- ``vision_magic.images``: Pillow, numpy, the standard library and ``vision_magic.errors`` only;
- ``vision_magic.engine``: may add openai and traitlets, never IPython, ipywidgets or the front ends;
- ``vision_magic.frontends``: anything; nothing below imports it.
- ``vision_magic.errors``: the standard library only.

No module imports another module's ``_private`` name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vision_magic"

# layer -> import prefixes it must never reach
FORBIDDEN = {
    "vision_magic.errors": ("vision_magic", "PIL", "numpy", "openai", "IPython", "ipywidgets", "traitlets"),
    "vision_magic.images": (
        "vision_magic.engine",
        "vision_magic.frontends",
        "openai",
        "IPython",
        "ipywidgets",
        "traitlets",
        "matplotlib",
        "pandas",
    ),
    "vision_magic.engine": ("vision_magic.frontends", "IPython", "ipywidgets"),
}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import statement in ``source``, relative imports
    resolved against ``module``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            out.append((base, names, node.lineno))
            # `from . import x` imports the submodule x
            out += [(f"{base}.{n}", [], node.lineno) for n in names if not node.module]
    return out


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import that breaks a layer rule, or imports another module's private name."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        for target, names, line in imports_of(path.read_text(), module, path.name == "__init__.py"):
            for layer, banned in FORBIDDEN.items():
                if module == layer or module.startswith(layer + "."):
                    found += [
                        f"{module}:{line} imports {target} ({layer} must not)"
                        for prefix in banned
                        if target == prefix or target.startswith(prefix + ".")
                    ]
            if target.startswith("vision_magic") and target != module:
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                if private:
                    found.append(f"{module}:{line} imports private {private} from {target}")
    return found


def test_the_package_keeps_its_layers():
    assert violations() == []


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a pure module importing the engine, an engine module importing IPython inside a
    function, and a private import across modules are all reported."""
    pkg = tmp_path / "vision_magic"
    (pkg / "images").mkdir(parents=True)
    (pkg / "engine").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "images" / "__init__.py").write_text("")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "images" / "encode.py").write_text("from ..engine import send\n")
    (pkg / "engine" / "send.py").write_text("def f():\n    from IPython.display import display\n")
    (pkg / "engine" / "run.py").write_text("from .send import _helper\n")
    found = violations(pkg)
    assert any("vision_magic.images.encode:1 imports vision_magic.engine" in v for v in found), found
    assert any("vision_magic.engine.send:2 imports IPython.display" in v for v in found), found
    assert any("private ['_helper']" in v for v in found), found


def test_each_layer_says_its_rules():
    import vision_magic.engine
    import vision_magic.frontends
    import vision_magic.images

    for pkg in (vision_magic.images, vision_magic.engine, vision_magic.frontends):
        assert "Rules" in pkg.__doc__ and "tests/test_layers.py" in pkg.__doc__, pkg.__name__


@pytest.mark.parametrize(
    ("layer", "absent"),
    [
        ("images", ("IPython", "ipywidgets", "openai", "traitlets")),
        ("engine", ("IPython", "ipywidgets")),
    ],
)
def test_a_layer_runs_without_what_it_must_not_import(layer, absent):
    """Import every module of the layer and use it (a content part; a dry-run question through the
    engine); none of the banned packages gets loaded."""
    code = f"""
import pkgutil, importlib, sys
import vision_magic.{layer} as layer
for m in pkgutil.walk_packages(layer.__path__, layer.__name__ + "."):
    importlib.import_module(m.name)
from PIL import Image
from vision_magic.images.parts import content_parts
content_parts(Image.new("RGB", (8, 8)))
if "{layer}" == "engine":
    from vision_magic.engine.run import ask
    answer = ask("What?", Image.new("RGB", (8, 8)), dry_run=True)
    assert answer.dry_run and answer.request["messages"]
bad = [m for m in {absent!r} if m in sys.modules]
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in the file, type-checking imports included)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, _names, _line in imports_of(path.read_text(), module, path.name == "__init__.py"):
            if target in modules and target != module and module != "vision_magic":
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle (as a path that returns to its start), found by depth-first search."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles():
    """The package's own __init__ (which loads names lazily) aside, no module imports its way back to
    itself, not even through an import inside a function."""
    assert cycles(import_graph()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
