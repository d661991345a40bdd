"""Bound beyond localhost, the dashboard asks for a token; `mer dashboard` always names its bind address."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from mer_core.cli import main
from mer_core.cli.cmd_dashboard import is_loopback, streamlit_command


def _gated_app() -> None:
    import streamlit as st

    from dashboard import access

    if access.gate():
        st.text("the dashboard itself")


def _texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def test_no_token_needed_on_localhost(monkeypatch):
    monkeypatch.delenv("MER_ACCESS_TOKEN", raising=False)
    at = AppTest.from_function(_gated_app).run()
    assert "the dashboard itself" in _texts(at)


def test_a_token_is_required_when_one_is_set(monkeypatch):
    monkeypatch.setenv("MER_ACCESS_TOKEN", "s3cret-token")
    at = AppTest.from_function(_gated_app).run()
    assert "the dashboard itself" not in _texts(at) and at.text_input
    at.text_input[0].set_value("wrong").run()
    assert "the dashboard itself" not in _texts(at) and at.error
    at.text_input[0].set_value("s3cret-token").run()
    assert "the dashboard itself" in _texts(at)
    linked = AppTest.from_function(_gated_app)
    linked.query_params["token"] = "s3cret-token"
    assert "the dashboard itself" in _texts(linked.run())


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                        ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_loopback_detection(host, loop):
    assert is_loopback(host) is loop


def test_mer_dashboard_binds_explicitly_and_prints_a_token_beyond_localhost(capsys, monkeypatch):
    monkeypatch.delenv("MER_ACCESS_TOKEN", raising=False)
    assert main(["dashboard", "--print-command"]) == 0
    out = capsys.readouterr().out
    assert "--server.address 127.0.0.1" in out and "token" not in out
    assert main(["dashboard", "--host", "0.0.0.0", "--port", "8600", "--print-command"]) == 0
    out = capsys.readouterr().out
    assert "?token=" in out and "--server.address 0.0.0.0" in out and "--client.showErrorDetails type" in out
    cmd = streamlit_command("127.0.0.1", 8501, public=False)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"


def test_the_real_app_shows_nothing_but_the_token_box_without_the_token(monkeypatch, isolated_cache):
    from pathlib import Path

    monkeypatch.setenv("MER_ACCESS_TOKEN", "s3cret-token")
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60).run()
    assert not at.exception
    assert len(at.text_input) == 1 and at.text_input[0].label == "access token"
    assert not at.sidebar.radio  # not even the sidebar of the pages
