"""Calibration of the synthetic dataset's difficulty.

The synthetic set must be neither trivial nor impossible: the motion, not the
identity, carries the label. Under leave-one-subject-out (scikit-learn's
LeaveOneGroupOut over subjects), with predictions pooled over all folds
(MEGC2019 convention, UF1/UAR over all classes):

* appearance only (apex frame pixels; logistic regression and 1-NN) must stay
  near chance: UF1 < 0.5;
* a flow baseline (logistic regression on DIS / Farneback optical flow
  onset -> apex, averaged to a coarse grid) must reach UF1 >= 0.8.

Run: ``.venv/bin/python benchmarks/bench_synthetic_calibration.py`` (default
set, generated into the cache if missing). Writes
``bench_out/synthetic_calibration.json`` and prints a table. Options of the
set (``--subjects``, ``--amplitude``, ...) and ``--seed`` let you check how
the calibration moves with them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, recall_score  # noqa: E402
from sklearn.model_selection import LeaveOneGroupOut  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mer_core.datasets import index_dataset  # noqa: E402

GRID = 16  # flow is averaged to GRID x GRID cells per component
APPEARANCE = 32  # apex frames resized to this for the appearance classifiers


def grey(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SystemExit(f"cannot read frame {path}")
    return img


def features(table) -> dict[str, np.ndarray]:
    """Per clip: apex pixels, and flow onset->apex (DIS and Farneback) on a coarse grid."""
    # one DIS instance per input size: an instance reused across sizes keeps state
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis_small = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    out: dict[str, list[np.ndarray]] = {"apex_pixels": [], "flow_dis": [], "flow_farneback": [], "flow_dis_32px": []}
    for row in table.itertuples(index=False):
        onset, apex = grey(row.frames[row.onset]), grey(row.frames[row.apex])
        out["apex_pixels"].append(cv2.resize(apex, (APPEARANCE, APPEARANCE), interpolation=cv2.INTER_AREA).ravel() / 255.0)
        flows = {
            "flow_dis": dis.calc(onset, apex, None),
            "flow_farneback": cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 9, 3, 5, 1.1, 0),
            # informative: flow computed after shrinking the frames to 32 px (motions become sub-pixel)
            "flow_dis_32px": dis_small.calc(*(cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in (onset, apex)), None),
        }
        for name, flow in flows.items():
            coarse = cv2.resize(flow, (GRID, GRID), interpolation=cv2.INTER_AREA)
            out[name].append(coarse.transpose(2, 0, 1).ravel())
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def loso(x: np.ndarray, y: np.ndarray, groups: np.ndarray, make, classes: list[str]) -> dict:
    """Pooled LOSO predictions -> UF1, UAR (all classes) and per-fold accuracy."""
    pred = np.empty_like(y)
    fold_acc = []
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        model = make().fit(x[train], y[train])
        pred[test] = model.predict(x[test])
        fold_acc.append(float((pred[test] == y[test]).mean()))
    return {
        "uf1": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "uar": float(recall_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "accuracy": float((pred == y).mean()),
        "per_class_f1": dict(zip(classes, map(float, f1_score(y, pred, labels=classes, average=None, zero_division=0)))),
        "folds": len(fold_acc),
        "fold_accuracy_mean": float(np.mean(fold_acc)),
    }


def logreg(c: float = 1.0):
    return lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, class_weight="balanced"))


def knn():
    return lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "bench_out" / "synthetic_calibration.json"))
    for name, kind in (("subjects", int), ("clips_per_subject", int), ("size", int), ("frames", int),
                       ("amplitude", float), ("noise", float), ("blink_rate", float), ("seed", int)):
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    args = p.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "out" and v is not None}
    cv2.setNumThreads(1)
    t0 = time.time()
    table = index_dataset("synthetic", **options)
    t_index = time.time() - t0
    t0 = time.time()
    feats = features(table)
    t_feat = time.time() - t0
    y = table["label"].to_numpy()
    groups = table["subject"].to_numpy()
    classes = sorted(set(y))
    runs = [
        ("appearance", "apex pixels 32x32, logistic regression", "apex_pixels", logreg(1.0)),
        ("appearance", "apex pixels 32x32, 1-nearest neighbour", "apex_pixels", knn()),
        ("flow", f"DIS flow onset->apex {GRID}x{GRID}, logistic regression", "flow_dis", logreg(0.05)),
        ("flow", f"Farneback flow onset->apex {GRID}x{GRID}, logistic regression", "flow_farneback", logreg(0.05)),
        ("info", f"DIS flow on frames shrunk to 32 px, {GRID}x{GRID}, logistic regression", "flow_dis_32px", logreg(0.05)),
    ]
    results = []
    for kind, name, feat, make in runs:
        t0 = time.time()
        r = loso(feats[feat], y, groups, make, classes)
        r.update(kind=kind, classifier=name, seconds=round(time.time() - t0, 2))
        results.append(r)
    counts = {c: int((y == c).sum()) for c in classes}
    appearance_max = max(r["uf1"] for r in results if r["kind"] == "appearance")
    flow_best = max(r["uf1"] for r in results if r["kind"] == "flow")
    report = {
        "dataset_options": options or "default",
        "clips": len(table),
        "subjects": int(table["subject"].nunique()),
        "class_counts": counts,
        "protocol": "LOSO (LeaveOneGroupOut over subjects), predictions pooled over folds",
        "results": results,
        "checks": {
            "appearance_uf1_below_0.5": appearance_max < 0.5,
            "flow_uf1_at_least_0.8": flow_best >= 0.8,
        },
        "seconds": {"index_or_generate": round(t_index, 2), "features": round(t_feat, 2)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"synthetic set: {len(table)} clips, {report['subjects']} subjects, classes {counts}")
    print(f"{'kind':11s} {'classifier':58s} {'UF1':>6s} {'UAR':>6s} {'acc':>6s}")
    for r in results:
        print(f"{r['kind']:11s} {r['classifier']:58s} {r['uf1']:6.3f} {r['uar']:6.3f} {r['accuracy']:6.3f}")
    for check, ok in report["checks"].items():
        print(f"check {check}: {'PASS' if ok else 'FAIL'}")
    print(f"wrote {out}")
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
