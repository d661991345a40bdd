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


def _token_in_url(out: str) -> str:
    import re

    return re.search(r"\?token=(\S+)", out).group(1)


@pytest.mark.parametrize("given", [None, "", "   "])
def test_the_printed_command_carries_the_token(capsys, monkeypatch, given):
    """Copied into a shell, the printed command starts a server that asks for the token printed above it."""
    import shlex

    if given is None:
        monkeypatch.delenv("MER_ACCESS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MER_ACCESS_TOKEN", given)  # empty or blank: a new token, never an open server
    assert main(["dashboard", "--host", "0.0.0.0", "--port", "8600", "--print-command"]) == 0
    out = capsys.readouterr().out
    token = _token_in_url(out)
    assert len(token) >= 16
    words = shlex.split(out.strip().splitlines()[-1])
    assert words[0] == f"MER_ACCESS_TOKEN={token}"
    assert words[words.index("--server.address") + 1] == "0.0.0.0"


def test_a_token_from_the_environment_is_kept(capsys, monkeypatch):
    import shlex

    monkeypatch.setenv("MER_ACCESS_TOKEN", "my shared secret")
    assert main(["dashboard", "--host", "192.168.1.5", "--print-command"]) == 0
    out = capsys.readouterr().out
    assert shlex.split(out.strip().splitlines()[-1])[0] == "MER_ACCESS_TOKEN=my shared secret"


def _start(tmp_path, address: str, token: str | None) -> "subprocess.Popen[str]":
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MER_CACHE": str(tmp_path)}
    env.pop("MER_ACCESS_TOKEN", None)
    if token is not None:
        env["MER_ACCESS_TOKEN"] = token
    cmd = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"),
           "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"]
    if address:
        cmd += ["--server.address", address]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    proc.port = port  # type: ignore[attr-defined]
    return proc


@pytest.mark.parametrize("address, token", [("0.0.0.0", None), ("0.0.0.0", ""), ("0.0.0.0", "  "), ("", None)])
def test_the_app_refuses_to_start_open_beyond_localhost(tmp_path, address, token):
    """`streamlit run dashboard/app.py` bound beyond loopback (or to every interface, the default when no
    address is given) without a token exits with a message instead of serving everyone."""
    import subprocess

    proc = _start(tmp_path, address, token)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the server started open on {address or 'every interface'}: {out[-500:]}")
    assert proc.returncode != 0
    assert "MER_ACCESS_TOKEN" in out and "refuse" in out and "Traceback" not in out


def test_the_app_starts_beyond_localhost_with_a_token(tmp_path):
    import time
    import urllib.request

    proc = _start(tmp_path, "0.0.0.0", "s3cret-token-for-the-test")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the server with a token did not start")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:
            proc.kill()
