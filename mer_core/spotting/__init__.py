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
  and the generic long-video manifest;
* :mod:`.features`, :mod:`.spotters`, :mod:`.loso`: the motion-curve and the
  learned spotter, with thresholds chosen on the training subjects only;
* :mod:`.recognise`: spot, then recognise with a stored run.
"""
