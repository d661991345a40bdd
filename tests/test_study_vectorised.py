"""The Study page's fast paths give the numbers the former loops gave (the target: a 4 x 5 study in < 2 s).

``per_group`` scores every subject in one pass of the metrics core (formerly a per-subject loop of
``scores``, and a second vectorised copy in the study module), ``learning_curves``
one groupby per cell, ``table_rows`` a boolean-mask lookup per (arm, part). Each is checked here
against the former computation, written out again below, on data with the awkward cases: subjects
lacking classes, a one-clip subject, cells with different epoch counts, NaN epochs, a metric missing
from one cell and all-empty in another, a cell without epochs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklearn.metrics import f1_score

from mer_core.evaluation.metrics import per_group, scores
from mer_core.evaluation.study_stats import CURVE_METRICS, analyse, learning_curves, subject_scores
from mer_core.evaluation.study_table import paper_table, table_rows
from mer_core.jobs.study import study_inputs
from mer_core.store.db import RunStore
from test_results_pages import CLASSES, store_fixture_run


def _random_predictions(seed: int, n: int = 300, subjects: int = 23) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subject = rng.integers(0, subjects, n)
    y_true = rng.choice(3, n, p=[0.6, 0.25, 0.15])
    y_true[subject == 3] = 0  # a subject showing one class only
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 3, n))
    df = pd.DataFrame({"subject": [f"p:s{s:02d}" for s in subject], "y_true": y_true, "y_pred": y_pred})
    one = pd.DataFrame({"subject": ["p:lonely"], "y_true": [2], "y_pred": [1]})  # one clip, wrongly predicted
    return pd.concat([df, one], ignore_index=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_group_equals_the_per_subject_loop(seed: int) -> None:
    pred = _random_predictions(seed)
    after = per_group(pred, CLASSES, "subject").set_index("subject")["uf1"]
    before = pd.Series({s: scores(g["y_true"], g["y_pred"], CLASSES).uf1 for s, g in pred.groupby("subject")})
    assert list(after.index) == list(before.index)
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy(), rtol=0, atol=1e-15)
    assert after["p:lonely"] == 0.0  # two classes involved (true 2, predicted 1), both F1 0
    only_negative = pred[pred["subject"] == "p:s03"]
    assert after["p:s03"] == pytest.approx(f1_score(only_negative["y_true"], only_negative["y_pred"], labels=[0, 1, 2],
                                                    average="macro", zero_division=np.nan))


def test_subject_scores_of_a_stored_study_equal_the_per_group_loop() -> None:
    with RunStore() as store:
        store.create_study("v", dataset="megc2019", protocol="composite",
                           definition={"arms": [{"name": "a"}, {"name": "b"}]})
        for arm, acc, base in (("a", 0.8, 0), ("b", 0.5, 10)):
            for seed in (0, 1, 2):
                rid = store_fixture_run(f"v-{arm}{seed}", composite=True, accuracy=acc, seed=base + seed, epochs=2,
                                        store=store)
                store.set_study_cell("v", arm, seed, job_id="", run_id=rid)
        cells = study_inputs(store, "v")["cells"]
    after = subject_scores(cells, ["a", "b"], CLASSES)
    before = pd.DataFrame({arm: pd.concat([per_group(c["predictions"], CLASSES, "subject").set_index("subject")["uf1"]
                                           for c in cells if c["arm"] == arm], axis=1).mean(axis=1)
                           for arm in ("a", "b")}).dropna().sort_index()
    assert after.shape == (68, 2)
    pd.testing.assert_frame_equal(after, before, check_exact=False, rtol=1e-14, atol=1e-15)


def _learning_curves_before(complete) -> pd.DataFrame:
    """The former per-cell loop of learning_curves, verbatim."""
    per_cell = []
    for c in complete:
        ep = c.get("epochs")
        if ep is None or ep.empty:
            continue
        cols = [m for m in CURVE_METRICS if m in ep and ep[m].notna().any()]
        mean = ep.groupby("epoch")[cols].mean().reset_index().melt("epoch", var_name="metric", value_name="value")
        per_cell.append(mean.assign(arm=str(c["arm"]), seed=int(c["seed"])))
    cols = ["arm", "epoch", "metric", "mean", "sd", "n"]
    if not per_cell:
        return pd.DataFrame(columns=cols)
    df = pd.concat(per_cell, ignore_index=True).dropna(subset=["value"])
    out = df.groupby(["arm", "metric", "epoch"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"std": "sd", "count": "n"}).fillna({"sd": 0.0})
    return out[cols]


def _epochs(rng, folds: int, epochs: int, drop: tuple[str, ...] = (), empty: tuple[str, ...] = ()) -> pd.DataFrame:
    rows = [{"fold_index": k, "epoch": e, **{m: rng.random() for m in CURVE_METRICS}}
            for k in range(folds) for e in range(1, epochs - (k % 2) + 1)]  # odd folds stop one epoch early
    df = pd.DataFrame(rows).drop(columns=list(drop))
    df.loc[rng.random(len(df)) < 0.1, "train_loss"] = np.nan
    for m in empty:
        df[m] = None  # what read_sql gives for a column the run never filled
    return df


def test_learning_curves_equal_the_per_cell_loop() -> None:
    rng = np.random.default_rng(5)
    cells = [{"arm": "A", "seed": 0, "epochs": _epochs(rng, 6, 5)},
             {"arm": "A", "seed": 1, "epochs": _epochs(rng, 6, 7, drop=("val_uf1",))},
             {"arm": "B", "seed": 0, "epochs": _epochs(rng, 5, 4, empty=("test_uf1",))},
             {"arm": "B", "seed": 1, "epochs": pd.DataFrame()},
             {"arm": "C", "seed": 3, "epochs": _epochs(rng, 3, 1)}]
    after, before = learning_curves(cells), _learning_curves_before(cells)
    assert len(after) == len(before) > 40
    pd.testing.assert_frame_equal(after.reset_index(drop=True), before.reset_index(drop=True),
                                  check_exact=False, rtol=1e-14, atol=1e-15)
    assert learning_curves([{"arm": "A", "seed": 0, "epochs": pd.DataFrame()}]).empty


def test_paper_table_rows_per_part_equal_the_mask_lookup() -> None:
    cells = []
    for arm, acc, base in (("x", 0.8, 0), ("y", 0.55, 10), ("z", 0.4, 20)):
        for seed in (0, 1):
            rid = store_fixture_run(f"t-{arm}{seed}", composite=True, accuracy=acc, seed=base + seed, epochs=2)
            with RunStore() as store:
                cells.append({"arm": arm, "seed": seed, "run_id": rid, "run_status": "done", "run": store.get_run(rid),
                              "predictions": store.predictions(rid), "epochs": store.epochs(rid)})
    report = analyse(cells, arms=["x", "y", "z"], n_boot=50, n_perm=200)
    columns, rows = table_rows(report)
    parts = list(dict.fromkeys(report.parts["part"]))
    assert len(parts) == 3 and columns[2:5] == [f"{p} UF1" for p in parts]
    for row in rows:
        for p in parts:
            hit = report.parts[(report.parts["arm"] == row["arm"]) & (report.parts["part"] == p)]
            assert row["values"][f"{p} UF1"] == (float(hit["uf1_mean"].iloc[0]), float(hit["uf1_sd"].iloc[0]))


def test_an_arm_with_one_finished_seed_shows_no_spread_rather_than_a_zero_one() -> None:
    cells = []
    for arm, acc, seeds in (("x", 0.8, (0, 1)), ("y", 0.55, (0, 1))):
        for seed in seeds:
            rid = store_fixture_run(f"one-{arm}{seed}", composite=True, accuracy=acc, seed=seed, epochs=2)
            with RunStore() as store:
                cancelled = arm == "y" and seed == 1
                cells.append({"arm": arm, "seed": seed, "run_id": rid,
                              "run_status": "cancelled" if cancelled else "done", "run": store.get_run(rid),
                              "predictions": store.predictions(rid), "epochs": store.epochs(rid)})
    report = analyse(cells, arms=["x", "y"], n_boot=50, n_perm=200)
    md = paper_table(report, "md")
    y_line = next(line for line in md.splitlines() if line.startswith("| y"))
    x_line = next(line for line in md.splitlines() if line.startswith("| x"))
    assert "(1 seed)" in y_line and "±" not in y_line and "†" in y_line
    assert "±" in x_line and "(1 seed)" not in x_line
    assert "(1 seed)" in paper_table(report, "latex")
    assert "cancelled" in md.splitlines()[-1]
    assert "complete cells only: y 1 of 2 seeds)" in md.splitlines()[-1]  # whose mean is over fewer seeds

