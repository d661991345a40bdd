"""Every page that shows a glossary term explains it with the one shared definition (dashboard/glossary.py).

Each page is rendered with AppTest from stored fixtures; the definitions must be
in the page's own elements (a metric's or widget's ``help``, a table column's
tooltip), not merely somewhere in the code.
"""
from __future__ import annotations

import pytest

from apptest_helpers import page_app
from dashboard import glossary
from fixtures_clips import make_clip_manifest
from test_jobs_page import launched, store_job  # noqa: F401  (the fixture stops real worker launches)
from test_results_pages import store_fixture_run


def page_text(at) -> str:
    """Everything the page sent to the browser, as protobuf text (help strings and column configs included)."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def assert_defined(at, *terms: str) -> None:
    assert not at.exception, at.exception
    text = page_text(at)
    missing = [t for t in terms if glossary.define(t)[:40] not in text]
    assert not missing, f"no tooltip with the glossary definition of {missing}"


@pytest.fixture
def two_runs():
    store_fixture_run("gl-a", accuracy=0.7, seed=1)
    store_fixture_run("gl-b", accuracy=0.6, seed=2)
    return "gl-a", "gl-b"


def test_results_pages_define_their_metrics(two_runs):
    a, b = two_runs
    assert_defined(page_app("run", run=a), "UF1", "UAR", "LOSO")
    assert_defined(page_app("compare", runs=f"{a},{b}"), "UF1", "UAR")
    assert_defined(page_app("runs"), "UF1", "UAR")
    assert_defined(page_app("leaderboard"), "UF1", "UAR", "LOSO")


def test_jobs_and_new_experiment_define_loso_and_flow():
    job = store_job("done", folds_done=3)
    assert_defined(page_app("jobs", job=job), "LOSO", "fold")
    assert_defined(page_app("new_experiment"), "LOSO", "optical flow")


def test_datasets_motion_tab_defines_flow_strain_and_evm(tmp_path, monkeypatch):
    path = make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=2, size=32, frames=6)
    monkeypatch.setenv("MER_ROOT_MANIFEST", str(path.parent))
    assert_defined(page_app("datasets", dataset="manifest", tab="Motion & magnification"),
                   "optical flow", "strain", "EVM")
    assert_defined(page_app("datasets", dataset="manifest"), "LOSO")


def test_side_coded_action_units_are_kept_with_their_side():
    from dashboard.glossary import SIDES, parse_action_units

    # the synthetic manifests write unilateral units FACS-style (R15 = right lip corner depressor only)
    assert parse_action_units("AU4+R15+AU17") == [(4, ""), (15, "R"), (17, "")]
    assert parse_action_units("L12") == [(12, "L")]
    assert parse_action_units("AU1+AU2+AU26") == [(1, ""), (2, ""), (26, "")]
    assert parse_action_units("") == [] and "right" in SIDES["R"] and "left" in SIDES["L"]
