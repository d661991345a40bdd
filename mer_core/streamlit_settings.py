"""The project's Streamlit settings (``.streamlit/config.toml``), readable from any folder.

Streamlit reads ``.streamlit/config.toml`` only from the working directory, so a dashboard
started elsewhere would send usage statistics and ignore the upload limit. ``mer dashboard``
passes every setting as a flag (:func:`settings_flags`) and the app applies those nobody gave
(``dashboard.server.apply_project_settings``). Ground floor: the CLI and the dashboard use it.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mer_core.errors import ConfigError
from mer_core.paths import repo_root


def settings_file() -> Path:
    return repo_root() / ".streamlit" / "config.toml"


def project_settings() -> dict[str, Any]:
    """The file's settings as ``{"section.key": value}`` (empty when the file is missing)."""
    path = settings_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); expected Streamlit's config.toml") from None
    return {f"{section}.{key}": value for section, table in data.items() if isinstance(table, dict)
            for key, value in table.items()}


def settings_flags(overrides: dict[str, Any] | None = None) -> list[str]:
    """``streamlit run`` flags for every setting of the file, ``overrides`` winning (and added when new)."""
    merged = {**project_settings(), **(overrides or {})}
    flags: list[str] = []
    for name, value in merged.items():
        flags += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags
