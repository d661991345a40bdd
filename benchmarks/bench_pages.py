"""Render time of every dashboard page and of the showcase widgets, against the page-speed target.

    .venv/bin/python benchmarks/bench_pages.py [--repeats 5] [--browser] [--out bench_out/pages.json]
    .venv/bin/python benchmarks/bench_pages.py --markdown BEFORE.json AFTER.json   # the docs' tables

Target (docs/benchmarks.md, "Page speed"), on an idle machine: every page at
most 2 s cold and 1 s in the app, every widget action at most 1.5 s. Two
sections: the server's side, the wall time of Streamlit's ``AppTest.run()``
(the page's script, Plotly's JSON included), always; and with ``--browser``
what a user waits for in chromium (Playwright), from the click or the address
to the script's last run over, no spinner and every chart drawn. The load
average of the machine is recorded beside every figure: on a shared, loaded
machine the figures are upper bounds, not the target's measurement.

A fresh temporary cache (``MER_CACHE``) holds two fake finished runs on the
MEGC2019 composite shape (442 clips, 68 subjects, 68 folds x 20 epochs, stored
through RunStore, no training) and the default synthetic set (linked from the
repository's cache/datasets when ``make data`` made it, else generated).

* warm-up: every page rendered once, so one-off imports (torch, scipy.signal)
  and files a page writes once into the cache folder are not charged to any
  page (a server pays them once, not per visit); these first renders are kept
  as ``first_in_process_s``.
* ``cold``: the page's first render after Streamlit's in-memory caches
  (st.cache_data, st.cache_resource) are cleared, as after a server restart.
* ``in-app``: the median of ``--repeats`` further renders (warm caches, what a
  user sees when coming back to the page).
* actions: switching the Lesson's expression (each showcase class once, after a
  cache clear: the first switch a user makes) and moving the Datasets
  magnification alpha to values not seen before, each timed as the rerun after
  the widget changes.
* browser: a Streamlit server over the same cache; ``cold`` = the page opened
  by its address in a new tab (a new session) on a server that has served only
  the Runs page before (so the page's caches are empty, its one-off imports
  may be included); ``in-app`` = the median of ``--repeats`` visits by its
  sidebar link from the Runs page (the Datasets tabs: by clicking the tab);
  actions: the Lesson's expression buttons, and the alpha slider moved by key.

Writes bench_out/pages.json; its ``pages`` entry (cold_s, warm_s per page) is
what ``mer bench`` keeps in its report and the Benchmarks page shows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st
import torch
from streamlit import logger
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from apptest_helpers import _script  # noqa: E402
from mer_core.benchmarking.bench_report import spread  # noqa: E402
from mer_core.datasets.synthetic import ensure_dataset  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402

COLD_TARGET_S, IN_APP_TARGET_S, ACTION_TARGET_S = 2.0, 1.0, 1.5
RUN_A, RUN_B = "bench-composite-a", "bench-composite-b"
MOTION_TAB = "Motion & magnification"
# every sidebar page (dashboard.nav.PAGES), by view module, with the query a user's link carries
PAGES = {
    "home": {}, "lesson": {}, "datasets": {"dataset": "synthetic"},
    "datasets · browse": {"dataset": "synthetic", "tab": "Browse clips"},
    "datasets · motion": {"dataset": "synthetic", "tab": MOTION_TAB},
    "new_experiment": {}, "jobs": {}, "new_study": {}, "study": {}, "runs": {}, "run": {"run": RUN_A},
    "compare": {"runs": f"{RUN_A},{RUN_B}"}, "leaderboard": {}, "explain": {"run": RUN_A}, "analyse": {},
    "benchmarks": {},
}


def load() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def _module(page: str) -> str:
    return page.split(" · ")[0]


_COMPONENTS: list = []  # Streamlit's component registry, discovered once (a server does it once at start)


def render(page: str) -> tuple[float, object]:
    """Seconds of one render of ``page`` (a fresh AppTest, as a new visit) and the AppTest.

    Each new AppTest would scan every installed package for Streamlit components before its first run
    (0.3-3 s, a server's one-off start); the registry that main's empty script found is handed to each.
    """
    at = AppTest.from_function(_script, default_timeout=300, args=(f"dashboard.views.{_module(page)}",))
    for k, v in PAGES[page].items():
        at.query_params[k] = v
    at._bidi_component_manager = _COMPONENTS[0]  # private: AppTest keeps its registry there
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0, at


def problem(at) -> str:
    return str(at.exception[0].value)[:300] if at.exception else ""


def payload(at) -> tuple[int, float]:
    """(Plotly charts, megabytes of their JSON) a render sends to the browser: what it must parse and draw."""
    specs = [len(chart.proto.spec) for chart in at.get("plotly_chart")]
    return len(specs), round(sum(specs) / 1e6, 3)


def clear_caches() -> None:
    """Empty Streamlit's in-memory caches, as a server restart does (files in the cache folder stay)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def _synthetic_into(cache: Path) -> str:
    """Link the repository's default synthetic set into ``cache`` (or generate it there); returns which."""
    shared = ROOT / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():
        (cache / "datasets").symlink_to(shared, target_is_directory=True)
        return f"linked {shared / 'synthetic'}"
    ensure_dataset()
    return "generated"


def _empty_script() -> None:
    """An empty page: rendering it absorbs AppTest's one-off start-up."""


def pages(repeats: int) -> dict:
    """Per page: cold, in-app and first-in-process seconds with the load beside them."""
    first = {}
    for page in PAGES:  # warm-up: one-off imports and files written once
        seconds, at = render(page)
        first[page] = round(seconds, 3)
        print(f"warm-up {page:22s} {seconds:6.3f} s {problem(at)}", flush=True)
    out = {}
    for page in PAGES:
        clear_caches()
        before = load()
        cold, at = render(page)
        warm = [render(page)[0] for _ in range(repeats)]
        median, (charts, mb), error = statistics.median(warm), payload(at), problem(at)
        out[page] = {"cold_s": round(cold, 3), "warm_s": spread(warm, 3),
                     "warm_median_s": round(median, 3), "warm_max_s": round(max(warm), 3),
                     "first_in_process_s": first[page], "load_1min": [before, load()], "exception": error,
                     "charts": charts, "plotly_json_mb": mb, "cold_within_target": cold <= COLD_TARGET_S,
                     "in_app_within_target": median <= IN_APP_TARGET_S}
        print(f"{page:22s} cold {cold:6.3f} s   in-app median {median:6.3f} s   "
              f"load {before:.2f} {'EXCEPTION ' + error if error else ''}", flush=True)
    return out


def _timed_rerun(at) -> float:
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0


def actions() -> dict:
    """The showcase widgets: the Lesson's expression switch and the Datasets magnification alpha."""
    out = {}
    clear_caches()
    _, at = render("lesson")
    control = at.segmented_control(key="lesson-class")
    times = []
    for label in [o for o in control.options if o != control.value] + [control.value]:
        before = load()
        times.append((label, round(_timed_rerun(control.set_value(label)), 3), before))
        control = at.segmented_control(key="lesson-class")
        print(f"lesson · expression -> {label:10s} {times[-1][1]:6.3f} s   load {before:.2f} {problem(at)}", flush=True)
    out["lesson · switch expression"] = _action_row(times, problem(at))
    clear_caches()
    _, at = render("datasets · motion")
    times = []
    for alpha in (20.0, 15.0, 25.0, 5.0, 30.0):
        slider = next(s for s in at.slider if s.label.startswith("EVM amplification"))
        before = load()
        times.append((alpha, round(_timed_rerun(slider.set_value(alpha)), 3), before))
        print(f"datasets · alpha -> {alpha:4.0f}       {times[-1][1]:6.3f} s   load {before:.2f} {problem(at)}", flush=True)
    out["datasets · magnification alpha"] = _action_row(times, problem(at))
    return out


def _action_row(times: list[tuple], exception: str) -> dict:
    seconds = [t for _, t, _ in times]
    return {"each": [{"to": str(v), "s": t, "load_1min": l} for v, t, l in times],
            "median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3),
            "exception": exception, "within_target": max(seconds) <= ACTION_TARGET_S}


# --- in a real browser: what a user waits for (script, transfer and Plotly's drawing) -----------------
CHROMIUM = "/usr/bin/chromium"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
URLS = {"home": "overview", "new_experiment": "new", "new_study": "new-study"}  # the rest: url = module
_IDLE_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return 'connecting';
  if (app.getAttribute('data-test-script-state') === 'running') return 'running';
  if (document.querySelector("[data-testid='stSkeleton'], [data-testid='stSpinner']")) return 'loading';
  const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")];
  if (charts.some(c => !c.querySelector('.main-svg'))) return 'drawing';
  return 'idle';
}"""


def _url(page: str) -> str:
    query = urlencode(PAGES[page])
    return URLS.get(_module(page), _module(page)) + (f"?{query}" if query else "")


# counts the script runs the page starts (installed before the page's own scripts, so none is missed)
_COUNT_RUNS_JS = """window.__merRuns = 0;
new MutationObserver(ms => { for (const m of ms) {
  if (m.target.getAttribute('data-test-script-state') === 'running') window.__merRuns += 1; } })
  .observe(document, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});"""


def _runs(tab) -> int:
    return int(tab.evaluate("() => window.__merRuns || 0"))


SETTLE_S = 0.4  # idle this long with no new script run: the change's last run is over (some start two)


def _wait_idle(tab, t0: float, runs_before: int, timeout_s: float = 180.0) -> float:
    """Seconds from ``t0`` until the app went idle after the script runs that ``t0``'s action started: no
    spinner, every chart drawn, and no further run within :data:`SETTLE_S` (not counted). A change that starts
    no run (none seen within 5 s) counts as idle."""
    deadline = t0 + timeout_s
    idle_since, runs_then = None, -1
    while time.perf_counter() < deadline:
        now, idle, runs = time.perf_counter(), tab.evaluate(_IDLE_JS) == "idle", _runs(tab)
        if not idle or (runs <= runs_before and now - t0 <= 5.0) or runs != runs_then:
            idle_since, runs_then = (now, runs) if idle else (None, -1)
        elif now - idle_since >= SETTLE_S:
            return idle_since - t0
        tab.wait_for_timeout(20)
    raise TimeoutError(f"the page was not idle within {timeout_s:.0f} s")


def _visit(tab, url: str, page: str) -> float:
    """Open ``page`` the way a user does inside the app: its sidebar link, then its tab (Datasets) when it has
    one and the page did not reopen it; the seconds until idle (of the tab's click alone when it was clicked)."""
    path = URLS.get(_module(page), _module(page))
    href = f"a[href='{url}/']" if path == "overview" else f"a[href$='/{path}']"
    t0, runs = time.perf_counter(), _runs(tab)
    tab.locator(f"[data-testid='stSidebarNav'] {href}:visible").first.click()
    seconds = _wait_idle(tab, t0, runs)
    wanted = tab.locator("[role='tab']", has_text=PAGES[page].get("tab", "")).first
    if "tab" in PAGES[page] and wanted.get_attribute("aria-selected") != "true":  # the session may reopen it
        t0, runs = time.perf_counter(), _runs(tab)
        wanted.click()
        seconds = _wait_idle(tab, t0, runs)
    return seconds


def _open(browser, url: str, path: str) -> tuple[object, float]:
    """A new browser tab (a new session) loading ``url/path``; the tab and the seconds until idle."""
    tab = browser.new_page(viewport={"width": 1300, "height": 900})
    tab.set_default_timeout(180_000)  # a loaded machine can take longer than Playwright's 30 s to load a page
    tab.add_init_script(_COUNT_RUNS_JS)
    t0 = time.perf_counter()
    tab.goto(f"{url}/{path}")
    return tab, _wait_idle(tab, t0, 0)


@contextmanager
def server(app: str, env: dict):
    """A Streamlit server running ``app`` (a path from the repository root) with ``env``: its URL, once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", app, "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none",
                             "--server.address", "127.0.0.1"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the Streamlit server did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:
            proc.kill()


def browser_section(cache: str, repeats: int) -> dict:
    """Every page opened in chromium: cold (first visit on a fresh server, new session: a full page load)
    and in-app (reached by its sidebar link from another page), then the two showcase widget actions."""
    # lazy: an optional dependency (playwright, a test extra), needed only by --browser
    from playwright.sync_api import sync_playwright

    out: dict = {"pages": {}, "actions": {}}
    with server("dashboard/app.py", {**os.environ, "MER_CACHE": cache}) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        tab, seconds = _open(browser, url, "runs")  # the server's one-off start: no page's cold visit
        print(f"browser · server start, first page {seconds:6.3f} s", flush=True)
        tab.close()
        for page in PAGES:
            before = load()
            tab, cold = _open(browser, url, _url(page))
            warm = []
            for _ in range(repeats):  # away to the Runs page and back by the sidebar links
                _visit(tab, url, "runs")
                warm.append(_visit(tab, url, page))
            out["pages"][page] = {"cold_s": round(cold, 3), "in_app_median_s": round(statistics.median(warm), 3),
                                  "in_app_max_s": round(max(warm), 3), "load_1min": [before, load()],
                                  "cold_within_target": cold <= COLD_TARGET_S,
                                  "in_app_within_target": statistics.median(warm) <= IN_APP_TARGET_S}
            print(f"browser · {page:22s} cold {cold:6.3f} s   in-app median {statistics.median(warm):6.3f} s   "
                  f"load {before:.2f}", flush=True)
            tab.close()
        out["actions"] = _browser_actions(browser, url)
        browser.close()
    return out


def _browser_actions(browser, url: str) -> dict:
    """The Lesson's expression switch (each class once) and the Datasets alpha moved one step at a time."""
    out = {}
    tab, _ = _open(browser, url, "lesson")
    times = []
    for label in ("negative", "surprise", "positive"):
        before = load()
        t0, runs = time.perf_counter(), _runs(tab)
        tab.locator("[data-testid='stButtonGroup'] button", has_text=label).first.click()
        times.append((label, round(_wait_idle(tab, t0, runs), 3), before))
        print(f"browser · lesson expression -> {label:10s} {times[-1][1]:6.3f} s   load {before:.2f}", flush=True)
    out["lesson · switch expression"] = _action_row(times, "")
    tab.close()
    tab, _ = _open(browser, url, _url("datasets · motion"))
    times = []
    thumb = tab.locator("[data-testid='stSlider'] input[type='range'][aria-label^='EVM amplification']").first
    for key in ("ArrowRight", "ArrowRight", "PageUp", "ArrowLeft", "Home"):  # alpha 11, 12, then bigger jumps
        before = load()
        thumb.focus()
        t0, runs = time.perf_counter(), _runs(tab)
        thumb.press(key)
        times.append((thumb.input_value(), round(_wait_idle(tab, t0, runs), 3), before))
        print(f"browser · datasets alpha -> {times[-1][0]:6s} {times[-1][1]:6.3f} s   load {before:.2f}", flush=True)
    out["datasets · magnification alpha"] = _action_row(times, "")
    tab.close()
    return out


def _pair(before: float | None, after: float | None) -> str:
    """'before → after' (just 'after' when there is no before figure)."""
    def one(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"
    return f"{one(before)} → {one(after)}" if before is not None else one(after)


def _cell(before: float | None, after: float | None, target: float) -> str:
    return _pair(before, after) + ("" if after is None else (" ✓" if after <= target else " ✗"))


def _load_span(loads: list[float] | None) -> str:
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–"


def markdown(before: dict, after: dict) -> str:
    """The docs' page-speed tables (server and browser, pages and actions) from two pages.json files."""
    lines = []
    for label, key in (("Server (AppTest)", None), ("Browser (chromium)", "browser")):
        b = before.get(key, {}) if key else before
        a = after.get(key, {}) if key else after
        if not a.get("pages"):
            continue
        in_app = "in_app_median_s" if key else "warm_median_s"
        lines += [f"**{label}**, seconds, before → after (✓ within the target, ✗ not), load average during each row",
                  "", "| page | cold (target 2 s) | in-app (target 1 s) | load before | load after |",
                  "|---|---|---|---|---|"]
        for page, r in a["pages"].items():
            o = b.get("pages", {}).get(page, {})
            lines.append(f"| {page} | {_cell(o.get('cold_s'), r['cold_s'], COLD_TARGET_S)} | "
                         f"{_cell(o.get(in_app), r[in_app], IN_APP_TARGET_S)} | {_load_span(o.get('load_1min'))} | "
                         f"{_load_span(r.get('load_1min'))} |")
        if not key and any(r.get("charts") for r in a["pages"].values()):
            lines += ["", "| page | Plotly charts | their JSON, MB |", "|---|---|---|"]
            lines += [f"| {page} | {r.get('charts', '–')} | "
                      f"{_pair(b.get('pages', {}).get(page, {}).get('plotly_json_mb'), r.get('plotly_json_mb'))} |"
                      for page, r in a["pages"].items() if r.get("charts")]
        lines += ["", "| widget action | median (target 1.5 s) | slowest | load before | load after |",
                  "|---|---|---|---|---|"]
        for act, r in a.get("actions", {}).items():
            o = b.get("actions", {}).get(act, {})
            lines.append(f"| {act} | {_cell(o.get('median_s'), r['median_s'], ACTION_TARGET_S)} | "
                         f"{_cell(o.get('max_s'), r['max_s'], ACTION_TARGET_S)} | "
                         f"{_load_span([e['load_1min'] for e in o.get('each', [])])} | "
                         f"{_load_span([e['load_1min'] for e in r.get('each', [])])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench_out" / "pages.json"))
    parser.add_argument("--browser", action="store_true",
                        help="also open every page in chromium (Playwright): what a user waits for, drawing included")
    parser.add_argument("--no-apptest", action="store_true", help="skip the AppTest (server-side) section")
    parser.add_argument("--markdown", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="measure nothing: print the docs' before/after tables of two pages.json files")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(*(json.loads(Path(f).read_text()) for f in args.markdown)))
        return 0
    os.environ["MER_CACHE"] = tempfile.mkdtemp(prefix="mer-bench-pages-")
    logger.set_log_level("error")  # no "missing ScriptRunContext" warning per cached call outside a session
    torch.set_num_threads(1)
    load_start = load()
    synthetic = _synthetic_into(Path(os.environ["MER_CACHE"]))
    # lazy: imports pytest (a test extra), which --markdown and --help do not need
    from test_results_pages import store_fixture_run

    start = AppTest.from_function(_empty_script)
    start.run()  # AppTest's one-off start-up (component discovery), not a page's
    _COMPONENTS.append(start._bidi_component_manager)
    t0 = time.perf_counter()
    store_fixture_run(RUN_A, composite=True, accuracy=0.72, seed=1, epochs=20)
    store_fixture_run(RUN_B, composite=True, accuracy=0.62, seed=2, epochs=20, config={"lr": 3e-4})
    store_seconds = time.perf_counter() - t0
    with RunStore() as store:
        n_predictions = len(store.predictions(RUN_A))
    results, acts = ({}, {}) if args.no_apptest else (pages(args.repeats), actions())
    in_browser = browser_section(os.environ["MER_CACHE"], args.repeats) if args.browser else {}
    out = {
        "what": "AppTest wall time of one page render (server side; cold = Streamlit caches cleared, in-app = "
                "median of warm renders); two 442-clip composite runs (68 folds x 20 epochs) and the default "
                "synthetic set",
        "repeats": args.repeats, "predictions": n_predictions, "store_seconds": round(store_seconds, 2),
        "synthetic": synthetic, "pages": results, "actions": acts, "browser": in_browser,
        "targets_s": {"cold": COLD_TARGET_S, "in_app": IN_APP_TARGET_S, "action": ACTION_TARGET_S},
        "load_1min": {"start": load_start, "end": load()},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path} (load average {load_start:.2f} at the start, {load():.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
