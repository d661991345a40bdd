"""Size and import shape of the code: lines, modules, function-level imports, import circles.

    .venv/bin/python benchmarks/code_stats.py [--list-lazy] [--packages mer_core dashboard benchmarks] [--since REV]

Counts, over the Python files of the given folders (tests excluded):

- lines: physical lines, as ``wc -l`` counts them;
- modules: ``.py`` files;
- function-level imports: ``import`` statements inside a function body
  (``--list-lazy`` lists them with their line), and how many of them state no
  reason: the project's rule (docs/design.md, "Imports") is a ``# lazy:``
  comment on the import's line or the line above it;
- import circles: strongly connected groups of modules in the import graph,
  once with module-level imports only (what runs at import time) and once with
  function-level imports as well (the real dependency graph). An edge goes to
  the submodule a ``from pkg import name`` names when that is a module, else to
  the package; imports outside the given folders are ignored;
- with ``--since REV``: how the code that existed at the commit REV has fared
  (committed code only, git's rename detection): its lines then, the lines its
  paths hold now (a renamed file counted under its new name), the files
  deleted since, and the files added since, each with its lines, largest
  first, so that new features and code moved out of old files can be told
  apart by name.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> list[tuple[int, str, bool, list[str]]]:
    """(line, target module, inside a function, imported names) of every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[int, str, bool, list[str]]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_func, []) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((child.lineno, target, in_func, [a.name for a in child.names]))
            visit(child, inner)

    visit(tree, False)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, each sorted, in name order."""
    names = sorted(graph.keys() | set().union(*graph.values()))
    pos = {name: i for i, name in enumerate(names)}
    edges = [(pos[a], pos[b]) for a, targets in graph.items() for b in targets]
    rows, cols = zip(*edges) if edges else ((), ())
    _, labels = connected_components(coo_matrix(([1] * len(edges), (rows, cols)), shape=(len(names),) * 2),
                                     directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for name, label in zip(names, labels):
        groups.setdefault(label, []).append(name)
    return sorted(group for group in groups.values() if len(group) > 1)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def _lines_at(rev: str, path: str) -> int:
    return len(_git("show", f"{rev}:{path}").splitlines())


def since(rev: str, packages: list[str]) -> None:
    """Print what became of the Python code (tests excluded) that existed at ``rev``, against HEAD."""
    def counted(path: str) -> bool:
        return path.endswith(".py") and "tests" not in Path(path).parts

    then = [p for p in _git("ls-tree", "-r", "--name-only", rev, "--", *packages).splitlines() if counted(p)]
    renamed: dict[str, str] = {}
    deleted: list[str] = []
    added: list[str] = []
    for row in _git("diff", "-M", "--name-status", rev, "HEAD", "--", *packages).splitlines():
        status, *paths = row.split("\t")
        if not counted(paths[-1]) and not counted(paths[0]):
            continue
        if status.startswith("R"):
            renamed[paths[0]] = paths[1]
        elif status == "D":
            deleted.append(paths[0])
        elif status == "A":
            added.append(paths[0])
    before = sum(_lines_at(rev, p) for p in then)
    now = sum(_lines_at("HEAD", renamed.get(p, p)) for p in then if p not in deleted)
    print(f"since {rev}: its {len(then)} files held {before} lines; their paths (renames followed) hold {now} "
          f"now ({now - before:+d}); {len(deleted)} deleted ({sum(_lines_at(rev, p) for p in deleted)} lines then)")
    sizes = sorted(((_lines_at("HEAD", p), p) for p in added), reverse=True)
    print(f"added since {rev}: {len(added)} files, {sum(n for n, _ in sizes)} lines")
    for n, p in sizes:
        print(f"  {n:5d} {p}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", nargs="+", default=["mer_core", "dashboard", "benchmarks"])
    ap.add_argument("--list-lazy", action="store_true", help="list every function-level import")
    ap.add_argument("--since", metavar="REV", help="also show what became of the code that existed at commit REV")
    args = ap.parse_args(argv)
    files = sorted(p for pkg in args.packages for p in (ROOT / pkg).rglob("*.py")
                   if "__pycache__" not in p.parts and "tests" not in p.relative_to(ROOT).parts)
    modules = {module_name(p): p for p in files}
    lines = {pkg: 0 for pkg in args.packages}
    lazy: list[str] = []
    lazy_by_pkg = {pkg: 0 for pkg in args.packages}
    unsaid_by_pkg = {pkg: 0 for pkg in args.packages}
    top_level: dict[str, set[str]] = {m: set() for m in modules}
    full: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        pkg = path.relative_to(ROOT).parts[0]
        text = path.read_text(encoding="utf-8").splitlines()
        lines[pkg] += len(text)
        for line, target, in_func, names in imports(path, mod):
            if in_func:
                said = any("# lazy:" in text[k] for k in (line - 1, line - 2) if 0 <= k < len(text))
                lazy.append(f"{path.relative_to(ROOT)}:{line}: {target}" + ("" if said else "  (no reason stated)"))
                lazy_by_pkg[pkg] += 1
                unsaid_by_pkg[pkg] += not said
            targets = [f"{target}.{n}" if f"{target}.{n}" in modules else target for n in names] or [target]
            for t in targets:
                while t and t not in modules:  # `import a.b.c` of a name inside a module: its module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    full[mod].add(t)
                    if not in_func:
                        top_level[mod].add(t)
    for pkg in args.packages:
        n = sum(1 for p in files if p.relative_to(ROOT).parts[0] == pkg)
        print(f"{pkg}: {lines[pkg]} lines, {n} modules, {lazy_by_pkg[pkg]} function-level imports "
              f"({unsaid_by_pkg[pkg]} without a stated reason)")
    print(f"total: {sum(lines.values())} lines, {len(files)} modules, {len(lazy)} function-level imports")
    for label, graph in (("module-level", top_level), ("with function-level", full)):
        found = circles(graph)
        print(f"import circles ({label} imports): {len(found)}")
        for group in found:
            print("  " + " <-> ".join(group))
    if args.list_lazy:
        print("\n".join(lazy))
    if args.since:
        since(args.since, args.packages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
