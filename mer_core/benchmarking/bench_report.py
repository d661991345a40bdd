"""The benchmark report: machine description, schema, where results live, tables.

``mer bench`` (:mod:`mer_core.benchmarking.bench`) writes one JSON report per machine
kind to ``mer_core/benchmarking/data/<kind>.json`` (committed, small, shipped as
package data, so an installed package estimates without the repository). The job time
estimate (:mod:`mer_core.jobs.plan`), the LOSO table in docs/benchmarks.md and
the dashboard's Benchmarks page read it through :func:`find_results`.

Every figure measured over repetitions is a :func:`spread`:
``{"median": m, "min": a, "max": b, "n": k}``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any, Sequence

from mer_core.errors import MerError
from mer_core.paths import bench_results_dir, repo_root

SCHEMA = "mer-bench/1"
SECTIONS = ("preprocess", "fwd_bwd", "loso", "pretrain", "pages")
MACHINE_KEYS = ("kind", "cpu", "cores", "torch", "device", "date", "commit", "python")
LOSO_KEYS = ("model", "preset", "executor", "epochs", "n_samples", "n_folds", "wall_s", "cpu_s", "peak_rss_mb",
             "uf1", "uar", "train_ms_per_sample_epoch")
# The estimate's timing model of a LOSO row (older reports lack all four keys; the estimate then uses the
# row's train_ms_per_sample_epoch alone):
# wall - cached preprocessing = startup_s + n_folds / parallel x (fold_setup_s + epochs x n_train x steady ms).
LOSO_TIMING_KEYS = ("startup_s", "fold_setup_s", "steady_ms_per_sample_epoch", "parallel")


def results_dir() -> Path:
    """The shipped reports, ``mer_core/benchmarking/data`` (``$MER_BENCH_RESULTS`` overrides)."""
    return bench_results_dir()


PAGES_SCRIPT = repo_root() / "benchmarks" / "bench_pages.py"  # a source checkout's; an installed package has none


def pages_skip_reason(page_repeats: int, script: Path = PAGES_SCRIPT) -> str:
    """Why ``mer bench`` measures no page timings ('' when it will)."""
    if page_repeats <= 0:
        return "not asked for (page_repeats=0)"
    if not script.is_file():
        return (f"page timings need a source checkout: {script} (with the repository's tests/ helpers) is not "
                "there, as in an installed package; run mer bench from a clone for them, or pass --no-pages")
    return ""


def spread(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median, min and max of repeated measurements (and how many)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def device_name() -> str:
    """'cpu' or the CUDA device's name."""
    # lazy: loads torch (about 2 s)
    import torch  # here and in machine_info only: the estimates read reports without torch (about 2 s of CPU)

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def machine_kind(device: str | None = None, n_cores: int | None = None) -> str:
    """``cpu-<N>core`` or ``cuda-<device name>`` (lower case, dashes): the results file's name."""
    device = device_name() if device is None else device
    if device == "cpu":
        return f"cpu-{n_cores or cores()}core"
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return f"cuda-{slug.removeprefix('nvidia-')}"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, torch, device, date, git commit."""
    import torch  # lazy: loads torch (about 2 s)

    device = device_name()
    return {"kind": machine_kind(device), "cpu": _cpu_model(), "cores": cores(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": device, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": _git_commit(),
            "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def validate(report: Any, where: str = "report") -> dict[str, Any]:
    """The report itself when it has the schema's shape; MerError naming the first missing piece."""
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise MerError(f"{where}: not a {SCHEMA} report (schema {report.get('schema') if isinstance(report, dict) else type(report).__name__!r})")
    for key in ("machine", *SECTIONS):
        if key not in report:
            raise MerError(f"{where}: missing section {key!r}")
    missing = [k for k in MACHINE_KEYS if k not in report["machine"]]
    if missing:
        raise MerError(f"{where}: machine lacks {', '.join(missing)}")
    for i, row in enumerate(report["loso"]):
        lacking = [k for k in LOSO_KEYS if k not in row]
        if lacking:
            raise MerError(f"{where}: loso row {i} ({row.get('model')}) lacks {', '.join(lacking)}")
        _validate_timing(row, f"{where}: loso row {i} ({row.get('model')})")
    for i, row in enumerate(report["fwd_bwd"]):
        if not {"model", "preset", "ms_per_sample", "samples_per_s"} <= set(row):
            raise MerError(f"{where}: fwd_bwd row {i} lacks model/preset/ms_per_sample/samples_per_s")
    return report


def _validate_timing(row: dict[str, Any], where: str) -> None:
    """A row has all of :data:`LOSO_TIMING_KEYS` or none (an old report); each a number >= 0 or a spread of them."""
    present = [k for k in LOSO_TIMING_KEYS if k in row]
    if not present:
        return
    lacking = [k for k in LOSO_TIMING_KEYS if k not in row]
    if lacking:
        raise MerError(f"{where} has {', '.join(present)} but lacks {', '.join(lacking)}")
    parallel = row["parallel"]
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise MerError(f"{where}: parallel={parallel!r}, expected the number of folds trained at a time (>= 1)")
    for key in LOSO_TIMING_KEYS[:3]:
        value = row[key]
        values = [value.get(s) for s in ("median", "min", "max")] if isinstance(value, dict) else [value]
        if isinstance(value, dict) and "median" not in value or any(
                v is not None and (not isinstance(v, (int, float)) or v < 0) for v in values):
            raise MerError(f"{where}: {key}={value!r}, expected seconds / ms >= 0 or a spread of them")


def read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MerError(f"{path}: cannot read a benchmark report ({exc})") from exc
    return validate(data, str(path))


def list_results(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """{file name: report} of every valid report in the results folder (other JSON files skipped)."""
    folder = folder or results_dir()
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out[path.name] = read_report(path)
        except MerError:
            continue
    return out


def find_results(kind: str | None = None, folder: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """(report, label) best matching this machine: its own kind, else the nearest of the same device family.

    (None, reason) when no report matches at all (the caller's labelled fallback).
    """
    reports = list_results(folder)
    kind = kind or machine_kind()
    by_kind = {r["machine"]["kind"]: (name, r) for name, r in reports.items()}
    if kind in by_kind:
        name, report = by_kind[kind]
        return report, f"measured ({name})"
    family = kind.split("-", 1)[0]
    same = [(n, r) for k, (n, r) in by_kind.items() if k.split("-", 1)[0] == family]
    if same:
        mine = cores()
        name, report = min(same, key=lambda nr: abs(int(nr[1]["machine"].get("cores") or 0) - mine))
        return report, f"measured on {report['machine']['kind']} ({name}; this machine is {kind})"
    return None, f"no benchmark report for {kind}"


def results_stamp(folder: Path | None = None) -> tuple:
    """(name, mtime) of every JSON file in the results folder: what a cached read depends on."""
    folder = folder or results_dir()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.json"))) if folder.is_dir() else ()


def results_overview(folder: str | Path | None = None) -> dict[str, Any]:
    """Every report, the file this machine's estimates use ('match', None when none), its label, this kind."""
    folder = Path(folder) if folder is not None else results_dir()
    files = list_results(folder)
    report, label = find_results(folder=folder)
    match = next((n for n, r in files.items() if report is not None and r["machine"] == report["machine"]), None)
    return {"files": files, "match": match, "label": label, "kind": machine_kind()}


def readme_table(report: dict[str, Any]) -> str:
    """The LOSO table of docs/benchmarks.md (Markdown) from a report."""
    m = report["machine"]
    lines = [f"Measured on **{m['kind']}** ({m['cpu']}, {m['cores']} cores, torch {m['torch']}, device {m['device']}; "
             f"{m['date'][:10]}, commit {m['commit'] or '?'}; `mer bench{' --quick' if report.get('quick') else ''}`, "
             f"median of {_reps(report)} with min-max{_updates(report)}). LOSO on the default synthetic set, "
             "preprocessing cache warm:",
             "", "| model | preset | executor | epochs | wall s (min-max) | CPU s, whole tree | peak RSS MB, whole tree "
             "| UF1 | UAR | train ms/sample-epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["loso"]:
        w = r["wall_s"]
        lines.append(f"| {r['model']} | {r['preset']} | {r['executor']} | {r['epochs']} | {w['median']:.1f} "
                     f"({w['min']:.1f}-{w['max']:.1f}) | {r['cpu_s']['median']:.1f} | {r['peak_rss_mb']['median']:.0f} "
                     f"| {r['uf1']['median']:.3f} | {r['uar']['median']:.3f} | {r['train_ms_per_sample_epoch']:.2f} |")
    return "\n".join(lines)


def _update_line(u: dict[str, Any]) -> str:
    return (f"the rows of {', '.join(u.get('models', []))} re-measured on {str(u.get('date'))[:10]}, "
            f"commit {u.get('commit') or '?'}")


def describe_updates(report: dict[str, Any]) -> list[str]:
    """One line per ``mer bench --update``: 'the rows of M re-measured on DATE, commit C'."""
    return [_update_line(u) for u in report.get("updates", [])]


def _updates(report: dict[str, Any]) -> str:
    return "".join(f"; {_update_line(u)} (`mer bench --models {' '.join(u.get('models', []))} --update`)"
                   for u in report.get("updates", []))


def _reps(report: dict[str, Any]) -> str:
    n = sorted({r["wall_s"]["n"] for r in report["loso"]})
    return "/".join(map(str, n)) + " runs" if n else "several runs"
