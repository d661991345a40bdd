"""The sidebar shows the experiment workflow without "View more": its pages are among the first ten links."""
from __future__ import annotations


def test_the_experiment_workflow_is_among_the_first_ten_links():
    from dashboard.nav import PAGES

    shown = [title for _m, title, _u, _i, _s in PAGES][:10]  # Streamlit's collapsed menu shows ten pages
    for title in ("New experiment", "Jobs", "New study", "Study"):
        assert title in shown, (title, shown)
    sections = list(dict.fromkeys(section for *_rest, section in PAGES))
    assert sections == ["MER Bench", "Experiments", "Results"]  # one block per section, in this order
