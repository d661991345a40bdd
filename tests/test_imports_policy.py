"""Function-level imports state why they wait (docs/design.md, "Imports")."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def function_level_imports(path: Path) -> list[int]:
    """First lines of the ``import`` statements inside function bodies of ``path``."""
    found: list[int] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_func:
                found.append(child.lineno)
            visit(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def unexplained(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: import`` of each function-level import without ``# lazy:`` on its line or the line above."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{path.relative_to(root)}:{n}: {lines[n - 1].strip()}" for n in function_level_imports(path)
            if not any("# lazy:" in lines[k] for k in (n - 1, n - 2) if k >= 0)]


def test_every_function_level_import_in_the_library_and_dashboard_says_why_it_waits() -> None:
    files = sorted(p for pkg in ("mer_core", "dashboard") for p in (ROOT / pkg).rglob("*.py"))
    assert len(files) > 100
    bad = [line for path in files for line in unexplained(path)]
    assert not bad, "function-level imports without a '# lazy:' reason (docs/design.md, Imports):\n" + "\n".join(bad)


def test_the_check_finds_an_unexplained_import_and_accepts_a_stated_one(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\n\n\ndef a():\n    import json\n    return json\n\n\ndef b():\n"
                 "    # lazy: loads torch (about 2 s)\n    from torch import nn\n    return nn\n\n\n"
                 "def c():\n    import re  # lazy: an optional dependency\n    return re\n", encoding="utf-8")
    assert function_level_imports(f) == [5, 11, 16]
    assert unexplained(f, root=tmp_path) == ["m.py:5: import json"]
