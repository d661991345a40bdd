"""The dashboard's pages, in sidebar order, built once per script run.

Each page module has one ``render()``. Pages link to each other through
:func:`page` (by url path) so a link carries its query parameters.
"""
from __future__ import annotations

import streamlit as st

from dashboard.views import datasets, home, lesson, run, runs
from dashboard.views import jobs, new_experiment
from dashboard.views import compare, leaderboard
from dashboard.views import explain
from dashboard.views import analyse
from dashboard.views import new_study, study
from dashboard.views import benchmarks
from dashboard.views import spotting

# (module, title, url path, icon, section). The experiment workflow comes second, so it is among the first ten
# links Streamlit shows before a "View more" button, whatever the navigation's expanded setting.
PAGES = [
    (home, "Overview", "overview", ":material/home:", "MER Bench"),
    (lesson, "Lesson", "lesson", ":material/school:", "MER Bench"),
    (datasets, "Datasets", "datasets", ":material/face:", "MER Bench"),
    (new_experiment, "New experiment", "new", ":material/add_circle:", "Experiments"),
    (jobs, "Jobs", "jobs", ":material/work:", "Experiments"),
    (new_study, "New study", "new-study", ":material/library_add:", "Experiments"),
    (study, "Study", "study", ":material/science:", "Experiments"),
    (runs, "Runs", "runs", ":material/list:", "Results"),
    (run, "Run", "run", ":material/analytics:", "Results"),
    (compare, "Compare", "compare", ":material/compare_arrows:", "Results"),
    (leaderboard, "Leaderboard", "leaderboard", ":material/leaderboard:", "Results"),
    (explain, "Explain", "explain", ":material/visibility:", "Results"),
    (analyse, "Analyse a clip", "analyse", ":material/movie:", "Results"),
    (spotting, "Spotting", "spotting", ":material/timeline:", "Results"),
    (benchmarks, "Benchmarks", "benchmarks", ":material/speed:", "Results"),
]


_OBJECTS: dict[str, st.Page] = {}


def _page_objects() -> dict[str, st.Page]:
    if not _OBJECTS:
        for i, (mod, title, url, icon, _section) in enumerate(PAGES):
            _OBJECTS[url] = st.Page(mod.render, title=title, url_path=url if i else "home", icon=icon,
                                    default=(i == 0))
    return _OBJECTS


# The first page is served at "/" (Streamlit ignores a default page's url path), so a shared
# ``/overview`` link would meet "Page not found": an alias page serves it, hidden from the sidebar.
ALIAS_CSS = "<style>[data-testid='stSidebarNav'] a[href$='/{url}']{{display:none}}</style>"


def _alias() -> st.Page:
    if "_alias" not in _ALIAS:
        mod, title, url, icon, _section = PAGES[0]
        _ALIAS["_alias"] = st.Page(mod.render, title=title, url_path=url, icon=icon)
    return _ALIAS["_alias"]


_ALIAS: dict[str, st.Page] = {}


def pages() -> dict[str, list[st.Page]]:
    objects = _page_objects()
    grouped: dict[str, list[st.Page]] = {}
    for _mod, _title, url, _icon, section in PAGES:
        grouped.setdefault(section, []).append(objects[url])
    grouped[PAGES[0][4]].append(_alias())
    st.html(ALIAS_CSS.format(url=PAGES[0][2]))
    return grouped


def page(url_path: str) -> st.Page:
    return _page_objects()[url_path]
