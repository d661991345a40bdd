"""The live ETA: the job's own throughput after its first folds, never swinging over 2x after two."""
from __future__ import annotations

import pytest

from mer_core.jobs.eta import MAX_SWING, EtaEstimator


def simulate(fold_seconds: list[float], epochs: int = 4, done_before: int = 0):
    """Feed a sequential job's events; (time, folds done, implied total = elapsed + ETA) at every update."""
    n = len(fold_seconds) + done_before
    est = EtaEstimator(n)
    est.start(0.0, done_before)
    t, done, out = 0.0, done_before, []
    for secs in fold_seconds:
        for e in range(1, epochs + 1):
            now = t + secs * e / epochs
            p = (done + e / epochs) / n
            if e == epochs:
                done += 1
                est.fold_done(now, done)
                p = done / n
            eta = est.eta(now, p)
            out.append((now, done, None if eta is None else now + eta))
        t += secs
    return out


@pytest.mark.parametrize("folds", [
    [1, 1, 10, 10, 10, 10, 10, 10],  # the job gets 10x slower after two folds
    [10, 10, 1, 1, 1, 1, 1, 1, 1, 1],  # ... or 10x faster
    [1, 5, 1, 5, 1, 5, 20, 1, 1],  # erratic
    [3, 0.5, 0.5, 0.5, 4, 0.5, 0.5],
])
def test_the_eta_never_swings_over_2x_once_two_folds_are_done(folds):
    updates = simulate(folds)
    after = [total for _, done, total in updates if done >= 2]
    swings = [b / a for a, b in zip(after, after[1:])]
    assert max(swings) <= MAX_SWING + 1e-9 and min(swings) >= 1 / MAX_SWING - 1e-9
    assert all(t is not None for _, done, t in updates if done >= 1)
    assert after[-1] == pytest.approx(sum(folds))  # and it still ends on the truth


def test_steady_folds_give_the_true_remaining_time():
    updates = simulate([2.0] * 10)
    for now, done, total in updates:
        if done >= 1:
            assert total == pytest.approx(20.0)  # 10 folds x 2 s, measured from the job itself


def test_before_any_fold_the_progress_so_far_is_used():
    est = EtaEstimator(4)
    est.start(0.0)
    assert est.eta(0.0, 0.0) is None
    assert est.eta(5.0, 0.125) == pytest.approx(35.0)  # half a fold in 5 s: 3.5 folds left


def test_a_resumed_job_counts_only_the_folds_of_this_attempt():
    updates = simulate([3.0] * 4, done_before=4)  # 4 folds stored by an earlier attempt
    now, done, total = updates[3]  # the first fold of this attempt just finished
    assert done == 5 and total == pytest.approx(12.0)  # 4 folds x 3 s from the restart, not 8 folds


def test_the_eta_is_zero_at_the_end():
    est = EtaEstimator(2)
    est.start(0.0)
    est.fold_done(1.0, 1)
    est.fold_done(2.0, 2)
    assert est.eta(2.0, 1.0) == 0.0


class _Store:
    """What the worker's progress writes touch: the job row's fields, and no fold stored yet."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def update_job(self, job_id, **fields) -> None:
        self.rows.append(fields)

    def completed_folds(self, run_id) -> set:
        return set()


@pytest.mark.parametrize("change, epoch, progress", [
    ({}, 2, 1 / 2 * 2 / 4),  # fold 1 of 2, half its epochs
    ({"seeds_per_fold": 2}, 4, 1 / 2 * 1 / 2),  # the first of two models done
    ({"selection": "nested", "nested_folds": 3}, 2, 1 / 2 * (2 + 2 / 4) / 3),  # 3 inner fits = 2 fits' worth done
    ({"selection": "nested", "nested_folds": 4, "seeds_per_fold": 2}, 4, 1 / 2 * (3 + 1) / 5),
])
def test_the_worker_reports_a_folds_share_of_all_its_models(change, epoch, progress):
    from mer_core.config import ExperimentConfig
    from mer_core.jobs.worker import JobRunner

    runner = JobRunner(_Store(), "job")
    runner.job = {"run_id": "r", "config_json": ExperimentConfig(epochs=4).replace(**change).to_json()}
    runner.progress({"event": "fold_start", "fold": 0, "n_folds": 2, "name": "s0"})
    runner._last_write = 0.0  # progress writes are throttled to two a second: this one is not skipped
    runner.progress({"event": "epoch", "fold": 0, "n_folds": 2, "epoch": epoch, "epochs": 4, "train_loss": 0.5})
    assert runner.store.rows[-1]["progress"] == pytest.approx(progress)  # reported by the first model
