"""Orchestration, the top floor of the library: the job queue in the run store,
the worker process that runs one job, plans and time estimates, and the demo
jobs. It calls training and explain; nothing in the library imports it."""
