"""Preprocessing: clips -> cached model inputs.

Layer: above datasets (it reads their tables), below models (which import
only its channel vocabulary).

* :mod:`.pipeline` -- ``prepare_inputs`` (the entry point: cache, process pool,
  report) and ``sample_views`` (one sample's pictures for the dashboard);
* :mod:`.sample` -- one sample's steps in order, precomputed inputs;
* :mod:`.face` (Haar detection, eye-line alignment, one crop per clip),
  :mod:`.apex` (apex spotting), :mod:`.flow` (TV-L1 / DIS / Farneback, strain,
  colour wheel, flow-image convention), :mod:`.magnify` (Eulerian video
  magnification), :mod:`.cache` (content-addressed entries);
* :mod:`.channels` -- the channel vocabulary and normalisation.

Importing this package is cheap (no OpenCV): the models import ``channels``.
"""
