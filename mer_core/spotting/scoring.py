"""Scoring spotted intervals against ground truth: hits, misses, false alarms, P/R/F1, STRS.

Both tables list intervals, one per row: ``video``, ``onset``, ``offset``
(inclusive frame indices), ``type`` ('micro' or 'macro'; optional, per row,
in the predicted table), optional ``subject``, ``apex``, ``label``, and a
``score`` on predictions (carried, never used to match). Rows are named by
their position in the table as given (0-based, as ``.iloc``), in messages and
in the ``truth_row`` / ``pred_row`` columns of the results.

IoU of two inclusive frame intervals ``[a0, a1]`` and ``[b0, b1]``::

    inter = max(0, min(a1, b1) - max(a0, b0) + 1)
    union = (a1 - a0 + 1) + (b1 - b0 + 1) - inter
    IoU   = inter / union

A prediction *can* match a ground-truth interval of the same video when
``IoU >= iou`` (0.5, the MEGC rule; exactly 0.5 counts).

Mode ``"mer"`` (default): one-to-one. A prediction with a type can match
only truths of that type; one without a type can match a truth of either
type. Per video, the matching is a maximum-cardinality bipartite matching;
among the matchings of that size, one with the largest summed IoU; remaining
ties are resolved deterministically by the order (onset, offset, type, row)
of both sides, so the counts do not depend on the order of the rows. Counts
are pooled over videos (summed, then divided): TP = matched pairs, FP =
unmatched predictions (a video without truth counts all of its
predictions), FN = unmatched truths. Per type, TP and FN go by the truth's
type and FP by the prediction's type; an unmatched prediction without a type
counts in the overall figures only (``untyped_false_alarms``). A figure with a
zero denominator is undefined (NaN), never 0 or 1; F1 = 2TP / (2TP + FP + FN).

Mode ``"official"`` reproduces the counting of the MEGC spot-then-recognise
scorer (the STRS metric script used by MEGC2022-2025) so published figures can
be compared. It differs from ``"mer"`` on purpose, and is labelled so:
- predictions are taken in table order; each takes *every* truth of its video
  with IoU >= iou that no earlier prediction took, each one a TP (one
  prediction can make several TPs); a prediction that takes none is an FP;
- only subjects that have at least one prediction are scored, and within
  them only videos that have ground truth: truths of a subject without any
  prediction are not FNs, predictions in a video without truth are not FPs
  (both are listed as ``ignored``); videos are (subject, video) pairs;
- types are not looked at; the per-type figures of this mode run the same
  counting on the truths of one type and the predictions of that type or of
  none;
- zero denominators give 0; recognition "F1" is the harmonic mean of the
  classes' mean precision and mean recall, and its "UAR" is the mean
  *precision*, as the script computes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from mer_core.errors import MerError
from mer_core.evaluation.metrics import scores as recognition_scores

TYPES = ("micro", "macro")
MODES = ("mer", "official")
_TIMELINE_COLUMNS = ["video", "source", "row", "onset", "offset", "type", "outcome"]


class ScoringError(MerError, ValueError):
    """A truth or prediction table (or a scoring argument) is malformed."""


# --- inputs --------------------------------------------------------------------
@dataclass(frozen=True)
class _Intervals:
    """One validated table as arrays (row i = position i of the table)."""

    video: np.ndarray  # str objects
    subject: np.ndarray | None  # str objects
    onset: np.ndarray  # int64
    offset: np.ndarray  # int64
    tcode: np.ndarray  # int8: index into TYPES, -1 = no type
    label: np.ndarray | None  # str objects, None where missing

    def __len__(self) -> int:
        return len(self.onset)


def _where(t: str, i: int, video: object) -> str:
    return f"{t} row {i} (video {video!r})"


def _intervals(df: object, name: str, *, type_required: bool) -> _Intervals:
    if not isinstance(df, pd.DataFrame):
        raise ScoringError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    required = ("video", "onset", "offset") + (("type",) if type_required else ())
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ScoringError(f"{name} table lacks column(s) {missing}; has {list(df.columns)}")
    vid = df["video"]
    bad = np.flatnonzero(vid.isna().to_numpy())
    if bad.size:
        raise ScoringError(f"{name} row {bad[0]}: video is missing")
    video = vid.astype(str).to_numpy(dtype=object)
    frames = {}
    for col in ("onset", "offset"):
        num = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(num) | (num != np.floor(num)) | (num < 0))
        if bad.size:
            i = bad[0]
            raw = df[col].iloc[i]
            raw = raw.item() if isinstance(raw, np.generic) else raw
            raise ScoringError(f"{_where(name, i, video[i])}: {col}={raw!r}; "
                               "expected a frame index (an integer >= 0)")
        frames[col] = num.astype(np.int64)
    bad = np.flatnonzero(frames["onset"] > frames["offset"])
    if bad.size:
        i = bad[0]
        raise ScoringError(f"{_where(name, i, video[i])}: onset {frames['onset'][i]} > offset "
                           f"{frames['offset'][i]}; expected onset <= offset (inclusive frames)")
    tcode = np.full(len(df), -1, dtype=np.int8)
    if "type" in df.columns:
        typ = df["type"].astype(object)
        absent = typ.isna().to_numpy()
        if type_required and absent.any():
            i = np.flatnonzero(absent)[0]
            raise ScoringError(f"{_where(name, i, video[i])}: type is missing; expected 'micro' or 'macro'")
        known = typ.isin(TYPES).to_numpy()
        bad = np.flatnonzero(~known & ~absent)
        if bad.size:
            i = bad[0]
            raise ScoringError(f"{_where(name, i, video[i])}: unknown type {typ.iloc[i]!r}; "
                               "expected 'micro' or 'macro'")
        tcode[known] = (typ[known] == TYPES[1]).to_numpy().astype(np.int8)
    subject = None
    if "subject" in df.columns:
        bad = np.flatnonzero(df["subject"].isna().to_numpy())
        if bad.size:
            raise ScoringError(f"{_where(name, bad[0], video[bad[0]])}: subject is missing")
        subject = df["subject"].astype(str).to_numpy(dtype=object)
        per_video = pd.Series(subject).groupby(video).nunique()
        if (per_video > 1).any():
            v = per_video.index[per_video.to_numpy() > 1][0]
            raise ScoringError(f"{name}: video {v!r} belongs to several subjects "
                               f"{sorted(set(subject[video == v]))}; expected one subject per video")
    label = None
    if "label" in df.columns:
        lab = df["label"].astype(object)
        label = np.where(lab.isna().to_numpy(), None, lab.astype(str).to_numpy(dtype=object))
    return _Intervals(video, subject, frames["onset"], frames["offset"], tcode, label)


def _check_args(iou: float, mode: str) -> None:
    if mode not in MODES:
        raise ScoringError(f"unknown scoring mode {mode!r}; expected one of {list(MODES)}")
    if not isinstance(iou, (int, float)) or not 0 < float(iou) <= 1:
        raise ScoringError(f"iou threshold {iou!r} is not in (0, 1]")


# --- matching ------------------------------------------------------------------
def interval_iou(a_onset, a_offset, b_onset, b_offset) -> np.ndarray:
    """IoU of inclusive frame intervals, element-wise (see the module docstring)."""
    a0, a1, b0, b1 = (np.asarray(x, dtype=np.int64) for x in (a_onset, a_offset, b_onset, b_offset))
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0) + 1, 0, None)
    union = (a1 - a0 + 1) + (b1 - b0 + 1) - inter
    return inter / union


def _keys(t: _Intervals, p: _Intervals, by_subject: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer video keys shared by both tables ((subject, video) when by_subject)."""
    def key(x: _Intervals) -> np.ndarray:
        if not by_subject or x.subject is None:
            return x.video
        return (pd.Series(x.subject) + "\x1f" + pd.Series(x.video)).to_numpy(dtype=object)

    codes, _ = pd.factorize(np.concatenate([key(t), key(p)]))
    return codes[: len(t)], codes[len(t):]


def _candidates(t: _Intervals, tk: np.ndarray, p: _Intervals, pk: np.ndarray, iou: float,
                typed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth row, pred row, IoU) of every same-video pair with IoU >= iou, vectorised."""
    order = np.argsort(tk, kind="stable")
    sk = tk[order]
    start = np.searchsorted(sk, pk, "left")
    count = np.searchsorted(sk, pk, "right") - start
    pi = np.repeat(np.arange(len(p)), count)
    step = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ti = order[np.repeat(start, count) + step]
    w = interval_iou(t.onset[ti], t.offset[ti], p.onset[pi], p.offset[pi])
    keep = w >= iou
    if typed:
        keep &= (p.tcode[pi] < 0) | (p.tcode[pi] == t.tcode[ti])
    return ti[keep], pi[keep], w[keep]


def _match_one_to_one(t: _Intervals, tk: np.ndarray, p: _Intervals, ti: np.ndarray, pi: np.ndarray,
                      w: np.ndarray) -> np.ndarray:
    """Indices of the chosen edges: max cardinality, then max summed IoU, per video."""
    if not len(ti):
        return np.zeros(0, dtype=np.int64)
    isolated = (np.bincount(ti, minlength=len(t))[ti] == 1) & (np.bincount(pi, minlength=len(p))[pi] == 1)
    chosen = [np.flatnonzero(isolated)]
    hard = np.flatnonzero(~isolated)
    hard = hard[np.argsort(tk[ti[hard]], kind="stable")]
    bounds = np.flatnonzero(np.diff(tk[ti[hard]])) + 1
    for edges in np.split(hard, bounds) if hard.size else []:
        rows = np.unique(ti[edges])
        cols = np.unique(pi[edges])
        # matrix order (onset, offset, type, row) on both sides: only rows equal in all but their
        # position can swap places, so the counts do not depend on the order of the rows
        rank_t = {x: k for k, x in enumerate(rows[np.lexsort((rows, t.tcode[rows], t.offset[rows],
                                                              t.onset[rows]))].tolist())}
        rank_p = {x: k for k, x in enumerate(cols[np.lexsort((cols, p.tcode[cols], p.offset[cols],
                                                              p.onset[cols]))].tolist())}
        r = np.array([rank_t[x] for x in ti[edges].tolist()])
        c = np.array([rank_p[x] for x in pi[edges].tolist()])
        gain = np.zeros((len(rows), len(cols)))
        # one more pair outweighs any IoU sum (a sum is at most min(shape)): cardinality first, then IoU
        gain[r, c] = min(gain.shape) + 1 + w[edges]
        rr, cc = linear_sum_assignment(gain, maximize=True)
        edge_at = {(a, b): e for a, b, e in zip(r.tolist(), c.tolist(), edges.tolist())}
        chosen.append(np.array([edge_at[(a, b)] for a, b in zip(rr.tolist(), cc.tolist()) if gain[a, b] > 0],
                               dtype=np.int64))
    return np.sort(np.concatenate(chosen))


def _official_scope(t: _Intervals, tk: np.ndarray, p: _Intervals, pk: np.ndarray, t_sel: np.ndarray,
                    p_sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows the official scorer looks at, among the selected ones (see the module docstring)."""
    subj_t = t.subject if t.subject is not None else np.zeros(len(t), dtype=object)
    subj_p = p.subject if p.subject is not None else np.zeros(len(p), dtype=object)
    scored_subjects = pd.unique(subj_p[p_sel])
    t_in = t_sel & pd.Series(subj_t).isin(scored_subjects).to_numpy()
    p_in = p_sel & np.isin(pk, tk[t_in])
    return t_in, p_in


def _match_greedy(ti: np.ndarray, pi: np.ndarray, n_truth: int) -> np.ndarray:
    """The official rule: predictions in row order each take every still-free truth they reach."""
    order = np.lexsort((ti, pi))
    taken = np.zeros(n_truth, dtype=bool)
    chosen = []
    for e, g in zip(order.tolist(), ti[order].tolist()):
        if not taken[g]:
            taken[g] = True
            chosen.append(e)
    return np.array(sorted(chosen), dtype=np.int64)


@dataclass(frozen=True)
class SpotMatch:
    """Which truths were hit, missed or ignored, and which predictions were false alarms.

    ``pairs``: one row per hit (video, truth_row, pred_row, iou, type of the
    truth, pred_type, both intervals); in mode "official" a prediction may
    appear in several pairs. ``misses``, ``false_alarms``, ``ignored_truth``
    and ``ignored_predicted`` are the rows of the input tables (all their
    columns) with ``truth_row`` / ``pred_row`` added. ``timeline``: every
    interval of both tables once, with columns video, source ('truth' or
    'predicted'), row, onset, offset, type and outcome ('hit', 'miss',
    'false_alarm' or 'ignored'), sorted by video and onset: what a page colours.
    """

    mode: str
    iou: float
    pairs: pd.DataFrame
    misses: pd.DataFrame
    false_alarms: pd.DataFrame
    ignored_truth: pd.DataFrame
    ignored_predicted: pd.DataFrame
    timeline: pd.DataFrame


@dataclass(frozen=True)
class _Core:
    t: _Intervals
    p: _Intervals
    tk: np.ndarray
    pk: np.ndarray
    ti: np.ndarray  # candidate edges (typed in mode "mer", untyped in "official")
    pi: np.ndarray
    w: np.ndarray
    chosen: np.ndarray  # indices into the edges
    t_in: np.ndarray  # rows in scope
    p_in: np.ndarray


def _core(truth: pd.DataFrame, predicted: pd.DataFrame, iou: float, mode: str) -> _Core:
    _check_args(iou, mode)
    t = _intervals(truth, "truth", type_required=True)
    p = _intervals(predicted, "predicted", type_required=False)
    official = mode == "official"
    if official and (t.subject is None) != (p.subject is None):
        raise ScoringError("mode 'official' groups by subject: give a 'subject' column in both tables or in neither")
    tk, pk = _keys(t, p, by_subject=official)
    ti, pi, w = _candidates(t, tk, p, pk, float(iou), typed=not official)
    if official:
        t_in, p_in = _official_scope(t, tk, p, pk, np.ones(len(t), bool), np.ones(len(p), bool))
        inside = t_in[ti] & p_in[pi]
        ti, pi, w = ti[inside], pi[inside], w[inside]
        chosen = _match_greedy(ti, pi, len(t))
    else:
        t_in, p_in = np.ones(len(t), bool), np.ones(len(p), bool)
        chosen = _match_one_to_one(t, tk, p, ti, pi, w)
    return _Core(t, p, tk, pk, ti, pi, w, chosen, t_in, p_in)


def _rows(df: pd.DataFrame, rows: np.ndarray, col: str) -> pd.DataFrame:
    out = df.iloc[rows].reset_index(drop=True)
    out.insert(0, col, rows.astype(np.int64))
    return out


def match_spots(truth: pd.DataFrame, predicted: pd.DataFrame, *, iou: float = 0.5, mode: str = "mer") -> SpotMatch:
    """Hits, misses and false alarms per video under the rule of ``mode`` (see the module docstring)."""
    c = _core(truth, predicted, iou, mode)
    t, p = c.t, c.p
    ti, pi = c.ti[c.chosen], c.pi[c.chosen]
    types = np.array(TYPES + (None,), dtype=object)
    pairs = pd.DataFrame({
        "video": t.video[ti], "truth_row": ti, "pred_row": pi, "iou": c.w[c.chosen],
        "type": types[t.tcode[ti]], "pred_type": types[p.tcode[pi]],
        "truth_onset": t.onset[ti], "truth_offset": t.offset[ti],
        "pred_onset": p.onset[pi], "pred_offset": p.offset[pi],
    }).sort_values(["video", "truth_onset", "truth_row", "pred_row"], kind="stable").reset_index(drop=True)
    hit_t, hit_p = np.bincount(ti, minlength=len(t)) > 0, np.bincount(pi, minlength=len(p)) > 0
    outcome_t = np.where(hit_t, "hit", np.where(c.t_in, "miss", "ignored"))
    outcome_p = np.where(hit_p, "hit", np.where(c.p_in, "false_alarm", "ignored"))
    timeline = pd.concat([
        pd.DataFrame({"video": t.video, "source": "truth", "row": np.arange(len(t)), "onset": t.onset,
                      "offset": t.offset, "type": types[t.tcode], "outcome": outcome_t}),
        pd.DataFrame({"video": p.video, "source": "predicted", "row": np.arange(len(p)), "onset": p.onset,
                      "offset": p.offset, "type": types[p.tcode], "outcome": outcome_p}),
    ], ignore_index=True)
    timeline = timeline.sort_values(["video", "onset", "source", "row"], kind="stable").reset_index(drop=True)
    return SpotMatch(
        mode=mode, iou=float(iou), pairs=pairs,
        misses=_rows(truth, np.flatnonzero(c.t_in & ~hit_t), "truth_row"),
        false_alarms=_rows(predicted, np.flatnonzero(c.p_in & ~hit_p), "pred_row"),
        ignored_truth=_rows(truth, np.flatnonzero(~c.t_in), "truth_row"),
        ignored_predicted=_rows(predicted, np.flatnonzero(~c.p_in), "pred_row"),
        timeline=timeline[_TIMELINE_COLUMNS],
    )


# --- figures -------------------------------------------------------------------
def _prf(tp: int, fp: int, fn: int, official: bool) -> dict:
    def div(a: float, b: float) -> float:
        return a / b if b else (0.0 if official else math.nan)

    precision, recall = div(tp, tp + fp), div(tp, tp + fn)
    if official:
        f1 = div(2 * precision * recall, precision + recall)
    else:
        f1 = div(2 * tp, 2 * tp + fp + fn)
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f1}


def _counts_mer(c: _Core) -> tuple[dict, int]:
    t, p = c.t, c.p
    ti, pi = c.ti[c.chosen], c.pi[c.chosen]
    hit_t, hit_p = np.bincount(ti, minlength=len(t)) > 0, np.bincount(pi, minlength=len(p)) > 0
    out = {"overall": _prf(len(ti), int((~hit_p).sum()), int((~hit_t).sum()), False)}
    for k, name in enumerate(TYPES):
        out[name] = _prf(int((t.tcode[ti] == k).sum()), int(((p.tcode == k) & ~hit_p).sum()),
                         int(((t.tcode == k) & ~hit_t).sum()), False)
    return out, int(((p.tcode < 0) & ~hit_p).sum())


def _counts_official(c: _Core, t_sel: np.ndarray, p_sel: np.ndarray) -> dict:
    t_in, p_in = _official_scope(c.t, c.tk, c.p, c.pk, t_sel, p_sel)
    inside = t_in[c.ti] & p_in[c.pi]
    chosen = _match_greedy(c.ti[inside], c.pi[inside], len(c.t))
    tp = len(chosen)
    fp = int(p_in.sum()) - len(np.unique(c.pi[inside][chosen]))
    fn = int(t_in.sum()) - tp
    return _prf(tp, fp, fn, True)


def _recognition(c: _Core, mode: str, classes: list[str] | None) -> dict | None:
    t, p = c.t, c.p
    if t.label is None or p.label is None:
        return None
    ti, pi = c.ti[c.chosen], c.pi[c.chosen]
    labelled = np.array([x is not None for x in t.label[ti]], dtype=bool)
    ti, pi = ti[labelled], pi[labelled]
    missing = [i for i in pi.tolist() if p.label[i] is None]
    if missing:
        i = missing[0]
        raise ScoringError(f"{_where('predicted', i, p.video[i])}: label is missing on a spotted interval "
                           "that hit a labelled truth; expected the recognised class")
    y_true, y_pred = t.label[ti].tolist(), p.label[pi].tolist()
    truth_classes = sorted({x for x in t.label.tolist() if x is not None})
    if mode == "official":
        return _recognition_official(y_true, y_pred, truth_classes)
    names = list(classes) if classes is not None else sorted(set(truth_classes) | set(y_pred))
    index = {name: k for k, name in enumerate(names)}
    unknown = sorted(set(y_true + y_pred) - set(index))
    if unknown:
        raise ScoringError(f"labels {unknown} are not among the given classes {names}")
    s = recognition_scores([index[y] for y in y_true], [index[y] for y in y_pred], names)
    return {"f1": s.uf1, "uf1": s.uf1, "uar": s.uar, "accuracy": s.accuracy, "n": s.n, "classes": names,
            "per_class_f1": s.f1}


def _recognition_official(y_true: list[str], y_pred: list[str], emotions: list[str]) -> dict:
    """The script's analysis figures: one-vs-rest counts per class on the true-positive pairs.

    As the script does: a class whose one-vs-rest table has a single value on
    both sides (every pair, or no pair, is that class on both sides; also no
    pair at all) counts TP = FP = FN = 0; a zero denominator gives 0; F1 is
    the harmonic mean of the mean precision and mean recall (NaN when both
    are 0); "UAR" is the mean precision.
    """
    yt, yp = np.array(y_true, dtype=object), np.array(y_pred, dtype=object)
    keep = np.isin(yt, emotions)
    yt, yp = yt[keep], yp[keep]
    per_class = []
    for e in emotions:
        gt, pr = yt == e, yp == e
        if len(set(gt.tolist()) | set(pr.tolist())) == 2:
            per_class.append(_prf(int((gt & pr).sum()), int((~gt & pr).sum()), int((gt & ~pr).sum()), True))
        else:
            per_class.append(_prf(0, 0, 0, True))
    mp, mr, uf1 = (float(np.mean([s[k] for s in per_class])) for k in ("precision", "recall", "f1"))
    return {"f1": 2 * mp * mr / (mp + mr) if mp + mr else math.nan, "precision": mp, "recall": mr,
            "uf1": uf1, "uar": mp, "n": int(len(yt)), "classes": list(emotions)}


def strs(spot_f1: float, recognition_f1: float) -> float:
    """Spot-then-recognise score: spotting F1 x recognition F1 (NaN if either is undefined)."""
    for name, v in (("spot_f1", spot_f1), ("recognition_f1", recognition_f1)):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not (math.isnan(v) or 0 <= v <= 1):
            raise ScoringError(f"{name}={v!r} is not an F1 in [0, 1] (or NaN)")
    return float(spot_f1) * float(recognition_f1)


def score_spots(truth: pd.DataFrame, predicted: pd.DataFrame, *, iou: float = 0.5, mode: str = "mer",
                classes: list[str] | None = None) -> dict:
    """Spotting precision, recall and F1 per type and overall, pooled over videos; recognition and STRS.

    Returns ``{"mode", "iou", "videos", "overall", "micro", "macro",
    "untyped_false_alarms", "ignored_truth", "ignored_predicted",
    "recognition", "strs"}``. Each of overall/micro/macro holds tp, fp, fn,
    precision, recall, f1. ``recognition`` (None unless both tables have a
    ``label`` column) scores the predicted label of every true-positive pair
    whose truth has a label: in mode "mer" UF1/UAR from the one metrics core
    over ``classes`` (default: every truth label and every predicted label on
    a hit), ``f1`` = UF1; in mode "official" the script's figures. ``strs`` =
    overall spotting F1 x recognition ``f1`` (None without labels).
    """
    c = _core(truth, predicted, iou, mode)
    official = mode == "official"
    if official:
        every_t, every_p = np.ones(len(c.t), bool), np.ones(len(c.p), bool)
        figures = {"overall": _counts_official(c, every_t, every_p)}
        for k, name in enumerate(TYPES):
            figures[name] = _counts_official(c, c.t.tcode == k, (c.p.tcode == k) | (c.p.tcode < 0))
        untyped = 0
    else:
        figures, untyped = _counts_mer(c)
    rec = _recognition(c, mode, classes)
    return {
        "mode": mode, "iou": float(iou),
        "videos": int(len(np.unique(np.concatenate([c.tk, c.pk])))),
        **figures,
        "untyped_false_alarms": untyped,
        "ignored_truth": int((~c.t_in).sum()), "ignored_predicted": int((~c.p_in).sum()),
        "recognition": rec,
        "strs": None if rec is None else strs(figures["overall"]["f1"], rec["f1"]),
    }
