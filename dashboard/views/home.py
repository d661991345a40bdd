"""Overview: what MER Bench is, where things are, what to do first."""
from __future__ import annotations

import streamlit as st

from dashboard import reads


# One line per page: what a newcomer finds there.
GUIDE = {
    "datasets": "See what a micro-expression is: play clips, the onset-apex difference, optical flow, "
                "magnification, and (synthetic data) the regions that really moved.",
    "runs": "Every stored evaluation, newest first, with pooled UF1/UAR.",
    "run": "One run in depth: intervals, confusion matrix, per-subject scores, curves, predictions.",
    "compare": "Two or more runs on the same data, with a paired test over subjects.",
    "leaderboard": "Published MEGC2019 figures beside what the honest protocol measures here.",
    "explain": "Where a model looked for one clip, and whether that was the real motion.",
    "new": "Choose dataset, model and hyperparameters; the job trains in the background.",
    "jobs": "Watch training live, cancel or resume; jobs survive reloads and restarts.",
}


def render() -> None:
    st.title("MER Bench")
    st.markdown(
        "Benchmark **micro-expression recognition** methods under one honest protocol. "
        "Micro-expressions last under half a second and move the face by a pixel or two; "
        "published numbers are hard to compare because evaluation code differs from paper to paper. "
        "Here every method is trained **leave-one-subject-out**, scored on predictions **pooled over all folds** "
        "(UF1 and UAR, the MEGC2019 convention), and **never** tuned on the held-out subject."
    )
    runs = reads.runs_table()
    jobs = reads.jobs_table()
    active = int(jobs["status"].isin(["queued", "running", "cancelling"]).sum()) if len(jobs) else 0
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("stored runs", len(runs))
    c2.metric("finished", int((runs["status"] == "done").sum()) if len(runs) else 0)
    c3.metric("jobs queued or running", active)
    best = runs.loc[runs["status"] == "done", "uf1"].max() if len(runs) else None
    c4.metric("best pooled UF1", "–" if best is None or best != best else f"{best:.3f}")
    st.subheader("Where to go")
    from dashboard.nav import PAGES, page

    cols = st.columns(2)
    shown = [(title, url, icon) for _mod, title, url, icon, _section in PAGES if url != "overview"]
    for i, (title, url, icon) in enumerate(shown):
        with cols[i % 2]:
            st.page_link(page(url), label=title, icon=icon)
            st.caption(GUIDE.get(url, ""))
    st.caption("Command line: `mer loso --dataset synthetic --model baseline`, `mer runs`, `mer --help`.")
