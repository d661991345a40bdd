"""Training, above evaluation: one training loop (trainer), losses, the LOSO /
composite / holdout protocols, pre-training as a call of that loop, the fold
executors and the engine that turns a config into a stored run."""
