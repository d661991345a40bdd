"""The one-way house: every module imports only its own floor and the floors below.

The allowed order lives here, in ``LAYERS`` and nowhere else. Imports are read
with ``ast`` (function-level imports included), so a lazy import inside a
function cannot smuggle an upward dependency past the test.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest floor first. Packages on one floor may import each other only on the
# ground floor; `cli` and `dashboard` share the top floor and never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mer_core", "mer_core.errors", "mer_core.paths", "mer_core.config", "mer_core.parallel", "mer_core.keyvalue"),
    ("mer_core.store",),
    ("mer_core.datasets",),
    ("mer_core.preprocess",),
    ("mer_core.models",),
    ("mer_core.evaluation",),
    ("mer_core.training",),
    ("mer_core.explain",),
    ("mer_core.spotting",),
    ("mer_core.benchmarking",),
    ("mer_core.jobs",),
    ("mer_core.cli", "dashboard"),
)
FORBIDDEN_IN_LIBRARY = ("streamlit",)


def _package(module: str) -> str | None:
    """The LAYERS entry a dotted module name belongs to (longest prefix wins)."""
    best = None
    for floor in LAYERS:
        for pkg in floor:
            if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best)):
                best = pkg
    return best


def _floor(pkg: str) -> int:
    return next(i for i, floor in enumerate(LAYERS) if pkg in floor)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from mer_core import store` imports the subpackage, not the root
            names = [f"{target}.{a.name}" for a in node.names] if target in ("mer_core",) else [target]
            found.extend((node.lineno, name) for name in names)
    return found


def violations(root: Path, top_packages: tuple[str, ...] = ("mer_core", "dashboard")) -> list[str]:
    """Every upward or sideways import under ``root`` as 'file:line: a -> b (why)'."""
    out: list[str] = []
    for top in top_packages:
        for path in sorted((root / top).rglob("*.py")):
            module = _module_name(path, root)
            src = _package(module)
            if src is None:
                out.append(f"{path.relative_to(root)}: module {module} is on no floor of LAYERS")
                continue
            for line, target in _imports(path, module):
                where = f"{path.relative_to(root)}:{line}: {module} -> {target}"
                if src != "dashboard" and target.split(".")[0] in FORBIDDEN_IN_LIBRARY:
                    out.append(f"{where} (the library never imports {target.split('.')[0]})")
                    continue
                dst = _package(target)
                if dst is None or dst == src:
                    continue
                a, b = _floor(src), _floor(dst)
                if b > a:
                    out.append(f"{where} (up from floor {a} {src} to floor {b} {dst})")
                elif b == a and a != 0:
                    out.append(f"{where} (across floor {a}: {src} and {dst} must not import each other)")
    return out


def test_no_import_goes_up_or_across() -> None:
    bad = violations(ROOT)
    assert not bad, "imports against the layer order in tests/test_layers.py:\n" + "\n".join(bad)


def test_every_package_is_on_a_floor() -> None:
    packages = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
                for p in (ROOT / "mer_core").glob("*/__init__.py")}
    assert packages, "no packages found under mer_core"
    for pkg in sorted(packages):
        assert _package(pkg) == pkg, f"package {pkg} is missing from LAYERS"


def _fake_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in ("mer_core", "dashboard"):
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    "rel, text, expected",
    [
        ("mer_core/store/db.py", "from mer_core.training.engine import run\n", "up from floor 1"),
        ("mer_core/store/db.py", "def f():\n    from ..jobs import queue\n", "up from floor 1"),
        ("mer_core/training/engine.py", "import mer_core.cli.cmd_loso\n", "up from floor 6"),
        ("mer_core/models/m.py", "from mer_core import evaluation\n", "up from floor 4"),
        ("dashboard/views/x.py", "from mer_core.cli.cmd_loso import parse\n", "across floor 11"),
        ("mer_core/explain/x.py", "import streamlit as st\n", "never imports streamlit"),
    ],
)
def test_checker_catches_one_bad_import(tmp_path: Path, rel: str, text: str, expected: str) -> None:
    root = _fake_tree(tmp_path, {rel: text})
    bad = violations(root)
    assert len(bad) == 1 and expected in bad[0], bad


def test_checker_allows_downward_and_ground_floor_imports(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path, {
        "mer_core/jobs/queue.py": "from mer_core.training import engine\nfrom mer_core.store.db import RunStore\n",
        "mer_core/config.py": "from mer_core.errors import MerError\nfrom mer_core import keyvalue\n",
        "mer_core/store/db.py": "from . import folders\nfrom mer_core import __version__\n",
        "dashboard/views/run.py": "from dashboard import reads\nimport streamlit\nfrom mer_core.jobs import queue\n",
    })
    assert violations(root) == []
