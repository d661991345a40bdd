"""Overview: what MER Bench is, where things are, what to do first."""
from __future__ import annotations

import json

import streamlit as st

from dashboard import glossary, plots_clip, reads, widgets
from dashboard.nav import PAGES
from dashboard.views.lesson import DATASET, LESSON_EVM
from dashboard.widgets import plain
from mer_core.datasets.synthetic import showcase_clips
from mer_core.errors import MerError


# One line per page: what a newcomer finds there.
GUIDE = {
    "lesson": "A micro-expression explained in eight pictures: timing, magnification, flow, action units, "
              "what a model sees and where it looked.",
    "datasets": "See what a micro-expression is: play clips, the onset-apex difference, optical flow, "
                "magnification, and (synthetic data) the regions that really moved.",
    "runs": "Every stored evaluation, newest first, with pooled UF1/UAR.",
    "run": "One run in depth: intervals, confusion matrix, per-subject scores, curves, predictions.",
    "compare": "Two or more runs on the same data, with a paired test over subjects.",
    "leaderboard": "Published MEGC2019 figures beside what the honest protocol measures here.",
    "explain": "Where a model looked for one clip, and whether that was the real motion.",
    "new": "Choose dataset, model and hyperparameters; the job trains in the background.",
    "jobs": "Watch training live, cancel or resume; jobs survive reloads and restarts.",
    "new-study": "Several models (arms) x several seeds on one dataset, queued as ordinary jobs.",
    "study": "Which arm is better, by how much, and how sure we can be.",
    "analyse": "Upload a video (or pick an exported synthetic clip): spot, predict, explain, with warnings.",
    "spotting": "Where in a long recording is there an expression? A spotting run, scored and shown per video.",
    "benchmarks": "How fast MER Bench trains, preprocesses and draws its pages on this kind of machine.",
}


def guide_line(url: str) -> str:
    """What a newcomer finds on the page at ``url``."""
    return GUIDE[url]


def render() -> None:
    st.title("MER Bench")
    st.markdown(
        "Benchmark **micro-expression recognition** methods under one honest protocol. "
        "Micro-expressions last under half a second and move the face by a pixel or two; "
        "published numbers are hard to compare because evaluation code differs from paper to paper. "
        "Here every method is trained **leave-one-subject-out**, scored on predictions **pooled over all folds** "
        "(UF1 and UAR, the MEGC2019 convention), and **never** tuned on the held-out subject."
    )
    _showcase()
    runs = reads.runs_table()
    jobs = reads.jobs_table()
    active = int(jobs["status"].isin(["queued", "running", "cancelling"]).sum()) if len(jobs) else 0
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("stored runs", len(runs))
    c2.metric("finished", int((runs["status"] == "done").sum()) if len(runs) else 0)
    c3.metric("jobs queued or running", active)
    best = runs.loc[runs["status"] == "done", "uf1"].max() if len(runs) else None
    c4.metric("best pooled UF1", "–" if best is None or best != best else f"{best:.3f}", help=glossary.tip("UF1"))
    st.subheader("Where to go")
    cols = st.columns(2)
    shown = [entry for entry in PAGES if entry.url != "overview"]
    for i, entry in enumerate(shown):
        with cols[i % 2]:
            widgets.page_link(entry.url, entry.title, icon=entry.icon)
            st.caption(guide_line(entry.url))
    st.caption("Command line: `mer run --dataset synthetic --model baseline`, `mer runs`, `mer --help`.")


def _showcase() -> None:
    """One animated, magnified synthetic smile: the showcase clip of the positive class."""
    show = showcase_clips()
    if "positive" not in show:
        return
    sid = f"{DATASET}/{show['positive']}"
    try:
        views = reads.sample_views(DATASET, "{}", sid, json.dumps(LESSON_EVM), 128)
    except (MerError, ValueError) as exc:
        st.caption(plain(f"(the showcase clip cannot be drawn: {exc})"))
        return
    if views.get("magnified_clip") is None:
        return
    left, right = st.columns([1, 1.4])
    with left:
        clip = views["magnified_clip"]
        first = views.get("clip_first") or 0  # frames numbered as in the file (widgets.FRAME_NUMBERS)
        widgets.chart(plots_clip.clip_animation(clip, first, first + (views["apex_index"] or 0), first + len(clip) - 1,
                                           first=first, frame_ms=150,
                                           title="a synthetic smile, magnified ×10"), key="home-showcase")
        st.caption(widgets.FRAME_NUMBERS)
    with right:
        st.markdown("Press ▶: this is a **micro-expression** (AU6 + AU12, a smile) magnified ten times with "
                    "Eulerian video magnification. Unmagnified, the skin moves by about a pixel for a third of a "
                    "second, which is why recognising it is hard.", help=glossary.tip("micro-expression", "EVM"))
        widgets.page_link("lesson", "Walk through it step by step in the Lesson", icon=":material/school:")
