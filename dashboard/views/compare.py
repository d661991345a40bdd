"""Compare: two or more runs on the same data, side by side, with a paired test over subjects.

The chosen runs live in the URL (``?runs=ID1,ID2``). Runs on different
datasets, protocols, class sets or dataset fingerprints are refused: their
scores measure different things. Differences are judged per subject (the unit
that varies under LOSO): the per-subject UF1 differences A - B on the clips
both runs tested, their mean tested with the paired sign-flip permutation test
a two-arm Study uses too (same statistic, same test, same p-value on the same
runs), a paired subject bootstrap CI of that mean, and one plain sentence.
"""
from __future__ import annotations

import string

import pandas as pd
import streamlit as st

from dashboard import glossary, plots, reads, study_plots, widgets
from dashboard.widgets import plain
from mer_core.errors import MerError
from mer_core.evaluation.context import chance_levels
from mer_core.evaluation.export import flat_params
from mer_core.evaluation.leaderboard import part_table
from mer_core.evaluation.statistics import compare_problems, disagreements, paired_subject_scores, verdict
from mer_core.explain.report import LABELS, MEASURES
from mer_core.training.experiment import preset_label, settings_that_differ

K_RUNS = "compare_runs"
K_A = "compare_a"
K_B = "compare_b"
K_MODEL = "compare_hp_model"
SKIP_PARAMS = {"seed", "device", "executor", "workers", "ray_address", "keep_checkpoints", "record_oracle",
               "dataset", "protocol", "model"}


def render() -> None:
    st.title("Compare runs")
    chosen = widgets.pick_runs("runs to compare (two or more, same dataset and protocol)", key=K_RUNS)
    if len(chosen) < 2:
        st.info("Pick at least two runs to compare (or open `compare?runs=ID1,ID2`).")
        return
    bundles = {}
    for rid in chosen:
        bundle, error = reads.try_run_bundle(rid)
        if bundle is None:
            st.error(plain(error))
            return
        bundles[rid] = bundle
    runs = [bundles[r]["run"] for r in chosen]
    problems = compare_problems(runs)
    if problems:
        st.error("These runs cannot be compared: " + plain(" · ".join(problems)) + ". Pick runs on the same dataset, "
                 "protocol and class set (and the same data version).", icon=":material/block:")
        return
    empty = [r["id"] for r in runs if bundles[r["id"]]["predictions"].empty]
    if empty:
        st.warning(plain(f"Run(s) {', '.join(empty)} have no finished fold yet; nothing to compare."))
        return
    letters = {rid: string.ascii_uppercase[i % 26] for i, rid in enumerate(chosen)}
    names = {rid: f"{letters[rid]}: {bundles[rid]['run']['model']}" for rid in chosen}
    st.caption(plain(f"{runs[0]['dataset']} · {runs[0]['protocol']} · classes {', '.join(runs[0]['classes'])} · ")
               + " · ".join(f"**{letters[r]}** = {plain(r)}" for r in chosen))
    headline_section(chosen, bundles, names)
    config_diff_section(chosen, bundles, names)
    curves_section(chosen, bundles, names)
    side_by_side_section(chosen, bundles, names)
    paired_section(chosen, bundles, names)
    explanations_section(chosen[0], chosen[1], names)
    hyperparameter_section(runs[0], [r["model"] for r in runs])


# --- explanations ----------------------------------------------------------------------------
def explanations_section(a: str, b: str, names: dict) -> None:
    """The two first runs' explanation reports, paired over the clips both explained (A - B)."""
    st.subheader("Explanations: A vs B")
    shared = [m for m in reads.explain_report_methods(a) if m in reads.explain_report_methods(b)]
    if not shared:
        st.caption("No explanation report covers the same method in both runs yet: compute one on each run's "
                   "Explain page (Faithfulness tab) or with `mer explain-report RUN`, then compare them here.")
        return
    c1, c2 = st.columns(2)
    method = c1.selectbox("method", shared, format_func=lambda m: LABELS.get(m, m), key="cmp_xai_method")
    measures = list(MEASURES)
    measure = c2.selectbox("measure", measures, index=measures.index("au_share") if "au_share" in measures else 0,
                           format_func=lambda m: MEASURES[m][0], key="cmp_xai_measure")
    try:
        result = reads.compare_explain_reports(a, b, measure=measure, method=method)
    except MerError as exc:
        st.info(plain(str(exc)))
        return
    st.write(plain(result["sentence"]))
    st.caption(plain(f"{names[a]} vs {names[b]}: per-clip differences A - B, paired sign-flip permutation test "
                     "over the clips both reports explained."))


# --- headline ---------------------------------------------------------------------------
def headline_section(chosen: list[str], bundles: dict, names: dict) -> None:
    st.subheader("Headline figures")
    rows, forest = [], []
    for rid in chosen:
        run = bundles[rid]["run"]
        ci = reads.run_intervals(rid)
        row = {"run": names[rid], "id": rid, "clips": run["summary"].get("pooled", {}).get("n")}
        for key, label in (("uf1", "UF1"), ("uar", "UAR"), ("accuracy", "accuracy")):
            row[f"{label} [95% CI]"] = ci[key].text() if key in ci else "–"
        oracle = run["summary"].get("oracle")
        row["oracle UF1 (diagnostic)"] = oracle["uf1"] if oracle else None
        row["fold-averaged UF1"] = run["summary"].get("fold_averaged", {}).get("uf1")
        rows.append(row)
        if "uf1" in ci:
            forest.append({"label": names[rid], "point": ci["uf1"].point, "low": ci["uf1"].low, "high": ci["uf1"].high})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "UF1 [95% CI]": st.column_config.TextColumn(help=glossary.tip("UF1")),
        "UAR [95% CI]": st.column_config.TextColumn(help=glossary.tip("UAR")),
        "oracle UF1 (diagnostic)": st.column_config.NumberColumn(format="%.3f"),
        "fold-averaged UF1": st.column_config.NumberColumn(format="%.3f")})
    if forest:
        st.plotly_chart(plots.interval_figure(pd.DataFrame(forest)), width="stretch", config=widgets.chart_config("compare-1"))
    st.caption("Pooled figures (MEGC2019) with 95% subject-level bootstrap intervals. Overlapping intervals do not "
               "settle a comparison: the paired test below, on the same subjects, is sharper.")
    confusion = bundles[chosen[0]]["run"]["summary"].get("pooled", {}).get("confusion")
    if confusion:
        counts = [sum(row) for row in confusion]
        if sum(counts):
            chance = chance_levels(counts).text()
            st.caption(plain(chance[0].upper() + chance[1:] + f", on the class counts of {names[chosen[0]]}'s clips."))


# --- what differs: settings and curves ------------------------------------------------------
def config_diff_section(chosen: list[str], bundles: dict, names: dict) -> None:
    st.subheader("Settings that differ")
    st.caption(plain(" · ".join(f"{names[r]}: {preset_label(bundles[r]['run']['config'])}" for r in chosen)))
    configs = {names[r]: bundles[r]["run"]["config"] for r in chosen}
    diff = pd.DataFrame(settings_that_differ(configs), columns=["setting", *configs])
    st.dataframe(diff, hide_index=True, width="stretch")
    st.caption(f"{len(diff)} row(s): the seed always, every setting that differs between the runs, and every "
               "training value a run changed from its preset, shown as \"value (preset value)\". Settings the runs "
               "share at their preset's value are not shown.")


def curves_section(chosen: list[str], bundles: dict, names: dict) -> None:
    st.subheader("Learning curves")
    epochs = {names[r]: bundles[r]["epochs"] for r in chosen}
    metrics = [m for m in ("train_loss", "val_uf1", "test_acc", "test_uf1")
               if any(m in e and e[m].notna().any() for e in epochs.values())]
    if not metrics:
        st.info("The runs stored no curves.")
        return
    metric = st.radio("curve", metrics, horizontal=True, key="compare_curve_metric", format_func=plots.CURVE_NAMES.get)
    st.plotly_chart(study_plots.overlay_curves(epochs, metric), width="stretch", config=widgets.chart_config("compare-2"))
    st.caption("Each run's curve averaged over its folds. Test-subject curves are diagnostics: no epoch is chosen "
               "on them.")


# --- per class / per part --------------------------------------------------------------
def side_by_side_section(chosen: list[str], bundles: dict, names: dict) -> None:
    classes = bundles[chosen[0]]["run"]["classes"]
    long = []
    for rid in chosen:
        pooled = bundles[rid]["run"]["summary"]["pooled"]
        for c in classes:
            long.append({"run": names[rid], "class": c, "F1": pooled["f1"][c], "recall": pooled["recall"][c]})
    long_df = pd.DataFrame(long)
    left, right = st.columns(2)
    with left:
        st.subheader("Per class")
        metric = st.radio("per-class metric", ["F1", "recall"], horizontal=True, key="compare_class_metric")
        st.plotly_chart(plots.grouped_bars(long_df, "class", metric, "run", y_title=metric), width="stretch", config=widgets.chart_config("compare-3"))
        wide = long_df.pivot(index="class", columns="run", values=metric).reindex(classes).reset_index()
        st.dataframe(wide, hide_index=True, width="stretch",
                     column_config={names[r]: st.column_config.NumberColumn(format="%.3f") for r in chosen})
    with right:
        st.subheader("Per part")
        parts = [part_table(bundles[rid]["run"]["summary"]).assign(run=names[rid]) for rid in chosen]
        parts_df = pd.concat(parts, ignore_index=True)
        if parts_df["part"].nunique() <= 1:
            st.info("Single-part runs: the per-part view equals the headline figures.")
        else:
            st.plotly_chart(plots.grouped_bars(parts_df, "part", "uf1", "run", y_title="UF1"), width="stretch", config=widgets.chart_config("compare-4"))
            wide = parts_df.pivot_table(index="part", columns="run", values=["uf1", "uar"], sort=False)
            wide.columns = [f"{run} {m.upper()}" for m, run in wide.columns]
            st.dataframe(wide.reset_index(), hide_index=True, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="%.4f") for c in wide.columns})


# --- paired views ---------------------------------------------------------------------------
def paired_section(chosen: list[str], bundles: dict, names: dict) -> None:
    st.subheader("Paired comparison over subjects")
    c1, c2 = st.columns(2)
    a = c1.selectbox("run A", chosen, index=0, format_func=names.get, key=K_A)
    others = [r for r in chosen if r != a]
    b = c2.selectbox("run B", others, index=0, format_func=names.get, key=K_B)
    pair_names = (names[a].split(":")[0], names[b].split(":")[0])
    classes = bundles[a]["run"]["classes"]
    subj = paired_subject_scores(bundles[a]["predictions"], bundles[b]["predictions"], classes)
    tests = reads.paired_tests(a, b)
    perm, boot = tests["permutation"], tests["bootstrap"]
    m1, m2, m3 = st.columns(3)
    m1.metric(f"mean per-subject UF1 {pair_names[0]} − {pair_names[1]}", f"{perm.delta:+.3f}",
              help="The tested statistic: each shared subject's UF1 under A minus under B (clips both runs "
                   "tested), averaged over subjects. The pooled headline gap is in the table above.")
    patterns = "exact, all" if perm.exact else f"{perm.n_resamples:,} random"
    m2.metric("p-value (paired permutation)", f"{perm.p_value:.3g}",
              help=f"Sign-flip test of the mean per-subject difference: {patterns} swap patterns of A/B "
                   f"predictions per subject over {perm.n_subjects} subjects; two-sided. A two-arm Study runs "
                   "the same test.")
    m3.metric("shared clips / subjects", f"{perm.n_samples} / {perm.n_subjects}")
    boot_p = f"< {1 / boot.n_resamples:.1g}" if boot.p_value == 0 else f"= {boot.p_value:.3g}"
    st.caption(f"95% CI of the mean per-subject difference (paired subject bootstrap, {boot.n_resamples:,} "
               f"resamples): {boot.low:+.3f} to {boot.high:+.3f}; bootstrap p {boot_p}. The verdict uses the "
               "permutation test: with few subjects the bootstrap is over-confident.")
    text = verdict(perm, names=pair_names)
    seeds = (bundles[a]["run"]["config"].get("seed"), bundles[b]["run"]["config"].get("seed"))
    caveat = (f" {pair_names[0]} and {pair_names[1]} are one training run each (seed {seeds[0]} and seed "
              f"{seeds[1]}): this p-value covers which subjects were tested, not how much a score moves when "
              "the same model is trained again with another seed. A study with several seeds per arm measures that.")
    st.info(plain(text + caveat), icon=":material/balance:")
    study_link(bundles[a]["run"], bundles[b]["run"])
    left, right = st.columns(2)
    with left:
        st.plotly_chart(plots.paired_scatter(subj, pair_names), width="stretch", config=widgets.chart_config("compare-5"))
        st.caption(f"One point per subject (size = clips). Above the diagonal: {pair_names[1]} better on that subject.")
    with right:
        swapped = subj.rename(columns={"a": "b", "b": "a"})  # the figure draws its B - A: give it A - B
        st.plotly_chart(plots.difference_bars(swapped, pair_names[::-1]), width="stretch", config=widgets.chart_config("compare-6"))
        st.caption(f"Per-subject UF1 difference {pair_names[0]} − {pair_names[1]}, sorted (green: "
                   f"{pair_names[0]} better); the test above is about the mean of these bars. A subject's UF1 "
                   "averages the classes it shows or is predicted as.")
    if len(chosen) > 2:
        rows = []
        for other in others:
            t = reads.paired_tests(a, other)["permutation"]
            rows.append({"against": names[other], f"per-subject UF1 {pair_names[0]} − other": t.delta,
                         "p (permutation)": t.p_value,
                         "verdict": verdict(t, names=(pair_names[0], names[other].split(':')[0]))})
        st.markdown(f"**{pair_names[0]} against every other chosen run**")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
            f"per-subject UF1 {pair_names[0]} − other": st.column_config.NumberColumn(format="%+.3f"),
            "p (permutation)": st.column_config.NumberColumn(format="%.3g")})
        st.caption("Several tests at once: with k comparisons, expect about k × 0.05 false alarms at p < 0.05.")
    disagreement_section(a, b, bundles, pair_names)


def study_link(run_a: dict, run_b: dict) -> None:
    """A link to New study, prefilled with the two runs' arms (model / preset), data and protocol."""
    arms = list(dict.fromkeys(f"{r['model']}/{r['config'].get('preset', 'cpu')}" for r in (run_a, run_b)))
    if len(arms) < 2:
        st.caption("Both runs are the same model and preset: queue more seeds of it as jobs to see its seed noise.")
        return
    widgets.page_link("new-study", "Run these two as a study with three seeds each", icon=":material/library_add:",
                      query_params={"arms": ",".join(arms), "dataset": str(run_a["dataset"]),
                                    "protocol": str(run_a["protocol"])})


def disagreement_section(a: str, b: str, bundles: dict, pair_names: tuple[str, str]) -> None:
    classes = bundles[a]["run"]["classes"]
    d = disagreements(bundles[a]["predictions"], bundles[b]["predictions"])
    st.markdown(f"**Clips where {pair_names[0]} and {pair_names[1]} disagree** ({len(d)})")
    if d.empty:
        st.caption("The two runs predict every shared clip the same way.")
        return
    counts = d["right"].value_counts()
    st.caption(f"only {pair_names[0]} right: {counts.get('A', 0)} · only {pair_names[1]} right: "
               f"{counts.get('B', 0)} · both wrong: {counts.get('neither', 0)}")
    show = st.radio("show", ["all", f"only {pair_names[0]} right", f"only {pair_names[1]} right", "both wrong"],
                    horizontal=True, key="compare_disagree_filter")
    key = {f"only {pair_names[0]} right": "A", f"only {pair_names[1]} right": "B", "both wrong": "neither"}.get(show)
    view = d if key is None else d[d["right"] == key]
    table = pd.DataFrame({
        "sample_id": view["sample_id"], "subject": view["subject"],
        "true": [classes[i] for i in view["y_true"]],
        pair_names[0]: [classes[i] for i in view["pred_a"]], pair_names[1]: [classes[i] for i in view["pred_b"]],
        "right": view["right"].map({"A": pair_names[0], "B": pair_names[1], "neither": "neither"}),
        **{f"explain {n}": widgets.OPEN for n in pair_names},
    })
    links = {f"explain {n}": widgets.Link("explain", [{reads.QP_RUN: r, reads.QP_SAMPLE: s}
                                                      for s in view["sample_id"]])
             for n, r in zip(pair_names, (a, b))}
    widgets.link_table(table, links, key="compare-disagree", hide_index=True, width="stretch",
                       height=min(38 + 35 * len(table), 360))


# --- hyper-parameters -------------------------------------------------------------------------
def hyperparameter_section(ref: dict, chosen_models: list[str]) -> None:
    st.subheader("Hyper-parameters vs UF1")
    runs = reads.runs_table()
    same = runs[(runs["dataset"] == ref["dataset"]) & (runs["protocol"] == ref["protocol"]) & runs["uf1"].notna()]
    models = sorted(same["model"].unique())
    if not models:
        return
    counts = same["model"].value_counts()
    default = max(chosen_models, key=lambda m: counts.get(m, 0)) if chosen_models else ref["model"]
    model = st.selectbox("model", models, index=models.index(default) if default in models else 0, key=K_MODEL)
    ids = tuple(same.loc[same["model"] == model, "id"])
    details = reads.run_details(ids)
    rows = [{"id": r["id"], "uf1": r["uf1"], **flat_params(r["config"])} for r in details]
    df = pd.DataFrame(rows)
    params = [c for c in df.columns if c not in ("id", "uf1") and c not in SKIP_PARAMS
              and not c.startswith("dataset_options") and df[c].nunique() > 1]
    if len(df) < 2 or not params:
        st.info(plain(f"{len(df)} finished run(s) of {model} on {ref['dataset']} ({ref['protocol']})")
                + ("" if len(df) < 2 else " with identical settings") + ": nothing to relate to UF1 yet. Runs with "
                "different settings (learning rate, epochs, loss...) appear here.")
        return
    st.plotly_chart(plots.hyperparameter_figure(df, params[:8], "uf1"), width="stretch", config=widgets.chart_config("compare-7"))
    st.caption(plain(f"Every finished run of {model} on {ref['dataset']} ({ref['protocol']}): ")
               + f"{len(df)} runs; axes are the "
               f"settings that differ between them{' (first 8 shown)' if len(params) > 8 else ''}, the last axis is "
               "pooled UF1. Drag on an axis to filter.")
