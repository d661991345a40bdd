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


def test_no_raw_internals_in_options():
    """Class sets in words, options in lower case, no ALL-CAPS 'ACCURACY'."""
    from apptest_helpers import page_app
    from mer_core.datasets.classes import class_set_words

    assert class_set_words("composite3") == "3 classes: negative, positive, surprise (the MEGC2019 composite's)"
    assert class_set_words("native") == "the dataset's own labels"
    at = page_app("new_experiment")
    assert not at.exception, at.exception
    options = at.selectbox(key="ne_class_set_synthetic").options
    assert "composite3" not in options and any(o.startswith("3 classes: negative") for o in options)
    at = page_app("analyse")
    assert all(o == o.lower() for r in at.radio for o in r.options)
