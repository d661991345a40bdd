"""The dashboard's shape: views lay out, reads/writes/widgets/palette do the rest.

Views (dashboard/views/*.py) reach the run store and the job queue only through
dashboard.reads and dashboard.writes; colours come from dashboard.palette; no
page copies the run picker. Imports are read with ``ast`` (function-level
imports included), as in tests/test_layers.py.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIEWS = sorted((ROOT / "dashboard" / "views").glob("*.py"))
FORBIDDEN_IN_VIEWS = ("mer_core.store", "mer_core.jobs")
MAX_FUNCTION_LINES = 80


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.name}:{line}: {name}" for line, name in _imported(tree)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_VIEWS)]


def test_views_are_found() -> None:
    assert {p.stem for p in VIEWS} >= {"run", "runs", "compare", "explain", "jobs", "datasets"}


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.name)
def test_views_do_not_touch_the_store_or_the_queue(path: Path) -> None:
    assert forbidden_imports(path) == [], "views call dashboard.reads / dashboard.writes instead"


@pytest.mark.parametrize("source, bad", [
    ("from mer_core.store.db import RunStore\n", True),
    ("def f():\n    from mer_core.jobs import queue\n", True),
    ("import mer_core.jobs.queue as q\n", True),
    ("from mer_core import store\n", True),
    ("from dashboard import reads, writes\nfrom mer_core.evaluation.metrics import summarize\n", False),
])
def test_the_check_catches_a_direct_store_or_queue_import(tmp_path: Path, source: str, bad: bool) -> None:
    path = tmp_path / "view.py"
    path.write_text(source)
    assert bool(forbidden_imports(path)) is bad


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.name)
def test_no_view_defines_its_own_run_picker_or_colours(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"def _?pick_runs?\(", text), "use dashboard.widgets.pick_run / pick_runs"
    assert not re.search(r"#[0-9a-fA-F]{6}\b", text), "colours live in dashboard.palette"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("path", sorted((ROOT / "dashboard").rglob("*.py")), ids=lambda p: p.name)
def test_dashboard_functions_stay_small(path: Path) -> None:
    """Functions, not files: a file is split by topic (docs/design.md, "Files"), never to meet a line count."""
    assert _long_functions(path) == []


def test_every_figure_is_downloadable_in_the_chosen_format():
    """Each st.plotly_chart call in a view passes widgets.chart_config (PNG or SVG from the sidebar choice)."""
    bare = []
    for path in sorted((ROOT / "dashboard" / "views").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "plotly_chart":
                if not any(k.arg == "config" for k in node.keywords):
                    bare.append(f"{path.name}:{node.lineno}")
    assert not bare, f"figures without the download config: {bare}"
