"""Streamlit settings do not depend on the folder the dashboard starts from.

``.streamlit/config.toml`` is read by Streamlit only from the working directory. Every entry
point therefore passes the settings itself: ``mer dashboard`` (and the command it prints) as
flags read from that file, ``make demo`` through STREAMLIT_FLAGS, and the app, served by a bare
``streamlit run`` from elsewhere, applies the file's settings that nobody gave.
"""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from mer_core.cli.cmd_dashboard import streamlit_command

REPO = Path(__file__).resolve().parents[1]
SETTINGS = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
SAFETY = [(s, k) for s in ("server", "browser", "client") for k in SETTINGS.get(s, {})]


def _flag_value(words: list[str], key: str) -> str:
    assert f"--{key}" in words, f"--{key} is not passed"
    return words[words.index(f"--{key}") + 1]


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_mer_dashboard_passes_every_setting_of_the_config_file():
    words = streamlit_command("127.0.0.1", 8600, public=False)
    for section, table in SETTINGS.items():
        for key, value in table.items():
            if (section, key) == ("server", "port"):
                assert _flag_value(words, "server.port") == "8600"
            else:
                assert _flag_value(words, f"{section}.{key}") == _text(value), f"{section}.{key}"
    public = streamlit_command("0.0.0.0", 8600, public=True)
    assert _flag_value(public, "server.address") == "0.0.0.0" and _flag_value(public, "client.showErrorDetails") == "type"
    assert public.count("--client.showErrorDetails") == 1


def test_make_demo_passes_the_server_browser_and_client_settings():
    makefile = (REPO / "Makefile").read_text()
    line = re.search(r"^STREAMLIT_FLAGS\s*:?=(.*)$", makefile.replace("\\\n", " "), re.M).group(1)
    words = shlex.split(line.replace("$(PORT)", "8501"))
    for section, key in SAFETY:
        assert _flag_value(words, f"{section}.{key}") == _text(SETTINGS[section][key]), f"{section}.{key}"
    assert "streamlit run dashboard/app.py $(STREAMLIT_FLAGS)" in makefile


def test_the_app_applies_the_settings_nobody_gave(monkeypatch, tmp_path):
    """Served by `streamlit run /path/dashboard/app.py` from another folder, with only a port given."""
    from streamlit import config

    from dashboard import server

    monkeypatch.chdir(tmp_path)
    config.get_config_options(force_reparse=True, options_from_flags={"server.port": 8777})
    assert config.get_option("browser.gatherUsageStats") is True  # what Streamlit would do from here
    try:
        applied = server.apply_project_settings()
        assert config.get_option("browser.gatherUsageStats") is False
        assert config.get_option("server.maxUploadSize") == SETTINGS["server"]["maxUploadSize"]
        assert config.get_option("client.toolbarMode") == "minimal"
        assert config.get_option("server.port") == 8777  # given: kept
        assert "server.port" not in applied and "browser.gatherUsageStats" in applied
        assert config.get_option("server.address") in ("", None)  # the bind is fixed by then: never rewritten
    finally:
        monkeypatch.chdir(REPO)
        config.get_config_options(force_reparse=True, options_from_flags={})
