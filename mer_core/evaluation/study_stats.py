"""Statistics of a study: which arm is better, by how much, and how sure we can be.

Input: the cells of a study (one stored run per arm x seed, as gathered by
:func:`mer_core.jobs.study.study_inputs`). Only *complete* cells (run status
``done``) enter the figures; the others are listed in ``flags`` and their arm
is flagged, so a partly failed study still reports what it has.

- per arm: mean +- sd over seeds of pooled UF1 and UAR (and per part for
  composite runs), the honest-vs-oracle gap (oracle minus honest, a
  diagnostic of how much test-set epoch selection would inflate the figure),
  and a subject-level bootstrap interval of pooled UF1 over the arm's seeds
  (:func:`mer_core.evaluation.statistics.bootstrap_intervals`: whole subjects
  resampled, every seed's predictions of a subject travelling with it);
- paired comparisons over subjects with *seed-averaged per-subject UF1*
  (a subject's UF1 from the metrics core, which averages the classes the
  subject shows or is predicted as; then averaged over seeds): two arms, the
  paired sign-flip permutation test of the mean difference A - B that Compare
  uses for two runs (:func:`mer_core.evaluation.statistics.sign_flip_test`,
  exact when 2^subjects <= n_perm; one seed per arm gives Compare's p-value)
  and a verdict sentence; three or more arms, the Friedman test
  (``scipy.stats.friedmanchisquare``), the Nemenyi post-hoc test
  (``scikit_posthocs.posthoc_nemenyi_friedman``) and the critical-difference
  data (average ranks, Demsar's CD, groups not told apart).

A spotting study (:func:`analyse_spotting`) has the same report shape
(``kind`` 'spotting'): per arm the mean +- sd over seeds of the pooled
overall, micro and macro F1 each spotting run stored, the mean chance F1 of
its intervals placed at random (computed by the caller, which may use the
spotting package), and the same paired tests on the per-subject overall F1
the runs stored (their ``summary["per_subject"]``), seed-averaged. An arm
whose spotter uses no seed is ``deterministic``: when its seeds repeat one
figure the table says so instead of an sd of 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from mer_core.evaluation.metrics import per_group
from mer_core.evaluation.statistics import bootstrap_intervals, sign_flip_test

CURVE_METRICS = ("train_loss", "val_uf1", "test_acc", "test_uf1")
PART_COLUMNS = ["arm", "part", "n_seeds", "uf1_mean", "uf1_sd", "uar_mean", "uar_sd"]  # StudyReport.parts
CURVE_COLUMNS = ["arm", "epoch", "metric", "mean", "sd", "n"]  # StudyReport.curves


@dataclass
class StudyReport:
    name: str
    arms: list[str]  # arms with at least one complete cell, in definition order
    cells: pd.DataFrame  # arm, seed, run_id, status, complete, uf1, uar, oracle_uf1, oracle_uar, error
    table: pd.DataFrame  # one row per arm (see _arm_table)
    parts: pd.DataFrame  # arm, part, n_seeds, uf1_mean, uf1_sd, uar_mean, uar_sd
    subject_scores: pd.DataFrame  # index subject, one column per arm: seed-averaged per-subject UF1
    test: dict[str, Any]  # kind ('permutation' | 'friedman' | 'none'), p_value, verdict, ...
    curves: pd.DataFrame  # arm, epoch, metric, mean, sd, n
    flags: list[str] = field(default_factory=list)
    best: str = ""
    marks: dict[str, str] = field(default_factory=dict)  # arm -> '' | '*' | '**' (worse than the best)
    alpha: float = 0.05
    kind: str = "recognition"  # or 'spotting' (analyse_spotting: F1 columns, no curves, parts or bootstrap)
    notes: list[str] = field(default_factory=list)  # what the figures mean, beyond flags (e.g. deterministic arms)


def _completeness(cells: Sequence[Mapping[str, Any]], cell_df: pd.DataFrame, arms: Sequence[str] | None
                  ) -> tuple[list[str], list[Mapping[str, Any]], list[str], list[str]]:
    """(arm order, complete cells, arms with a complete cell, flags for the incomplete cells and empty arms)."""
    order = list(dict.fromkeys(list(arms or []) + [str(c["arm"]) for c in cells]))
    flags = [f"arm {r.arm!r} seed {r.seed}: {r.status or 'not started'}" + (f" ({r.error})" if r.error else "")
             for r in cell_df.itertuples() if not r.complete]
    complete = [c for c, ok in zip(cells, cell_df["complete"]) if ok]
    present = [a for a in order if any(str(c["arm"]) == a for c in complete)]
    flags += [f"arm {a!r}: no complete cell, left out of the statistics" for a in order if a not in present]
    return order, complete, present, flags


def analyse(cells: Sequence[Mapping[str, Any]], *, arms: Sequence[str] | None = None, name: str = "",
            alpha: float = 0.05, n_perm: int = 10000, n_boot: int = 1000, seed: int = 0) -> StudyReport:
    """The study's report from its cells (dicts: arm, seed, run_id, run_status, run, predictions, epochs)."""
    cell_df = _cell_table(cells, RECOGNITION_FIGURES, _recognition_cell)
    order, complete, present, flags = _completeness(cells, cell_df, arms)
    classes = list(complete[0]["run"]["classes"]) if complete else []
    table = _arm_table(order, cell_df, lambda arm, ok: _recognition_arm(arm, ok, complete, classes,
                                                                      n_boot=n_boot, seed=seed))
    scores = subject_scores(complete, present, classes)
    test = compare_arms(scores, alpha=alpha, n_perm=n_perm, seed=seed)
    best = str(table.loc[table["uf1_mean"].idxmax(), "arm"]) if table["uf1_mean"].notna().any() else ""
    marks = _marks(test, best, present, alpha)
    return StudyReport(name=name, arms=present, cells=cell_df, table=table, parts=_part_table(order, complete),
                       subject_scores=scores, test=test, curves=learning_curves(complete), flags=flags, best=best,
                       marks=marks, alpha=alpha)


RECOGNITION_FIGURES = ("uf1", "uar", "oracle_uf1", "oracle_uar")  # StudyReport.cells, from the stored run


def _cell_table(cells: Sequence[Mapping[str, Any]], figures: Sequence[str],
                fill: Callable[[Mapping[str, Any], Mapping[str, Any], bool], dict[str, Any]]) -> pd.DataFrame:
    """One row per cell: arm, seed, run_id, status, then ``fill(cell, run, run done)`` (complete and the numeric
    ``figures``), then the error's last line."""
    rows = []
    for c in cells:
        run = c.get("run") or {}
        status = str(c.get("run_status") or run.get("status") or c.get("job_status") or "")
        rows.append({"arm": str(c["arm"]), "seed": int(c["seed"]), "run_id": c.get("run_id", ""), "status": status,
                     **fill(c, run, status == "done" and bool(run)),
                     "error": str(c.get("error") or "").strip().splitlines()[-1][:200] if c.get("error") else ""})
    df = pd.DataFrame(rows, columns=["arm", "seed", "run_id", "status", "complete", *figures, "error"])
    for col in figures:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _recognition_cell(c: Mapping[str, Any], run: Mapping[str, Any], done: bool) -> dict[str, Any]:
    return {"complete": done and not c["predictions"].empty, **{k: run.get(k) for k in RECOGNITION_FIGURES}}


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _arm_table(order: list[str], cells: pd.DataFrame, fill: Callable[[str, pd.DataFrame], dict[str, Any]]
               ) -> pd.DataFrame:
    """One row per arm: arm, seeds, complete, flagged (a cell not complete), then ``fill(arm, its complete cells)``."""
    rows = []
    for arm in order:
        mine = cells[cells["arm"] == arm]
        ok = mine[mine["complete"]]
        rows.append({"arm": arm, "seeds": len(mine), "complete": len(ok), "flagged": len(ok) < len(mine),
                     **fill(arm, ok)})
    return pd.DataFrame(rows)


def _recognition_arm(arm: str, ok: pd.DataFrame, complete: Sequence[Mapping[str, Any]], classes: list[str],
                     *, n_boot: int, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for m in ("uf1", "uar"):
        row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(ok[m])
        row[f"oracle_gap_{m}"] = _mean_sd(ok[f"oracle_{m}"] - ok[m])[0]
    preds = [c["predictions"] for c in complete if str(c["arm"]) == arm]
    row["uf1_low"] = row["uf1_high"] = float("nan")
    if preds:
        ci = bootstrap_intervals(pd.concat(preds, ignore_index=True), classes, n_boot=n_boot, seed=seed)["uf1"]
        row["uf1_low"], row["uf1_high"] = ci.low, ci.high
    return row


def _part_table(order: list[str], complete: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    long = [{"arm": str(c["arm"]), "part": part, "uf1": v.get("uf1"), "uar": v.get("uar")}
            for c in complete for part, v in (c["run"].get("summary", {}).get("per_part") or {}).items()]
    if not long:
        return pd.DataFrame(columns=PART_COLUMNS)
    df = pd.DataFrame(long)
    rows = []
    for (arm, part), g in df.groupby(["arm", "part"], sort=False):
        u, us = _mean_sd(g["uf1"])
        r, rs = _mean_sd(g["uar"])
        rows.append({"arm": arm, "part": part, "n_seeds": len(g), "uf1_mean": u, "uf1_sd": us, "uar_mean": r,
                     "uar_sd": rs})
    out = pd.DataFrame(rows, columns=PART_COLUMNS)
    out["arm"] = pd.Categorical(out["arm"], [a for a in order if a in set(out["arm"])], ordered=True)
    return out.sort_values(["arm", "part"]).reset_index(drop=True).astype({"arm": str})


# --- paired comparisons over subjects -----------------------------------------------------
def _seed_averaged(complete: Sequence[Mapping[str, Any]], arms: Sequence[str],
                   score: Callable[[Mapping[str, Any]], pd.Series]) -> pd.DataFrame:
    """Subjects x arms: ``score(cell)`` (a Series by subject) averaged over each arm's complete cells; the subjects
    every arm has a score for."""
    columns = {}
    for arm in arms:
        per_seed = [score(c) for c in complete if str(c["arm"]) == arm]
        if per_seed:
            columns[arm] = pd.concat(per_seed, axis=1).mean(axis=1)
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).dropna().sort_index()


def subject_scores(complete: Sequence[Mapping[str, Any]], arms: Sequence[str], classes: Sequence[str]) -> pd.DataFrame:
    """Subjects x arms: per-subject UF1 averaged over each arm's complete seeds; subjects every arm saw."""
    return _seed_averaged(complete, arms,
                          lambda c: per_group(c["predictions"], classes, "subject").set_index("subject")["uf1"])


def compare_arms(scores: pd.DataFrame, *, alpha: float = 0.05, n_perm: int = 10000, seed: int = 0,
                 metric: str = "UF1") -> dict[str, Any]:
    """Two arms: paired permutation test; three or more: Friedman + Nemenyi post-hoc + CD data (``metric``:
    the per-subject score's name in the verdict)."""
    k, n = scores.shape[1], scores.shape[0]
    if k < 2 or n < 2:
        return {"kind": "none", "p_value": float("nan"), "n_subjects": n,
                "verdict": f"{k} arm(s) with complete cells over {n} shared subject(s): nothing to compare yet."}
    if k == 2:
        return permutation_test(scores, alpha=alpha, n_perm=n_perm, seed=seed, metric=metric)
    return friedman_test(scores, alpha=alpha)


def permutation_test(scores: pd.DataFrame, *, alpha: float = 0.05, n_perm: int = 10000, seed: int = 0,
                     metric: str = "UF1") -> dict[str, Any]:
    """Paired sign-flip test of mean(A - B) over subjects (two-sided; :func:`sign_flip_test`, as Compare)."""
    a_name, b_name = scores.columns[:2]
    a, b = scores[a_name].to_numpy(float), scores[b_name].to_numpy(float)
    t = sign_flip_test(a, b, n_perm=n_perm, seed=seed)
    return {"kind": "permutation", "a": a_name, "b": b_name, "delta": t.delta, "p_value": t.p_value,
            "n_subjects": t.n_subjects, "exact": t.exact, "n_resamples": t.n_resamples,
            "verdict": two_arm_verdict(a_name, b_name, t.delta, t.p_value, t.n_subjects, alpha=alpha,
                                       exact=t.exact, identical=bool(np.allclose(a, b)), metric=metric)}


def two_arm_verdict(a: str, b: str, delta: float, p: float, n: int, *, alpha: float, exact: bool, identical: bool,
                    metric: str) -> str:
    """The two-arm test in words; ``identical``: every subject's score equal under both arms."""
    if identical:
        return f"{a} and {b} score the same seed-averaged {metric} on every one of the {n} shared subjects."
    if abs(delta) < 1e-12:
        return (f"{a} and {b} make the same mean seed-averaged {metric} over the {n} shared subjects, winning on "
                f"different subjects (paired permutation p = {p:.3g}): no evidence that one arm is better.")
    better, worse = (a, b) if delta > 0 else (b, a)
    head = (f"{better} scores {abs(delta):.3f} {metric} higher than {worse} per subject (seed-averaged, mean over "
            f"{n} subjects)")
    if p < alpha:
        return (f"{head}, and swapping the two arms' scores within subjects rarely gives a gap that large "
                f"(paired permutation p = {p:.3g}): the difference is unlikely to be seed or subject luck.")
    floor = (f" With {n} subjects no result can reach p < {alpha:g}." if exact and 2.0 / 2 ** n > alpha else "")
    return (f"{head}, but swapping the arms' scores within subjects gives gaps that large often (paired "
            f"permutation p = {p:.3g}): no evidence that one arm is better.{floor}")


def friedman_test(scores: pd.DataFrame, *, alpha: float = 0.05) -> dict[str, Any]:
    """Friedman over subjects (blocks) x arms, Nemenyi post-hoc p-values, average ranks and Demsar's CD."""
    import scikit_posthocs as sp  # lazy: loads scikit-posthocs and scipy (about 1 s)
    from scipy.stats import friedmanchisquare, studentized_range  # lazy: loads scipy (about 1 s)

    k, n = scores.shape[1], scores.shape[0]
    ranks = (-scores).rank(axis=1).mean(axis=0)  # rank 1 = best
    if np.allclose(scores.to_numpy(), scores.to_numpy()[:, :1]):
        stat, p = 0.0, 1.0
        posthoc = pd.DataFrame(1.0, index=scores.columns, columns=scores.columns)
    else:
        stat, p = friedmanchisquare(*[scores[c].to_numpy(float) for c in scores.columns])
        posthoc = sp.posthoc_nemenyi_friedman(scores.reset_index(drop=True))
        posthoc.index, posthoc.columns = list(scores.columns), list(scores.columns)
    q = float(studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    cd = q * math.sqrt(k * (k + 1) / (6.0 * n))
    groups = cliques(ranks, posthoc, alpha)
    return {"kind": "friedman", "statistic": float(stat), "p_value": float(p), "n_subjects": n, "ranks": ranks,
            "posthoc": posthoc, "cd": cd, "cliques": groups,
            "verdict": friedman_verdict(ranks, posthoc, float(p), n, alpha)}


def cliques(ranks: pd.Series, posthoc: pd.DataFrame, alpha: float) -> list[list[str]]:
    """Maximal runs of arms, in rank order, that the post-hoc test cannot tell apart (all pairwise p >= alpha)."""
    order = list(ranks.sort_values().index)
    found: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and all(posthoc.loc[x, order[j + 1]] >= alpha for x in order[i:j + 1]):
            j += 1
        group = order[i:j + 1]
        if len(group) > 1 and not any(set(group) <= set(g) for g in found):
            found.append(group)
    return found


def friedman_verdict(ranks: pd.Series, posthoc: pd.DataFrame, p: float, n: int, alpha: float) -> str:
    order = list(ranks.sort_values().index)
    lead = f"Average ranks over {n} subjects: " + ", ".join(f"{a} {ranks[a]:.2f}" for a in order) + "."
    if p >= alpha:
        return (f"{lead} The Friedman test finds no evidence that the {len(order)} arms differ (p = {p:.3g}); "
                "the ranking may be seed or subject luck.")
    pairs = [f"{a} over {b} (p = {posthoc.loc[a, b]:.3g})" for i, a in enumerate(order) for b in order[i + 1:]
             if posthoc.loc[a, b] < alpha]
    found = ("; the Nemenyi post-hoc test separates " + ", ".join(pairs)) if pairs else \
        "; the Nemenyi post-hoc test separates no pair (too few subjects for its correction)"
    return f"{lead} The Friedman test says the arms differ (p = {p:.3g}){found}."


def _marks(test: dict[str, Any], best: str, arms: Sequence[str], alpha: float) -> dict[str, str]:
    """'*' / '**': the arm is worse than the best arm at p < alpha / p < 0.01 (paired test over subjects)."""
    marks = {a: "" for a in arms}
    for arm in arms:
        if arm == best:
            continue
        if test["kind"] == "permutation":
            p = test["p_value"]
        elif test["kind"] == "friedman" and best in test["posthoc"].index:
            p = float(test["posthoc"].loc[best, arm])
        else:
            continue
        marks[arm] = "**" if p < min(alpha, 0.01) else "*" if p < alpha else ""
    return marks


# --- spotting studies ------------------------------------------------------------------------
SPOT_TYPES = ("overall", "micro", "macro")
SPOT_FIGURES = {"overall": "f1", "micro": "micro_f1", "macro": "macro_f1"}  # type -> the spot_runs column


def analyse_spotting(cells: Sequence[Mapping[str, Any]], *, arms: Sequence[str] | None = None, name: str = "",
                     alpha: float = 0.05, n_perm: int = 10000, seed: int = 0) -> StudyReport:
    """A spotting study's report from its cells (dicts: arm, seed, run_id, run_status, job_status, error, run: the
    stored spotting run with its summary, chance: its chance scores or None, deterministic: its spotter uses no
    seed). Figures are the runs' stored ones; nothing is scored again here."""
    cell_df = _cell_table(cells, SPOT_CELL_FIGURES, _spotting_cell)
    order, complete, present, flags = _completeness(cells, cell_df, arms)
    deterministic = {str(c["arm"]) for c in cells if c.get("deterministic")}
    table = _arm_table(order, cell_df, lambda arm, ok: _spotting_arm(arm, ok, deterministic))
    scores = spot_subject_scores(complete, present)
    test = compare_arms(scores, alpha=alpha, n_perm=n_perm, seed=seed, metric="F1")
    best = str(table.loc[table["f1_mean"].idxmax(), "arm"]) if table["f1_mean"].notna().any() else ""
    notes = [f"{r.arm}: its spotter uses no seed, so its {int(r.complete)} seeds repeat one run's figures; they are "
             "shown once, as 'deterministic', not as an sd of 0." for r in table.itertuples()
             if r.deterministic and r.same_every_seed and int(r.complete) > 1]
    return StudyReport(name=name, arms=present, cells=cell_df, table=table,
                       parts=pd.DataFrame(columns=PART_COLUMNS), subject_scores=scores, test=test,
                       curves=pd.DataFrame(columns=CURVE_COLUMNS), flags=flags, best=best,
                       marks=_marks(test, best, present, alpha), alpha=alpha, kind="spotting", notes=notes)


SPOT_CELL_FIGURES = ("iou", *SPOT_FIGURES.values(), *(f"chance_{v}" for v in SPOT_FIGURES.values()))


def _spotting_cell(c: Mapping[str, Any], run: Mapping[str, Any], done: bool) -> dict[str, Any]:
    done = done and bool(run.get("summary"))
    chance = c.get("chance") or {}
    return {"complete": done, "iou": run["summary"].get("iou") if done else None,
            **{SPOT_FIGURES[k]: run.get(SPOT_FIGURES[k]) if done else None for k in SPOT_TYPES},
            **{f"chance_{SPOT_FIGURES[k]}": (chance.get(k) or {}).get("f1") if done else None for k in SPOT_TYPES}}


def _spotting_arm(arm: str, ok: pd.DataFrame, deterministic: set[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"deterministic": arm in deterministic,
                           "iou": float(ok["iou"].max()) if ok["iou"].notna().any() else float("nan")}
    same = True
    for col in SPOT_FIGURES.values():
        row[f"{col}_mean"], row[f"{col}_sd"] = _mean_sd(ok[col])
        row[f"chance_{col}_mean"] = _mean_sd(ok[f"chance_{col}"])[0]
        v = ok[col].dropna().to_numpy(float)
        same = same and (len(v) == 0 or bool(np.allclose(v, v[0], rtol=0, atol=1e-12)))
    row["same_every_seed"] = same
    return row


def spot_subject_scores(complete: Sequence[Mapping[str, Any]], arms: Sequence[str]) -> pd.DataFrame:
    """Subjects x arms: the per-subject overall F1 each run stored, averaged over the arm's complete seeds; subjects
    every arm scored (a subject with neither a true nor a spotted interval has no F1)."""
    def overall(c: Mapping[str, Any]) -> pd.Series:
        table = pd.DataFrame(c["run"]["summary"].get("per_subject") or [], columns=["subject", "type", "f1"])
        return pd.to_numeric(table[table["type"] == "overall"].set_index("subject")["f1"], errors="coerce")

    return _seed_averaged(complete, arms, overall)


# --- learning curves ------------------------------------------------------------------------
def learning_curves(complete: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per arm and epoch: mean and sd over seeds of the fold-averaged curve of each stored metric."""
    per_cell, arm_of = [], {}
    for i, c in enumerate(complete):
        ep = c.get("epochs")
        if ep is None or ep.empty:
            continue
        kept = [m for m in CURVE_METRICS if m in ep and ep[m].notna().any()]
        per_cell.append(ep[["epoch", *kept]].astype({m: float for m in kept}).assign(_cell=i))
        arm_of[i] = str(c["arm"])
    metrics = [m for m in CURVE_METRICS if any(m in ep for ep in per_cell)]
    if not per_cell or not metrics:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    # one groupby for every cell: each cell's fold-averaged curve, then cell by cell, metric by metric
    # (the order the per-cell loop had, so the groups below come out in the same order)
    means = pd.concat(per_cell, ignore_index=True).groupby(["_cell", "epoch"])[metrics].mean().reset_index()
    df = means.melt(["_cell", "epoch"], var_name="metric", value_name="value").sort_values("_cell", kind="stable")
    df = df.dropna(subset=["value"]).assign(arm=lambda d: d["_cell"].map(arm_of))
    out = df.groupby(["arm", "metric", "epoch"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"std": "sd", "count": "n"}).fillna({"sd": 0.0})
    return out[CURVE_COLUMNS]
