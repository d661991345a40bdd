"""Overview: what MER Bench is, where things are, what to do first."""
from __future__ import annotations

import streamlit as st

from dashboard import data


def render() -> None:
    st.title("MER Bench")
    st.markdown(
        "Benchmark **micro-expression recognition** methods under one honest protocol. "
        "Micro-expressions last under half a second and move the face by a pixel or two; "
        "published numbers are hard to compare because evaluation code differs from paper to paper. "
        "Here every method is trained **leave-one-subject-out**, scored on predictions **pooled over all folds** "
        "(UF1 and UAR, the MEGC2019 convention), and **never** tuned on the held-out subject."
    )
    runs = data.runs_table()
    jobs = data.jobs_table()
    active = int(jobs["status"].isin(["queued", "running", "cancelling"]).sum()) if len(jobs) else 0
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("stored runs", len(runs))
    c2.metric("finished", int((runs["status"] == "done").sum()) if len(runs) else 0)
    c3.metric("jobs queued or running", active)
    best = runs.loc[runs["status"] == "done", "uf1"].max() if len(runs) else None
    c4.metric("best pooled UF1", "–" if best is None or best != best else f"{best:.3f}")
    st.subheader("Where to go")
    from dashboard.nav import PAGES, page

    for _mod, title, url, icon, section in PAGES:
        if url != "overview":
            st.page_link(page(url), label=f"{section} · {title}", icon=icon)
    st.caption("Command line: `mer loso --dataset synthetic --model baseline`, `mer runs`, `mer --help`.")
