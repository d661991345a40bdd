"""Persistence, one floor above errors/paths/config: the SQLite run store
(runs, folds, epochs, predictions, jobs rows) and the run folders beside it.
It knows nothing about training; everything above writes and reads through it."""
