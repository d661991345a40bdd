"""The benchmark suite (``mer bench``) and its report: what this machine kind measured.

Layer: above ``spotting`` (the suite runs LOSOs, pre-training and
preprocessing through the library), below ``jobs`` (the job time estimate
reads the report).

* :mod:`.bench`: the suite's sections and runner;
* :mod:`.bench_report`: the report's schema, machine description, where the
  reports live and the tables made from them;
* :mod:`.proctree`: CPU seconds and peak memory of a whole process tree.

The committed reports ship as package data in ``data/``
(:func:`mer_core.paths.bench_results_dir`).
"""
