"""The sidebar shows the experiment workflow without "View more": its pages are among the first ten links."""
from __future__ import annotations


def test_the_experiment_workflow_is_among_the_first_ten_links():
    from dashboard.nav import PAGES

    shown = [title for _m, title, _u, _i, _s in PAGES][:10]  # Streamlit's collapsed menu shows ten pages
    for title in ("New experiment", "Jobs", "New study", "Study"):
        assert title in shown, (title, shown)
    sections = list(dict.fromkeys(section for *_rest, section in PAGES))
    assert sections == ["MER Bench", "Experiments", "Results"]  # one block per section, in this order


def test_the_router_never_folds_pages_behind_view_more():
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parents[1] / "dashboard" / "app.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "navigation"]
    assert calls and all(any(k.arg == "expanded" and getattr(k.value, "value", None) is True for k in c.keywords)
                         for c in calls)
