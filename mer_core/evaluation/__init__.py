"""Evaluation, above models and below training: pooled UF1/UAR and per-group
metrics, bootstrap intervals and paired tests, the leaderboard of published
results, and the export of a stored run (it reads the store, never trains)."""
