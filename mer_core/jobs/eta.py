"""The live ETA of a running job, from the job's own measured throughput.

Before any fold of this attempt has finished, the ETA extrapolates the time
since training started over the progress made. Once folds finish, the job's
own throughput takes over: seconds per fold = time since training started /
folds finished since then (this is a throughput, so folds finishing two at a
time in a pool count right), and the ETA is the remaining share of folds at
that rate.

Stability: from the second finished fold of the attempt on, the implied
total duration (elapsed + ETA) of each update is kept within a factor
:data:`MAX_SWING` of the previous update's, so the estimate never swings by
more than 2x from one update to the next whatever the fold times do (a job
that really slows down is followed, at most doubling per update; updates
come once per epoch). The one exception: an update that arrives after more
than twice the previous total has already elapsed reports ETA 0 at the
elapsed time, which is more than 2x; the bound cannot hold against the clock.

Within a fold, only the fold's first model reports its epochs. A fold that
trains several models (nested epoch choice first, extra seeds after:
``mer_core.jobs.plan.training_passes``) has done only part of its work at
that model's last epoch; :func:`fold_share` says how much.
"""
from __future__ import annotations

MAX_SWING = 2.0


def fold_share(epoch: float, epochs: int, passes: float = 1.0, inner: float = 0.0) -> float:
    """The share (0..1) of a fold's training done when its first model reports ``epoch`` of ``epochs``.

    The fold trains ``passes`` fits' worth: first ``inner`` of them (the inner
    fits of nested selection, which report no epochs), then the first model,
    then the other seeds' models (which report none either).
    """
    total = max(float(passes), 1.0)
    return min((max(float(inner), 0.0) + float(epoch) / max(int(epochs), 1)) / total, 1.0)


class EtaEstimator:
    """``start(t, folds_done)``, ``fold_done(t, folds_done)``, ``eta(t, progress)`` (seconds or None)."""

    def __init__(self, n_folds: int) -> None:
        self.n_folds = max(int(n_folds), 1)
        self.t0: float | None = None
        self.p0 = 0.0
        self.done0 = 0
        self.s_per_fold: float | None = None
        self.last_total: float | None = None  # implied total of the last update, once two folds are done

    def start(self, t: float, folds_done: int = 0) -> None:
        """Training starts (``folds_done`` already stored by an earlier attempt)."""
        self.t0 = t
        self.done0 = folds_done
        self.p0 = folds_done / self.n_folds

    def fold_done(self, t: float, folds_done: int) -> None:
        """A fold finished; ``folds_done`` counts every stored fold (earlier attempts included)."""
        if self.t0 is None:
            self.start(t, max(folds_done - 1, 0))
        new = folds_done - self.done0
        if new >= 1 and t > self.t0:
            self.s_per_fold = (t - self.t0) / new
        if new >= 2 and self.last_total is None:
            self.last_total = (t - self.t0) + self._raw(t, folds_done / self.n_folds)

    def _raw(self, t: float, progress: float) -> float | None:
        remaining = max(1.0 - progress, 0.0)
        if self.s_per_fold is not None:
            return remaining * self.n_folds * self.s_per_fold
        if self.t0 is not None and progress > self.p0 and t > self.t0:
            return (t - self.t0) * remaining / (progress - self.p0)
        return None

    def eta(self, t: float, progress: float) -> float | None:
        """Seconds left at time ``t`` with ``progress`` (0..1, folds done + the running fold's share)."""
        if progress >= 1.0:
            return 0.0
        raw = self._raw(t, progress)
        if raw is None or self.t0 is None:
            return raw
        if self.last_total is None:
            return max(raw, 0.0)
        elapsed = t - self.t0
        total = min(max(elapsed + raw, self.last_total / MAX_SWING), self.last_total * MAX_SWING)
        self.last_total = max(total, elapsed)
        return self.last_total - elapsed
