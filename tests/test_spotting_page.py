"""The Spotting page, the Jobs page's link to it and the Analyse page's long-clip list, with AppTest.

One tiny spotting job (2 subjects, one 4 s video each at 20 fps, 48 px, faint micro-expressions; seconds) is run to done in the
test process, once for the module; every figure the page shows is compared with what the store holds.
"""
from __future__ import annotations


import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import page_app, unescape
from test_page_links import click_cell, open_page
from fixtures_clips import cache_at

TINY = dict(subjects=2, videos_per_subject=1, min_seconds=4, max_seconds=4, fps=20, size=48, max_micro=2,
            max_macro=1, amplitude=0.3)  # faint micro-expressions: the run surely misses one, whatever the spotter


@pytest.fixture(scope="module")
def spot_cache(tmp_path_factory):
    """A cache holding one finished spotting job (motion curve, synthetic-long at TINY) and its run."""
    from mer_core.jobs import queue
    from mer_core.jobs.spot_job import SpotRunner
    from mer_core.jobs.worker import run_job
    from mer_core.spotting.loso import SpotConfig
    from mer_core.store.db import RunStore

    root = tmp_path_factory.mktemp("spot_cache")
    with cache_at(root):
        with RunStore() as store:
            job_id = queue.submit_spotting(SpotConfig(dataset_options=TINY), store=store, start=False)
            assert run_job(job_id, store=store, kick_next=False, runner_cls=SpotRunner) == 0
            job = queue.get_job(store, job_id)
            run = store.get_spot_run(job["run_id"])
            folds = store.spot_folds(job["run_id"])
    return {"root": root, "job": job_id, "run": run, "folds": folds}


@pytest.fixture
def spot(spot_cache, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("MER_CACHE", str(spot_cache["root"]))
    st.cache_data.clear()
    return spot_cache


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "subheader", "title", "success")
             for e in getattr(at, kind)]
    return unescape("\n".join(str(p) for p in parts))


def test_the_page_states_the_runs_scores_data_and_per_subject_table(spot):
    run, summary = spot["run"], spot["run"]["summary"]
    at = page_app("spotting", spot=run["id"])
    assert not at.exception, at.exception
    text = _texts(at)
    assert "IoU ≥ 0.5" in text and "training subjects' videos only" in text  # the newcomer's words
    assert "synthetic long videos, generated faces rather than people" in text  # which data, and that it is synthetic
    shown = {m.label: m.value for m in at.metric}
    for kind, label in (("overall", "F1, all types"), ("micro", "F1, micro"), ("macro", "F1, macro")):
        f1 = summary["scores"][kind]["f1"]
        assert shown[label] == ("–" if f1 is None else f"{f1:.3f}")
    scores = next(d.value for d in at.dataframe if "chance F1" in d.value.columns)
    overall = scores.iloc[0]
    assert (overall["hits"], overall["misses"], overall["false alarms"]) == tuple(
        summary["scores"]["overall"][k] for k in ("tp", "fn", "fp"))
    assert 0 <= float(overall["chance F1"]) <= 1
    subjects = next(d.value for d in at.dataframe if "subject" in d.value.columns)
    expected = sorted(r["subject"] for r in summary["per_subject"] if r["type"] == "overall")
    assert sorted(subjects["subject"]) == expected


def test_a_video_shows_its_folds_threshold_and_plays_a_missed_interval(spot):
    run, folds = spot["run"], spot["folds"]
    at = page_app("spotting", spot=run["id"])
    video = at.selectbox(key=f"sp_video_{run['id']}").value
    fold = next(f for f in folds.itertuples() if video in f.test_videos)
    threshold = fold.params["micro"]["threshold"]
    assert f"micro {threshold:.3g} (peaks at least" in _texts(at)  # the threshold the fold chose, stated
    timeline = at.get("plotly_chart")[0].proto.spec
    assert f"threshold {threshold:.3g}" in timeline  # and drawn on the curve
    play = at.selectbox(key=f"sp_play_{run['id']}_{video}")
    missed = [o for o in play.options if o.startswith("miss")]
    assert missed, play.options  # the page opens on a video with a miss (the tiny run misses one)
    ids = [f"{s}{i}" for s in "tp" for i in range(len(play.options))]  # interval ids: source letter + row
    chosen = next(i for i in ids if _formats(play, i) == missed[0])
    at = play.set_value(chosen).run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "A miss: no spotted interval of its type reached IoU 0.5" in text
    onset, offset = (int(x) for x in missed[0].split("frames ")[1].split(" ")[0].split("-"))
    first, last = (int(x) for x in text.split("The player shows frames ")[1].split(":")[0].split("-"))
    assert first <= onset <= offset <= last  # the whole interval, with a few frames around it
    players = [c for c in at.get("plotly_chart") if '"frames"' in c.proto.spec]
    assert len(players) == 1 and players[0].proto.spec.count('"name"') >= last - first + 1


def _formats(select, value: str) -> str | None:
    try:
        return select.format_func(value)
    except KeyError:
        return None


def test_an_unknown_spotting_run_is_named_and_the_address_kept(spot):
    at = page_app("spotting", spot="no-such-spot-run")
    assert not at.exception
    assert any("no-such-spot-run" in e.value for e in at.error)
    assert at.query_params["spot"] in ("no-such-spot-run", ["no-such-spot-run"])  # the address is kept


def test_a_spotting_jobs_results_open_on_the_spotting_page(spot):
    run_id = spot["run"]["id"]
    at = open_page("jobs", job=spot["job"])
    assert not at.exception, at.exception
    links = [(e.proto.page, e.proto.query_string) for e in at.get("page_link")]
    assert any(page.endswith("spotting") and qs == f"spot={run_id}" for page, qs in links), links
    assert "no training curves" in _texts(at)
    (table,) = [d.value for d in at.dataframe if "run" in d.value.columns]
    at = click_cell(at, "jobs-table", table["run"].tolist().index(run_id), "run")
    assert not at.exception, at.exception
    assert at.title[0].value == "Spotting"
    assert at.query_params["spot"] in ([run_id], run_id)


def test_a_long_clip_lists_every_interval_the_spotter_finds(spot):
    from mer_core.spotting.apply import spot_video

    video = spot["run"]["videos"][0]

    def script(path: str, cropped: bool) -> None:
        from dashboard.views import spotting_clip

        spotting_clip.long_clip_section(path, cropped)

    at = AppTest.from_function(script, args=(video["path"], True), default_timeout=30).run()
    assert not at.exception, at.exception
    expected = spot_video(video["path"], run_id=spot["run"]["id"], cropped=True)["intervals"]
    table = next(d.value for d in at.dataframe if "onset (s)" in d.value.columns or "onset_s" in d.value.columns)
    assert table[["onset", "apex", "offset", "type"]].values.tolist() == \
        expected[["onset", "apex", "offset", "type"]].values.tolist()
    assert f"{len(expected)} interval(s) found in {video['n_frames']} frames" in _texts(at)


@pytest.mark.parametrize("options, words", [
    ("subjects=1", "subjects"),  # below the generator's 2 subjects: refused before queueing
    ("manifest=/etc/intervals.csv", "lies outside the folders this dashboard may read"),
])
def test_the_form_refuses_bad_options_before_queueing(options, words, monkeypatch):
    from mer_core.jobs import queue

    monkeypatch.setattr(queue, "_launch", lambda *a, **k: pytest.fail("nothing may start"))
    at = page_app("spotting")
    if "manifest" in options:
        at.selectbox(key="sp_dataset").set_value("long-manifest").run()
    at.text_area(key=f"sp_options_{at.selectbox(key='sp_dataset').value}").set_value(options).run()
    at.button(key="sp_submit").click().run()
    assert not at.exception, at.exception
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert not at.success  # no job queued
