"""Spotting micro- and macro-expressions in long videos, under LOSO, honestly scored.

Layer: above ``explain`` (spot-then-recognise classifies spotted intervals
with a stored recognition run), below ``jobs`` (a spotting run is a job kind).

* :mod:`.scoring`: the scorer (IoU >= 0.5, one-to-one matching, P/R/F1 per
  type, STRS, the official script's compatibility mode);
* :mod:`.tables`: the two tables every long-video dataset becomes (videos and
  intervals) and their validation;
* :mod:`.source`: streamed frames of a video file or a frame folder;
* :mod:`.synthetic_long`: the synthetic long-video variant;
* :mod:`.indexers`: CAS(ME)^2, SAMM long videos, CAS(ME)^3 long recordings
  and the generic long-video manifest (``index_long(name, root, **options)``);
* :mod:`.check`: the dataset check of a long-video dataset (``mer datasets check``);
* :mod:`.features`, :mod:`.spotters`, :mod:`.loso`: the motion-curve and the
  learned spotter, with thresholds chosen on the training subjects only
  (``run_spotting(SpotConfig(...))``; ``load_scores(run, fold)`` for a timeline);
* :mod:`.recognise`: spot, then recognise with a stored run;
* :mod:`.chance`: the chance floor (a run's intervals placed at random, scored alike).

Reads for a page: ``RunStore.list_spot_runs()``, ``get_spot_run(id)`` (config,
videos, summary with the per-subject table and each fold's chosen threshold),
``spot_folds(id)``, ``spot_intervals(id)`` (truth and predicted intervals,
recognised labels) and :func:`.scoring.match_spots` (hits, misses, false alarms).
See docs/spotting.md.
"""
