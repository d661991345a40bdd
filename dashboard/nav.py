"""The dashboard's pages, in sidebar order, and the links between them.

Each page is a view module, ``dashboard/views/<view>.py``, with one ``render()``. The table below names
it by module, as Streamlit's file-based pages name a file, and the module is imported when its page
first runs. So this module imports no view, and every view can link to any other page through
:func:`page` (by url path), a link carrying its query parameters.
"""
from __future__ import annotations

import importlib
from typing import Callable, NamedTuple

import streamlit as st


class Entry(NamedTuple):
    view: str  # the module under dashboard.views that renders the page
    title: str
    url: str
    icon: str
    section: str


# The experiment workflow comes second, so it is among the first ten links Streamlit shows before a
# "View more" button, whatever the navigation's expanded setting.
PAGES = [
    Entry("home", "Overview", "overview", ":material/home:", "MER Bench"),
    Entry("lesson", "Lesson", "lesson", ":material/school:", "MER Bench"),
    Entry("datasets", "Datasets", "datasets", ":material/face:", "MER Bench"),
    Entry("new_experiment", "New experiment", "new", ":material/add_circle:", "Experiments"),
    Entry("jobs", "Jobs", "jobs", ":material/work:", "Experiments"),
    Entry("new_study", "New study", "new-study", ":material/library_add:", "Experiments"),
    Entry("study", "Study", "study", ":material/science:", "Experiments"),
    Entry("runs", "Runs", "runs", ":material/list:", "Results"),
    Entry("run", "Run", "run", ":material/analytics:", "Results"),
    Entry("compare", "Compare", "compare", ":material/compare_arrows:", "Results"),
    Entry("leaderboard", "Leaderboard", "leaderboard", ":material/leaderboard:", "Results"),
    Entry("explain", "Explain", "explain", ":material/visibility:", "Results"),
    Entry("analyse", "Analyse a clip", "analyse", ":material/movie:", "Results"),
    Entry("spotting", "Spotting", "spotting", ":material/timeline:", "Results"),
    Entry("benchmarks", "Benchmarks", "benchmarks", ":material/speed:", "Results"),
]


def view_renderer(view: str) -> Callable[[], None]:
    """The ``render()`` of the view module ``dashboard.views.<view>``, imported when the page runs."""
    def render() -> None:
        importlib.import_module(f"dashboard.views.{view}").render()

    render.__name__ = view
    return render


_OBJECTS: dict[str, st.Page] = {}


def _page_objects() -> dict[str, st.Page]:
    if not _OBJECTS:
        for i, entry in enumerate(PAGES):
            _OBJECTS[entry.url] = st.Page(view_renderer(entry.view), title=entry.title,
                                          url_path=entry.url if i else "home", icon=entry.icon, default=(i == 0))
    return _OBJECTS


# The first page is served at "/" (Streamlit ignores a default page's url path), so a shared
# ``/overview`` link would meet "Page not found": an alias page serves it, hidden from the sidebar.
ALIAS_CSS = "<style>[data-testid='stSidebarNav'] a[href$='/{url}']{{display:none}}</style>"
_ALIAS: dict[str, st.Page] = {}


def _alias() -> st.Page:
    if "_alias" not in _ALIAS:
        first = PAGES[0]
        _ALIAS["_alias"] = st.Page(view_renderer(first.view), title=first.title, url_path=first.url, icon=first.icon)
    return _ALIAS["_alias"]


def pages() -> dict[str, list[st.Page]]:
    objects = _page_objects()
    grouped: dict[str, list[st.Page]] = {}
    for entry in PAGES:
        grouped.setdefault(entry.section, []).append(objects[entry.url])
    grouped[PAGES[0].section].append(_alias())
    st.html(ALIAS_CSS.format(url=PAGES[0].url))
    return grouped


def page(url_path: str) -> st.Page:
    return _page_objects()[url_path]
