"""Server-side render time of the Run, Compare and Leaderboard pages for a 442-clip run.

    .venv/bin/python benchmarks/bench_pages.py [--repeats 5]

Stores two fake finished runs on the MEGC2019 composite shape (442 clips, 68
subjects, 68 folds x 20 epochs, through RunStore, no training) in a fresh
temporary cache, then renders each page with Streamlit's AppTest and records
the wall time of ``AppTest.run()``: the first render in the process (cold
caches: store reads, subject bootstrap, paired tests) and the median of
``--repeats`` further renders (warm st.cache_data, what a user sees when
clicking around). Target: under 1.5 s per page.

The Datasets page is measured first, on the default synthetic set (the
repository's cache/datasets/synthetic when ``make data`` made it, else
generated into the temporary cache): its first visit (cold st.cache_data:
indexing and the dataset check) and each tab opened once (the Motion tab
computes flow, strain and EVM for the opened clip). One throwaway AppTest
render of an empty script runs before it, so AppTest's own one-off start-up
(component discovery) is not charged to the page. Target:
under 2 s for the first visit. Writes bench_out/pages.json. ``mer bench`` runs this script in a child process
(the library never imports Streamlit) and keeps its figures in its report.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PAGES = {
    "run": {"run": "bench-composite-a"},
    "compare": {"runs": "bench-composite-a,bench-composite-b"},
    "leaderboard": {},
}


def render_seconds(module: str, query: dict[str, str]) -> tuple[float, str]:
    from apptest_helpers import page_app

    t0 = time.perf_counter()
    at = page_app(module, **query)
    elapsed = time.perf_counter() - t0
    problem = str(at.exception[0].value) if at.exception else ""
    return elapsed, problem


DATASET_TABS = ("", "Browse clips", "Motion & magnification")


def _synthetic_into(cache: Path) -> str:
    """Link the repository's default synthetic set into ``cache`` (or generate it there); returns which."""
    shared = ROOT / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():
        (cache / "datasets").symlink_to(shared, target_is_directory=True)
        return f"linked {shared / 'synthetic'}"
    from mer_core.datasets.synthetic import ensure_dataset

    ensure_dataset()
    return "generated"


def _empty_script() -> None:
    """An empty page: rendering it absorbs AppTest's one-off start-up."""


def datasets_page(repeats: int) -> dict:
    """Datasets page on the default synthetic set: first visit cold, then each tab opened once, then warm."""
    from streamlit.testing.v1 import AppTest

    AppTest.from_function(_empty_script).run()  # AppTest's one-off start-up, not the page's
    out = {}
    for tab in DATASET_TABS:
        query = {"dataset": "synthetic"} | ({"tab": tab} if tab else {})
        first, problem = render_seconds("datasets", query)
        warm = [render_seconds("datasets", query)[0] for _ in range(repeats)]
        name = tab or "first visit (Summary & check)"
        out[name] = {"first_s": round(first, 3), "warm_median_s": round(statistics.median(warm), 3),
                     "exception": problem}
        print(f"datasets · {name:32s} first {first:6.3f} s   warm median {statistics.median(warm):6.3f} s "
              f"{'EXCEPTION ' + problem if problem else ''}")
    out["first_visit_under_2_s"] = out["first visit (Summary & check)"]["first_s"] < 2.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench_out" / "pages.json"))
    args = parser.parse_args()
    os.environ["MER_CACHE"] = tempfile.mkdtemp(prefix="mer-bench-pages-")
    import torch

    torch.set_num_threads(1)
    synthetic = _synthetic_into(Path(os.environ["MER_CACHE"]))
    datasets = datasets_page(args.repeats)
    from test_results_pages import store_fixture_run

    t0 = time.perf_counter()
    store_fixture_run("bench-composite-a", composite=True, accuracy=0.72, seed=1, epochs=20)
    store_fixture_run("bench-composite-b", composite=True, accuracy=0.62, seed=2, epochs=20,
                      config={"lr": 3e-4})
    store_seconds = time.perf_counter() - t0
    from mer_core.jobs.bench_report import spread
    from mer_core.store.db import RunStore

    with RunStore() as store:
        n_predictions = len(store.predictions("bench-composite-a"))
    results = {}
    for module, query in PAGES.items():
        cold, problem = render_seconds(module, query)
        warm = [render_seconds(module, query)[0] for _ in range(args.repeats)]
        results[module] = {"cold_s": round(cold, 3), "warm_s": spread(warm, 3),
                           "warm_median_s": round(statistics.median(warm), 3), "warm_max_s": round(max(warm), 3),
                           "exception": problem, "under_1_5_s_warm": statistics.median(warm) < 1.5}
        print(f"{module:12s} cold {cold:6.3f} s   warm median {statistics.median(warm):6.3f} s   "
              f"max {max(warm):6.3f} s {'EXCEPTION ' + problem if problem else ''}")
    out = {
        "what": "AppTest wall time of one page render (server side), 442-clip composite runs (68 subjects, "
                "68 folds x 20 epochs)",
        "repeats": args.repeats, "predictions": n_predictions, "store_seconds": round(store_seconds, 2), "pages": results,
        "datasets_page": {"what": "AppTest wall time, default synthetic set; first = cold caches in this process",
                          "synthetic": synthetic, "tabs": datasets},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
