"""Where licensed datasets live on this machine: configured in one place.

Lookup order for a dataset ``NAME``:

1. the environment variable ``MER_ROOT_<NAME>`` (upper case, '-' -> '_'),
2. ``[roots]`` in ``datasets.toml`` (``$MER_DATASETS_TOML`` or the cache root),

never a hard-coded path. The dashboard's Datasets page writes the same file,
atomically (a temporary file beside it, then a rename), so a full disk or a
crash mid-write leaves the previous file whole.
"""
from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from mer_core.errors import DatasetError
from mer_core.paths import cache_root


def config_path() -> Path:
    env = os.environ.get("MER_DATASETS_TOML")
    return Path(env) if env else cache_root() / "datasets.toml"


def _env_key(name: str) -> str:
    return "MER_ROOT_" + name.upper().replace("-", "_")


def _read_config(path: Path) -> dict[str, Any]:
    """``datasets.toml`` parsed ({} when the file does not exist)."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid TOML ({exc}); expected a [roots] table of name = \"path\"") from exc


def _roots(data: dict[str, Any]) -> dict[str, str]:
    """The ``[roots]`` table of a parsed ``datasets.toml``."""
    return {str(k): str(v) for k, v in (data.get("roots") or {}).items()}


def configured_roots() -> dict[str, str]:
    """All configured roots: the file's entries overridden by environment variables."""
    roots = _roots(_read_config(config_path()))
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
    """Record a dataset root in ``datasets.toml`` (keeps the other entries); returns the file."""
    path = config_path()
    old = _read_config(path)
    roots = _roots(old)
    roots[name] = str(Path(root).expanduser())
    data: dict[str, Any] = {"roots": dict(sorted(roots.items()))}
    bases = (old.get("allowed") or {}).get("bases")
    if bases and isinstance(bases, list):  # the folders the dashboard may read (mer datasets allow) are kept
        data["allowed"] = {"bases": [str(b) for b in bases]}
    write_atomic(path, "# Dataset roots for MER Bench (written by `mer datasets set-root` and the dashboard)\n"
                 + tomli_w.dumps(data))
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    A failure (full disk, no permission) leaves ``path`` as it was and no
    temporary file behind, and raises :class:`DatasetError` naming the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644)  # mkstemp makes it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DatasetError(f"{path}: cannot save ({exc}); the file is left as it was") from exc
