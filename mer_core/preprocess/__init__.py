"""Preprocessing: clips -> cached model inputs (see pipeline.prepare_inputs)."""
