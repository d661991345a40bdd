"""MLflow export to a tracking server that does not answer gives up within about 10 s and says so
(MLflow's own retries would take over 4 minutes), leaving the user's MLflow settings alone."""
from __future__ import annotations

import os
import socket
import time

import pytest

pytest.importorskip("mlflow")

from mer_core.cli import main  # noqa: E402
from mer_core.errors import MerError  # noqa: E402
from mer_core.evaluation.export import run_record  # noqa: E402
from mer_core.evaluation.mlflow_export import log_run  # noqa: E402
from test_results_pages import store_fixture_run  # noqa: E402


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_a_dead_tracking_server_is_given_up_on_within_seconds(capsys, monkeypatch):
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    rid = store_fixture_run("mlf-dead", subjects=3, per_subject=2)
    uri = f"http://127.0.0.1:{_dead_port()}"
    t0 = time.monotonic()
    with pytest.raises(MerError) as err:
        log_run(run_record(rid, n_boot=20), tracking_uri=uri)
    took = time.monotonic() - t0
    assert took < 20, f"gave up only after {took:.0f} s"
    text = str(err.value)
    assert uri in text and "did not answer" in text and "tries" in text and "--tracking-uri" in text
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # nothing left behind in the environment
    t0 = time.monotonic()
    assert main(["export", rid, "--format", "mlflow", "--tracking-uri", uri]) == 2
    assert time.monotonic() - t0 < 20 and "did not answer" in capsys.readouterr().err
