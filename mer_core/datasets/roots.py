"""Where licensed datasets live on this machine: configured in one place.

Lookup order for a dataset ``NAME``:

1. the environment variable ``MER_ROOT_<NAME>`` (upper case, '-' -> '_'),
2. ``[roots]`` in ``datasets.toml`` (``$MER_DATASETS_TOML`` or the cache root),

never a hard-coded path. The dashboard's Datasets page writes the same file.
"""
from __future__ import annotations

import os
from pathlib import Path

from mer_core.errors import DatasetError
from mer_core.paths import cache_root

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def config_path() -> Path:
    env = os.environ.get("MER_DATASETS_TOML")
    return Path(env) if env else cache_root() / "datasets.toml"


def _env_key(name: str) -> str:
    return "MER_ROOT_" + name.upper().replace("-", "_")


def configured_roots() -> dict[str, str]:
    """All configured roots: the file's entries overridden by environment variables."""
    roots: dict[str, str] = {}
    path = config_path()
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not valid TOML ({exc}); expected a [roots] table of name = \"path\"") from exc
        roots.update({str(k): str(v) for k, v in (data.get("roots") or {}).items()})
    for key, value in os.environ.items():
        if key.startswith("MER_ROOT_") and value:
            roots[key[len("MER_ROOT_"):].lower()] = value
    return roots


def dataset_root(name: str) -> Path:
    """The configured root of a dataset, or a message saying how to set it."""
    roots = configured_roots()
    key = name.lower().replace("-", "_")
    value = roots.get(name) or roots.get(key)
    if not value:
        raise DatasetError(
            f"no root configured for dataset {name!r}: set {_env_key(name)}=/path/to/{name} "
            f"or add `{name} = \"/path\"` under [roots] in {config_path()}"
        )
    root = Path(value).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset {name!r}: configured root {root} does not exist")
    return root


def set_dataset_root(name: str, root: str | Path) -> Path:
    """Record a dataset root in ``datasets.toml`` (keeps the other entries)."""
    path = config_path()
    roots = {}
    if path.exists():
        roots = {str(k): str(v) for k, v in (tomllib.loads(path.read_text(encoding="utf-8")).get("roots") or {}).items()}
    roots[name] = str(Path(root).expanduser())
    lines = ["# Dataset roots for MER Bench (written by `mer datasets set-root` and the dashboard)", "[roots]"]
    lines += [f"{k} = {_toml_str(v)}" for k, v in sorted(roots.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
