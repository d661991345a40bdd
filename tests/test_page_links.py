"""Links between the dashboard's pages open in the same tab, with their query parameters.

Streamlit opens a ``LinkColumn`` cell or a Markdown link in a new browser tab, so the
views use ``widgets.link_table`` (a clicked id cell switches page with ``st.switch_page``)
and ``widgets.page_link`` (``st.page_link``). Here the whole app runs under
``st.navigation`` (AppTest), a cell of a table is selected the way a click selects it,
and the rerun must show the linked page with the linked id in the address.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from test_results_pages import store_fixture_run

VIEWS = Path(__file__).resolve().parent.parent / "dashboard" / "views"


def _app(start: str, query: dict) -> None:
    """The dashboard's navigation, opened on the page ``start`` (with ``query``) on the first run."""
    import streamlit as st

    from dashboard.nav import page, pages

    nav = st.navigation(pages())
    if not st.session_state.get("_opened"):
        st.session_state["_opened"] = True
        st.switch_page(page(start), query_params=query)
    nav.run()


def open_page(start: str, **query) -> AppTest:
    return AppTest.from_function(_app, default_timeout=60, args=(start, query)).run()


def _qp(at, key):
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def click_cell(at: AppTest, table_key: str, row: int, column: str) -> AppTest:
    """Select one cell of the link table ``table_key``, as a click in the browser does, and rerun."""
    turns = at.session_state["_link_table_turns"] if "_link_table_turns" in at.session_state else {}
    key = f"{table_key}#{turns.get(table_key, 0)}"  # widgets.link_key: the table's key moves on after a click
    at.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[row, column]]}}
    return at.run()


def test_clicking_a_run_id_on_runs_opens_the_run_page_in_place():
    store_fixture_run("run-older", seed=1)
    rid = store_fixture_run("run-linked", seed=2)
    at = open_page("runs")
    assert not at.exception, at.exception
    assert at.title[0].value == "Runs"
    (table,) = [d.value for d in at.dataframe if "run" in d.value.columns]
    assert rid in table["run"].tolist()  # the cell shows the id itself, not a URL
    at = click_cell(at, "runs-table", table["run"].tolist().index(rid), "run")
    assert not at.exception, at.exception
    assert at.title[0].value == "Run"
    assert _qp(at, "run") == rid
    assert any(rid in str(s.value) for s in at.selectbox)  # the Run page shows the linked run
    at.run()  # a rerun stays put: the table's old selection does not navigate again
    assert at.title[0].value == "Run" and _qp(at, "run") == rid


def test_clicking_another_column_or_ticking_rows_does_not_navigate():
    store_fixture_run("run-a", seed=1)
    store_fixture_run("run-b", seed=2)
    at = open_page("runs")
    at = click_cell(at, "runs-table", 0, "model")
    assert at.title[0].value == "Runs" and not at.exception
    at.session_state["runs-table#0"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    assert at.title[0].value == "Runs"
    links = [(e.proto.page, e.proto.query_string) for e in at.get("page_link")]
    assert any(page == "compare" and "runs=" in qs for page, qs in links), links


def test_an_explain_cell_on_the_run_page_opens_that_clip_on_explain():
    rid = store_fixture_run("run-x", seed=3)
    at = open_page("run", run=rid)
    assert not at.exception, at.exception
    assert at.title[0].value == "Run"
    (preds,) = [d.value for d in at.dataframe if "explain" in d.value.columns and len(d.value) == 36]
    assert set(preds["explain"]) == {"open →"}
    sample = preds["sample_id"].iloc[2]
    at = click_cell(at, "run-predictions", 2, "explain")
    assert at.title[0].value == "Explain"
    assert _qp(at, "run") == rid and _qp(at, "sample") == sample


@pytest.mark.parametrize("module", sorted(p.name for p in VIEWS.glob("*.py")))
def test_no_view_links_to_a_page_in_a_new_tab(module):
    """LinkColumn cells and Markdown links open a new tab: the views link through widgets instead."""
    import re

    text = (VIEWS / module).read_text(encoding="utf-8")
    assert "LinkColumn" not in text
    assert not re.search(r"\]\((?!https?:)[a-z-]+(\?|\))", text), "a Markdown link to a page of the dashboard"
