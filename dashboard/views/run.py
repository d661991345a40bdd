"""Run: one stored run, the honest figures first, then where it fails.

The run id lives in the URL (``?run=ID``) so a reload or a shared link shows
the same run. Headline figures are pooled over all folds (MEGC2019) with 95%
intervals from a subject-level bootstrap; every other view (confusion cells,
subjects, parts, curves, predictions) explains that number. Computations live
in ``mer_core`` and figures in ``dashboard.plots``: this module lays out.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import glossary, palette, plots, reads, reads_models, widgets
from dashboard.widgets import code, plain
from mer_core.evaluation.leaderboard import PARTS, paper_row, part_table
from mer_core.evaluation.metrics import per_group, summarize
from mer_core.evaluation.statistics import Interval, per_subject_confusions
from mer_core.evaluation.export import csv_safe, predictions_table
from mer_core.evaluation.context import chance_levels, group_chance, oracle_gap_sentence
from mer_core.datasets.classes import class_set_words
from mer_core.training.experiment import preset_label

K_NORMALISE = "run_cm_normalise"
K_CM_CHART = "run_cm_chart"
K_CELL = "run_cm_cell"
K_CELL_SEEN = "run_cm_cell_seen"
K_METRIC = "run_subject_metric"
K_CURVE = "run_curve_metric"
K_FOLD = "run_curve_fold"
NO_CELL = "—"
EPOCH_LABELS = plots.CURVE_NAMES


def render() -> None:
    st.title("Run")
    run_id = widgets.pick_run()
    if run_id is None:
        return
    bundle, error = reads.try_run_bundle(run_id)
    if bundle is None:
        st.error(plain(error))
        return
    run, pred = bundle["run"], bundle["predictions"]
    classes = run["classes"]

    st.caption(plain(f"{run['model']} ({preset_label(run['config'])}) on {run['dataset']} · {run['protocol']} · ")
               + f"{run['n_samples']} clips · {run['n_folds']} folds · status **{run['status']}**")
    in_final_section = set(reads_models.failure_notes(run)) if run["config"].get("final_model") else set()
    for note in run["notes"]:
        if note not in in_final_section:  # the Final model section shows those, once
            st.caption(f":material/info: {plain(note)}")
    pretrain_section(run_id, run)
    if run["status"] == "failed" and run.get("error"):
        with st.expander("why the run failed", icon=":material/error:"):
            st.code(run["error"])
    summary = current_summary(run, pred)
    if run["status"] != "done" and not pred.empty:
        what = "in progress" if run["status"] in ("running", "queued", "cancelling") else plain(run["status"])
        st.info(f"Run {what}: figures below are computed from the {pred['fold'].nunique()} fold(s) of "
                f"{run['n_folds']} stored now" + (" and will change." if what == "in progress" else "."),
                icon=":material/hourglass_top:")
    pooled = summary.get("pooled")
    if not pooled or pred.empty:
        st.info("No fold has finished yet; results appear here as folds complete.")
        return
    headline(run_id, {**run, "folds_done": int(pred["fold"].nunique())}, pooled, summary)
    final_section(run_id, run)
    table = predictions_table(pred, classes)
    overview, parts_tab, curves_tab, preds_tab, details_tab = st.tabs(
        ["Classes & subjects", "Per part", "Training curves", "Predictions", "Config & provenance"])
    with overview:
        class_section(pooled, classes)
        left, right = st.columns([1, 1.4])
        with left:
            confusion_section(run_id, pooled, classes, table)
        with right:
            subject_section(pred, classes)
    with parts_tab:
        parts_section(run, summary)
    with curves_tab:
        curves_section(bundle["epochs"], bundle["folds"])
    with preds_tab:
        predictions_section(run_id, table, classes)
    with details_tab:
        details_section(run, bundle["folds"])


def pretrain_section(run_id: str, run: dict) -> None:
    """Which weights every fold started from: the macro pre-training's source, fingerprint and checkpoint, or none."""
    record, problem = reads_models.pretrain_record(run_id)
    asked = str(run["config"].get("pretrain") or "")
    if problem:
        st.warning(f"**Pre-training:** {plain(problem)}", icon=":material/warning:")
    elif record is None:
        st.caption("**Pre-training:** " + (f"{plain(asked)} asked for, but no record is stored (the run stopped "
                                           "before pre-training, or predates the record)" if asked
                                           else "none (trained from scratch)"))
    else:
        sources = "; ".join(f"{plain(s)} (data fingerprint {code(f[:12])})"
                            for s, f in zip(record["sources"], record["data_fingerprints"]))
        epochs = f" · {record['epochs']} epochs" if record["epochs"] else ""
        weights = (f"weights sha256 {code(record['weights_sha256'][:12])}" if record["weights_sha256"]
                   else f"checkpoint sha256 {code(record['checkpoint_sha256'][:12])}")
        st.caption(f":material/model_training: **Pre-training:** {sources} · {weights}{epochs}")
        made_by, this_run = record["code"], str(run.get("code_version") or "")
        if made_by and this_run and made_by != this_run:
            st.caption(f":material/warning: These pre-trained weights were made by other code ({code(made_by)}) "
                       f"than this run's ({code(this_run)}) and taken from the cache by their recipe. If the training "
                       "loop changed in between, pre-training again gives other weights, which can move the scores by "
                       "a few hundredths; delete the checkpoint to pre-train afresh.")
        with st.expander("pre-training record", icon=":material/fingerprint:"):
            rows = [("source", s) for s in record["sources"]] + [("data fingerprint", f)
                                                                  for f in record["data_fingerprints"]]
            fields = ("weights_sha256", "checkpoint_sha256", "key", "checkpoint", "code", "epochs")
            rows += [(k.replace("_", " "), record[k]) for k in fields if record[k] is not None]
            st.dataframe(pd.DataFrame(rows, columns=["field", "value"]).astype(str), hide_index=True,
                         width="stretch")


FINAL_FIELDS = ("evaluated", "epochs", "epochs_rule", "n_samples", "n_subjects", "subjects", "classes", "seed",
                "checkpoint", "keep_checkpoints", "config_hash", "content_hash", "train_loss", "seconds", "created",
                "note")


def final_section(run_id: str, run: dict) -> None:
    """The final model (final_model = true): what it was trained on and that it was never evaluated, or why not."""
    record, problem = reads_models.final_record(run_id)
    asked = bool(run["config"].get("final_model"))
    if record is None and not problem and not asked:
        return
    st.subheader("Final model")
    if problem:
        st.warning(f"**Final model unusable:** {plain(problem)}", icon=":material/warning:")
    if record is None:
        _final_missing(run, bool(problem))
        return
    e = record["epochs"]
    st.markdown(plain(f"Trained on all {record['n_subjects']} subjects ({record['n_samples']} clips) for {e} "
                      f"epoch{'' if e == 1 else 's'} (rule: {record['epochs_rule']}), never evaluated: its score "
                      "is the LOSO above, not its own."))
    if record.get("keep_checkpoints") is False:
        st.caption(":material/info: " + plain("Kept although keep_checkpoints = false: the final model is the only "
                                              "product of final_model = true (the fold checkpoints were not kept)."))
    widgets.page_link("analyse", "Predict a clip with it", icon=":material/movie:", query_params={reads.QP_RUN: run_id})
    with st.expander("final model record", icon=":material/fingerprint:"):
        rows = [(k.replace("_", " "), ", ".join(map(str, record[k])) if isinstance(record[k], list)
                 else widgets.when(record[k]) if k == "created" else record[k]) for k in FINAL_FIELDS if k in record]
        st.dataframe(pd.DataFrame(rows, columns=["field", "value"]).astype(str), hide_index=True, width="stretch")


def _final_missing(run: dict, unusable: bool) -> None:
    """final_model = true was asked for and no usable final model is stored: the run's notes say why."""
    notes = reads_models.failure_notes(run)
    for note in notes:
        st.warning(plain(note), icon=":material/error:")
    if notes or unusable:
        return
    if run["status"] in ("running", "queued", "cancelling"):
        st.info("final_model = true: it is trained on every subject once the LOSO folds finish.",
                icon=":material/hourglass_top:")
    else:
        st.warning(plain("final_model = true was asked for, but no final model is stored and no run note says why "
                         "(the run stopped before it, or its files were removed)."), icon=":material/warning:")


def current_summary(run: dict, pred: pd.DataFrame) -> dict:
    """The run's summary, from the folds stored now unless the run is done.

    A resumed or running run may carry the summary of an earlier attempt; it is never shown as current.
    """
    if run["status"] == "done" and run["summary"].get("pooled"):
        return run["summary"]
    return summarize(pred, run["classes"]) if not pred.empty else {}


def interval_caption(headline: float, iv: Interval) -> str:
    """The percentile interval as computed, never widened; says so when it leaves out its point estimate.

    The interval's point and the headline share one definition (mer_core.evaluation.metrics), so they are
    the same number and the interval normally contains it; a percentile interval of strongly skewed
    resamples may not. A summary stored under an earlier scoring rule is named as such.
    """
    text = f"95% CI {iv.low:.3f} – {iv.high:.3f}"
    if abs(iv.point - headline) > 1e-9:
        text += (f" around {iv.point:.3f}, the predictions rescored now (the stored {headline:.3f} was scored by an "
                 "earlier rule for classes without clips)")
    if not iv.contains_point:
        side = "above" if iv.low > iv.point else "below"
        text += (f" (the whole percentile interval lies {side} its point {iv.point:.3f}: the resampled scores are "
                 "skewed; shown as computed)")
    return text


# --- headline -------------------------------------------------------------------
def headline(run_id: str, run: dict, pooled: dict, summary: dict) -> None:
    ci = reads.run_intervals(run_id)
    c1, c2, c3, c4 = st.columns(4)
    for col, key, label in ((c1, "uf1", "UF1 (pooled)"), (c2, "uar", "UAR (pooled)"), (c3, "accuracy", "accuracy")):
        iv = ci.get(key)
        col.metric(label, f"{pooled[key]:.3f}", help=glossary.tip(
            *({"uf1": ("UF1",), "uar": ("UAR",)}.get(key, ())),
            note="Pooled over all folds (MEGC2019). Interval: 95% subject-level bootstrap (2000 resamples "
                 "of held-out subjects with replacement, predictions pooled and rescored; seed 0)."))
        if iv is not None:
            col.caption(interval_caption(pooled[key], iv))
    c4.metric("clips tested", pooled["n"], help=glossary.tip("LOSO", "fold"))
    done, total = run.get("folds_done"), run["n_folds"]
    folds = f"{done} of {total} folds done" if done is not None and done != total else f"{total} folds"
    c4.caption(f"{folds} · {len(set(summary.get('classes', [])))} classes")
    counts = pd.DataFrame(pooled["confusion"]).sum(axis=1).tolist() if pooled.get("confusion") else []
    if sum(counts):
        chance = chance_levels(counts).text()
        st.caption(plain(chance[0].upper() + chance[1:] + ", on these clips' class counts."),
                   help="What a predictor that never looks at the clips scores on average: UAR is 1 / classes for "
                        "any such guess; UF1 depends on how the guesses are spread over the classes.")
    links = st.container(horizontal=True)
    widgets.page_link("compare", f"Compare with other runs on {plain(run['dataset'])}", icon=":material/compare_arrows:",
                      query_params={reads.QP_RUNS: run_id}, where=links)
    widgets.page_link("leaderboard", "Leaderboard", icon=":material/leaderboard:", where=links)
    fa = summary.get("fold_averaged", {})
    st.caption(f"**Fold-averaged variant** (mean of per-fold scores, reported by some papers; not comparable "
               f"with the pooled figures): UF1 {fa.get('uf1', float('nan')):.3f}, UAR {fa.get('uar', float('nan')):.3f}")
    oracle = summary.get("oracle")
    if oracle:
        gap = oracle["uf1"] - pooled["uf1"]
        with st.container(border=True):
            o1, o2, o3 = st.columns([1, 1.3, 3])
            o1.metric("UF1, honest", f"{pooled['uf1']:.3f}")
            o2.metric("UF1, oracle (diagnostic)", f"{oracle['uf1']:.3f}", delta=f"{gap:+.3f}",
                      delta_color="off")
            o3.markdown(plain(oracle_gap_sentence(pooled["uf1"], oracle["uf1"])))


# --- classes, confusion, subjects -------------------------------------------------
def class_section(pooled: dict, classes: list[str]) -> None:
    cm = pd.DataFrame(pooled["confusion"])
    per_class = pd.DataFrame({
        "class": classes, "F1": [pooled["f1"][c] for c in classes], "recall": [pooled["recall"][c] for c in classes],
        "clips (true)": cm.sum(axis=1).to_numpy(), "predicted": cm.sum(axis=0).to_numpy(),
    })
    st.subheader("Per class")
    st.dataframe(per_class, hide_index=True, width="stretch", column_config={
        "F1": st.column_config.ProgressColumn("F1", min_value=0.0, max_value=1.0, format="%.3f"),
        "recall": st.column_config.ProgressColumn("recall", min_value=0.0, max_value=1.0, format="%.3f"),
    })
    st.caption("UF1 is the mean of the F1 column and UAR the mean of the recall column, over all classes; a blank "
               "is undefined (a class with no clip has no recall, and one never predicted either no F1) and is "
               "left out of the mean.")


def _cell_options(cm: list[list[int]], classes: list[str]) -> list[str]:
    return [NO_CELL] + [f"{classes[i]} → {classes[j]} ({cm[i][j]})"
                        for i in range(len(classes)) for j in range(len(classes)) if cm[i][j]]


def _cell_from_option(option: str) -> tuple[str, str] | None:
    if option == NO_CELL or " → " not in option:
        return None
    true, rest = option.split(" → ", 1)
    return true, rest.rsplit(" (", 1)[0]


def _sync_cell_from_click(cm: list[list[int]], classes: list[str]) -> None:
    """A click on a heatmap cell (previous rerun) sets the cell picker, before the picker is drawn."""
    clicked = None
    for p in widgets.clicked_points(K_CM_CHART):
        cd = p.get("customdata")
        if cd is not None and len(cd) == 2:
            clicked = (int(cd[0]), int(cd[1]))
    if clicked is not None and clicked != st.session_state.get(K_CELL_SEEN):
        st.session_state[K_CELL_SEEN] = clicked
        i, j = clicked
        st.session_state[K_CELL] = f"{classes[i]} → {classes[j]} ({cm[i][j]})" if cm[i][j] else NO_CELL


def confusion_section(run_id: str, pooled: dict, classes: list[str], table: pd.DataFrame) -> None:
    st.subheader("Confusion matrix")
    cm = pooled["confusion"]
    normalise = st.toggle("row-normalised", value=False, key=K_NORMALISE)
    _sync_cell_from_click(cm, classes)
    st.plotly_chart(plots.confusion_clickable(cm, classes, normalise=normalise), width="stretch", config=widgets.chart_config("run-1"),
                    key=K_CM_CHART, on_select="rerun", selection_mode="points")
    options = _cell_options(cm, classes)
    if st.session_state.get(K_CELL) not in options:
        st.session_state[K_CELL] = NO_CELL
    option = st.selectbox("list the clips of a cell (or click a cell)", options, key=K_CELL)
    cell = _cell_from_option(option)
    if cell:
        rows = table[(table["true"] == cell[0]) & (table["predicted"] == cell[1])]
        _explain_table(run_id, rows[["sample_id", "subject", "confidence", "p_true"]], key="run-cell-clips",
                       height=min(38 + 35 * len(rows), 300))


def subject_section(pred: pd.DataFrame, classes: list[str]) -> None:
    st.subheader("Per-subject scores")
    per_subject = per_group(pred, classes, "subject")
    hover = {s: plots.confusion_text(cm, classes) for s, cm in per_subject_confusions(pred, classes).items()}
    metric = st.radio("metric", ["uf1", "accuracy", "uar"], horizontal=True, key=K_METRIC,
                      format_func={"uf1": "UF1", "accuracy": "accuracy", "uar": "UAR"}.get)
    st.plotly_chart(plots.subject_bars(per_subject, metric, hover=hover, chance=group_chance(pred, classes)),
                    width="stretch", config=widgets.chart_config("run-2"))
    st.caption("Each bar is one held-out subject; n = clips of that subject; hover for the subject's confusion "
               "matrix. A subject's UF1 averages only the classes it shows or is predicted as. The dark tick on "
               "each bar is chance: what guessing every class equally often scores on that subject's clips, on "
               "average (accuracy and UAR 1 / classes; UF1 depends on the subject's class mix).")


# --- parts --------------------------------------------------------------------------
def parts_section(run: dict, summary: dict) -> None:
    per_part = summary.get("per_part") or {}
    if not per_part:
        st.info("This run has a single part (one dataset), so there is no per-part table. Composite runs "
                "(MEGC2019: SMIC-HS, CASME II, SAMM) show each part here in the papers' layout.")
        return
    known = {name for _, _, name in PARTS if name}
    if set(per_part) <= known:
        row = paper_row(summary)
        columns = pd.MultiIndex.from_tuples([(heading, m.upper()) for prefix, heading, _ in PARTS
                                             for m in ("uf1", "uar")])
        values = [[row[f"{prefix}_{m}"] for prefix, _, _ in PARTS for m in ("uf1", "uar")]]

        method = f"{run['model']} ({preset_label(run['config'])}), measured here"
        paper = pd.DataFrame(values, index=pd.Index([method], name="method"), columns=columns)
        st.markdown("**MEGC2019 layout** (rows = method, columns = composite part × metric)")
        st.table(paper.style.format(lambda v: "–" if v is None or pd.isna(v) else f"{v:.4f}"))
    table = part_table(summary)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "uf1": st.column_config.NumberColumn("UF1", format="%.4f", help=glossary.tip("UF1")),
        "uar": st.column_config.NumberColumn("UAR", format="%.4f", help=glossary.tip("UAR"))})
    st.caption("Each part's figures pool that part's folds only, over all classes (as the MEGC2019 papers do). "
               "Compare with published numbers on the Leaderboard page.")


# --- training curves ---------------------------------------------------------------
def curves_section(epochs: pd.DataFrame, folds: pd.DataFrame) -> None:
    if epochs.empty:
        st.info("No epochs recorded for this run.")
        return
    available = [c for c in EPOCH_LABELS if c in epochs and epochs[c].notna().any()]
    left, right = st.columns([2, 1])
    metric = left.selectbox("curve", available, format_func=EPOCH_LABELS.get, key=K_CURVE)
    subjects = {int(r["fold_index"]): ", ".join(map(str, r["test_subjects"])) for r in folds.to_dict("records")}
    fold_ids = sorted(int(f) for f in epochs["fold_index"].unique())
    highlight = right.selectbox("highlight a fold", [None, *fold_ids], key=K_FOLD,
                                format_func=lambda f: "none" if f is None else
                                f"fold {f + 1}" + (f" (test subject {subjects[f]})" if subjects.get(f) else ""))
    st.plotly_chart(plots.curves_figure(epochs, metric, highlight=highlight), width="stretch",
                    config=widgets.chart_config("run-3"))
    if metric.startswith("test_"):
        st.caption("Test-subject curves are recorded only as a diagnostic: the honest protocol never uses them "
                   "to pick an epoch.")
    else:
        lit = (f" {palette.HIGHLIGHT_NAME.capitalize()}: fold {highlight + 1}." if highlight is not None
               else f" Pick a fold above to follow it in {palette.HIGHLIGHT_NAME}.")
        st.caption(f"Thin grey lines: one per fold ({len(fold_ids)}; hover names it). Blue: mean over folds at "
                   "each epoch." + lit)
    mean = epochs.groupby("epoch")[available].mean().reset_index()
    with st.expander("epochs table (mean over folds)"):
        st.dataframe(mean, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(EPOCH_LABELS[c], format="%.4f")
                                    for c in available})


# --- predictions ---------------------------------------------------------------------
def _explain_table(run_id: str, rows: pd.DataFrame, *, key: str, height: int) -> None:
    """``rows`` (clips of this run) with an "explain" column: a click opens that clip on the Explain page."""
    params = [{reads.QP_RUN: run_id, reads.QP_SAMPLE: s} for s in rows["sample_id"]]
    links = {"explain": widgets.Link("explain", params)}
    widgets.link_table(rows.assign(explain=widgets.OPEN), links, key=key, hide_index=True, width="stretch",
                       height=height, column_config={
                           "explain": st.column_config.TextColumn("explain", help="open this clip on the Explain page"),
                           "confidence": st.column_config.NumberColumn(format="%.3f"),
                           "p_true": st.column_config.NumberColumn("p(true)", format="%.3f")})


def predictions_section(run_id: str, table: pd.DataFrame, classes: list[str]) -> None:
    left, right = st.columns([4.6, 1])
    with left:
        view = widgets.filters(table, [("subject", "subject", sorted(table["subject"].unique())),
                                       ("true", "true class", classes), ("predicted", "predicted class", classes)],
                               key="run_pred", widths=[2, 1.3, 1.3])
    correct = right.radio("outcome", ["all", "correct", "wrong"], horizontal=False, key="run_pred_correct")
    if correct != "all":
        view = view[view["correct"] == (correct == "correct")]
    cols = ["sample_id", "subject", "part", "fold", "true", "predicted", "correct", "confidence", "p_true"]
    if "oracle_predicted" in view:
        cols.append("oracle_predicted")
    _explain_table(run_id, view[cols], key="run-predictions", height=380)
    st.caption(f"{len(view)} of {len(table)} clips · accuracy of the shown clips "
               f"{view['correct'].mean() if len(view) else float('nan'):.3f}")
    d1, d2, _ = st.columns([1, 1, 2])
    d1.download_button("predictions (shown) as CSV", csv_safe(view).to_csv(index=False),
                       file_name=f"{run_id}_predictions.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:")
    d2.download_button("whole run as JSON", lambda: reads.run_record_json(run_id), file_name=f"{run_id}.json",
                       mime="application/json", on_click="ignore", icon=":material/download:")
    st.caption(f"Same files from the command line: {code(f'mer export {run_id} --format csv')} or `--format json`.")


# --- provenance --------------------------------------------------------------------------
def details_section(run: dict, folds: pd.DataFrame) -> None:
    facts = pd.DataFrame({"field": [
        "run id", "name", "status", "model / preset", "dataset", "protocol", "class set", "classes",
        "dataset fingerprint", "code version", "device", "wall time", "created", "finished", "config hash"],
        "value": [
        run["id"], run.get("name") or "–", run["status"], f"{run['model']} / {preset_label(run['config'])}", run["dataset"],
        run["protocol"], class_set_words(run["class_set"]) if run.get("class_set") else "(dataset default)",
        ", ".join(run["classes"]),
        run.get("dataset_fingerprint") or "–", run.get("code_version") or "–", run.get("device") or "–",
        f"{run.get('wall_time') or 0:.1f} s", widgets.when(run.get("created")), widgets.when(run.get("finished")),
        run.get("config_hash", "")]})
    left, right = st.columns([1, 1])
    with left:
        st.subheader("Provenance")
        st.dataframe(facts, hide_index=True, width="stretch", height=40 + 35 * len(facts))
        st.caption("The dataset fingerprint hashes clip ids, labels and annotations: two runs with the same "
                   "fingerprint saw the same data.")
    with right:
        st.subheader("Config")
        with st.container(height=470):
            st.json(run["config"], expanded=1)
        st.download_button("config as JSON", json.dumps(run["config"], indent=1), file_name=f"{run['id']}_config.json",
                           mime="application/json", on_click="ignore")
    if not folds.empty:
        st.subheader("Folds")
        view = folds.assign(test_subjects=folds["test_subjects"].map(", ".join))
        cols = [c for c in ("fold_index", "name", "status", "test_subjects", "n_train", "n_val", "n_test",
                            "epochs_run", "selected_epoch", "oracle_epoch", "wall_time") if c in view]
        st.dataframe(view[cols], hide_index=True, width="stretch", height=min(38 + 35 * len(view), 320),
                     column_config={"wall_time": st.column_config.NumberColumn("wall time (s)", format="%.1f"),
                                    "oracle_epoch": st.column_config.NumberColumn("oracle epoch (diagnostic)")})
