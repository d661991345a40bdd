"""Which folders a path typed into the browser may name.

The dashboard runs with the rights of whoever started it; a text box must not
let a visitor point it at ``/etc`` or read ``/etc/shadow`` as a manifest. Paths
that come from the browser (a dataset root, a manifest, and every file a
manifest lists) must lie under an *allowed base*, resolved with symlinks
before the check. Only the person starting the server sets the bases:

1. ``MER_ALLOWED_ROOTS`` (folders separated by ``os.pathsep``),
2. ``[allowed] bases = [...]`` in ``datasets.toml``, edited by
   ``mer datasets allow DIR`` (the CLI, never the dashboard),
3. always: the cache root (the synthetic sets live there) and the roots
   configured for the licensed datasets (``MER_ROOT_*``, ``[roots]``).

The CLI is not restricted: a person at the shell already has their own rights.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Iterable

import pandas as pd
import tomli_w

from mer_core.datasets.roots import config_path, configured_roots, write_atomic
from mer_core.errors import DatasetError
from mer_core.paths import cache_root

PATH_COLUMNS = ("flow_path", "apex_image_path", "onset_image_path", "mask_path")


def _file_bases(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid TOML ({exc})") from exc
    bases = (data.get("allowed") or {}).get("bases") or []
    if not isinstance(bases, list):
        raise DatasetError(f"{path}: [allowed] bases must be a list of folders")
    return [str(b) for b in bases]


def allowed_bases() -> list[Path]:
    """Every folder a browser-entered path may lie under, resolved (symlinks followed)."""
    raw = [p for p in os.environ.get("MER_ALLOWED_ROOTS", "").split(os.pathsep) if p]
    raw += _file_bases(config_path())
    raw += [str(cache_root())] + list(configured_roots().values())
    out: list[Path] = []
    for item in raw:
        resolved = Path(item).expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def allow_base(folder: str | Path) -> Path:
    """Add a folder to ``[allowed] bases`` of ``datasets.toml`` (CLI only); returns the file."""
    target = Path(folder).expanduser().resolve()
    if not target.is_dir():
        raise DatasetError(f"mer datasets allow {folder}: not a folder")
    path = config_path()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    bases = _file_bases(path)
    if str(target) not in bases:
        bases.append(str(target))
    kept = _without_allowed_table(text)
    block = tomli_w.dumps({"allowed": {"bases": bases}})
    write_atomic(path, (kept.rstrip() + "\n\n" if kept.strip() else "") + block)
    return path


def _without_allowed_table(text: str) -> str:
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == "[allowed]"
        if not skipping:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def _under(path: Path, bases: Iterable[Path]) -> bool:
    return any(path == b or b in path.parents for b in bases)


def check_browser_path(value: str | Path, what: str) -> Path:
    """``value`` resolved, if it lies under an allowed base; else a DatasetError saying how to allow it."""
    text = str(value).strip()
    if not text or "\x00" in text:
        raise DatasetError(f"{what}: empty or malformed path")
    resolved = Path(text).expanduser().resolve()
    bases = allowed_bases()
    if not _under(resolved, bases):
        raise DatasetError(
            f"{what} {text!r} lies outside the folders this dashboard may read. The person running the "
            f"server can allow a folder with `mer datasets allow DIR` or MER_ALLOWED_ROOTS "
            f"(allowed now: {', '.join(str(b) for b in bases)})")
    return resolved


def check_table_paths(table: pd.DataFrame, manifest: str | Path | None = None) -> None:
    """Every file a (browser-chosen) table lists stays inside the manifest's folder or an allowed base.

    Catches ``..``, absolute paths and symlinks that leave the dataset: each
    path is resolved before the check. Raises naming the first offending row.
    """
    bases = allowed_bases()
    if manifest is not None:
        bases.append(Path(manifest).expanduser().resolve().parent)
    for i, row in enumerate(table.itertuples(index=False)):
        values = list(getattr(row, "frames", ()) or ()) + [getattr(row, c, None) for c in PATH_COLUMNS]
        for value in values:
            if value is None or (isinstance(value, float) and pd.isna(value)) or str(value) == "":
                continue
            if not _under(Path(str(value)).expanduser().resolve(), bases):
                sid = getattr(row, "sample_id", f"row {i + 1}")
                raise DatasetError(f"{sid}: file {value!r} lies outside the manifest's folder and the allowed "
                                   "folders; the dashboard does not read it (allow its folder with "
                                   "`mer datasets allow DIR`)")
