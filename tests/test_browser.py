"""The dashboard in a real browser: Debian's chromium driven by Playwright.

One Streamlit server (module-scoped, stopped by its own pid) is started on a
free port over a private cache holding one small run made through the CLI
(``mer loso``, the path the demo runs take) on a tiny manifest (3 subjects x 3
clips, 32 px, 5 frames). Every sidebar page must render without an exception,
an error box, a failed request or any console error (and the Benchmarks tables
fit the page); a shared link opened on a fresh server shows that run; a LOSO submitted from New experiment reaches done on Jobs
(queue table and job panel agree); another job is cancelled, reloaded
mid-job and resumed; a confusion-matrix cell is clicked; two runs are compared;
bogus deep links keep their URL and say what is wrong; a run id clicked on Runs
and a job id clicked on Jobs open their page in the same tab; a video uploaded on Analyse
is spotted and predicted, and a text file named .mp4 is refused in words. The three newcomers' paths
end to end: a researcher queues a second model from the form and Compare says its p-value leaves out seed
noise; a teacher moves the Datasets magnification α; a clip without a face gets no verdict and an uploaded
sidecar's onset/apex are used. A spotting run submitted from the Spotting page
reaches done on Jobs, its results link opens its timeline, and a missed interval plays. A failure saves a screenshot and the page HTML; MER_UPDATE_SCREENSHOTS=1
rewrites the pictures these flows take (docs/screenshots/, 1000 px wide; the README's pictures of
meaningful runs come from docs/screenshots/take.py). Skipped when chromium or playwright is missing
(``make test`` installs chromium when run as root).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest, synthetic_video

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else (shutil.which("chromium") or "/usr/bin/chromium")  # Debian's first
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER: dict = {}  # the server's environment and manifest, and the jobs the flows queued


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs it as root)")
    pytest.importorskip("playwright.sync_api")
    cache = tmp_path_factory.mktemp("browser-cache")
    shared = REPO / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():  # reuse the set `make test` generated
        (cache / "datasets").symlink_to(shared, target_is_directory=True)
    manifest = make_clip_manifest(tmp_path_factory.mktemp("clips"), subjects=3, clips_per_subject=3, size=32, frames=5)
    env = {**os.environ, "MER_CACHE": str(cache), "MER_ROOT_MANIFEST": str(manifest.parent),
           "MER_ALLOWED_ROOTS": str(manifest.parent)}
    for key in ("MER_STORE", "MER_DATASETS_TOML"):
        env.pop(key, None)
    subprocess.run([sys.executable, "-m", "mer_core.cli", "loso", "--dataset", "manifest", "--class-set", "native",
                    "--epochs", "1", "--json", "--name", "browser fixture"], env=env, check=True,
                   capture_output=True, cwd=REPO)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none", "--server.address", "127.0.0.1"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the Streamlit server did not start within 60 s")
    env_run = subprocess.run([sys.executable, "-m", "mer_core.cli", "runs", "--json"], env=env, capture_output=True,
                             text=True, cwd=REPO, check=True)
    run_id = json.loads(env_run.stdout)[0]["id"]
    SERVER.update(env=env, manifest=manifest)
    yield url, run_id
    for job_id in SERVER.get("jobs", []):  # no worker outlives the suite
        subprocess.run([sys.executable, "-m", "mer_core.cli", "cancel", job_id], env=env, cwd=REPO,
                       capture_output=True)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def settle(page, timeout_s: float = 90) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_s * 1000)
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_s * 1000)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stSkeleton']\").length === 0",
                           timeout=timeout_s * 1000)


def problems(page) -> list[str]:
    found = [e.inner_text()[:300] for e in page.locator("[data-testid='stException']").all()]
    found += [e.inner_text()[:300] for e in page.locator("[data-testid='stAlertContentError']").all()]
    return found


SHOTS = REPO / "docs" / "screenshots"


@contextlib.contextmanager
def evidence(page, name: str):
    """On a failure, save a screenshot and the page HTML (MER_BROWSER_ARTIFACTS, else a temp folder), then re-raise."""
    try:
        yield
    except BaseException:
        out = Path(os.environ.get("MER_BROWSER_ARTIFACTS") or tempfile.mkdtemp(prefix="mer-browser-"))
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        (out / f"{name}.html").write_text(page.content(), encoding="utf-8")
        print(f"browser evidence for {name}: {out}", file=sys.stderr)
        raise


SHOT_WIDTH = 1000  # px; a README image stays small (a 256-colour PNG, about 100 KB)


def readme_shot(page, name: str) -> None:
    """A small PNG of the viewport for the README's Screenshots section, written only when MER_UPDATE_SCREENSHOTS=1."""
    wanted = os.environ.get("MER_UPDATE_SCREENSHOTS", "")
    if wanted != "1" and name not in wanted.split(","):  # "1": every picture; or a list of names ("jobs")
        return
    import io

    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1500)  # figures and images finish drawing after the script run
    image = Image.open(io.BytesIO(page.screenshot(type="png", scale="css"))).convert("RGB")
    if image.width > SHOT_WIDTH:
        image = image.resize((SHOT_WIDTH, round(image.height * SHOT_WIDTH / image.width)), Image.LANCZOS)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(SHOTS / f"{name}.png", optimize=True)


def _boxes(page) -> dict:
    """Bounding boxes (left, top, right, bottom) of a clip player's read-out, buttons and annotations."""
    return page.evaluate("""() => {
        const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
        return {readout: box(document.querySelector('text.slider-label')),
                buttons: Array.from(document.querySelectorAll('.updatemenu-button')).map(box),
                labels: Array.from(document.querySelectorAll('.annotation')).filter(e => /onset|apex|offset/
                        .test(e.textContent)).map(box),
                width: document.querySelector('svg.main-svg').getBoundingClientRect().right};
    }""")


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_a_clip_player_reads_out_its_frame_beside_the_buttons(browser, tmp_path):
    """No server: the player figure alone, in chromium, as narrow as a Lesson column and as wide as a page."""
    import numpy as np

    from dashboard import plots_clip

    fig = plots_clip.clip_animation(np.zeros((30, 16, 16), np.float32), 6, 14, 29, first=2)
    html = tmp_path / "player.html"
    fig.write_html(html, include_plotlyjs=True, auto_play=False, default_width="100%", default_height=440)
    for width in (430, 900):
        page = browser.new_page(viewport={"width": width, "height": 480})
        with evidence(page, f"player-{width}"):
            page.goto(html.as_uri())
            page.wait_for_selector("text.slider-label", state="attached")
            boxes = _boxes(page)
            assert not [b for b in boxes["buttons"] if _overlap(b, boxes["readout"])], boxes  # not under ▶ or ❚❚
            assert boxes["readout"][2] < boxes["width"]
            labels = boxes["labels"]
            assert len(labels) == 3 and not [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]
                                              if _overlap(a, b)] and max(b[2] for b in labels) <= boxes["width"]
            page.evaluate("Plotly.relayout(document.querySelector('.plotly-graph-div'), {'sliders[0].active': 3})")
            page.wait_for_timeout(200)
            assert page.locator("text.slider-label").first.text_content() == "frame 5"  # every frame, numbered as in the file
        page.close()


def test_lesson_steps_render_with_their_pictures(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1200, "height": 5200})
    with evidence(page, "lesson"):
        page.goto(f"{url}/lesson")
        settle(page, 120)
        assert page.locator("h1").first.inner_text().startswith("Lesson")
        steps = page.locator("h4")
        assert steps.count() == 8
        # every step's picture is drawn: a Plotly figure with an SVG inside, or an image
        assert page.locator("[data-testid='stPlotlyChart'] .main-svg").count() >= 12
        for name in ("onset", "apex", "offset"):  # the slider labels are on the page, not dropped
            assert page.locator(f".annotation-text:has-text('{name}')").count() >= 2
        assert not problems(page)
        page.set_viewport_size({"width": 1200, "height": 900})
        readme_shot(page, "lesson")
    page.close()


def test_overview_deep_link_and_a_bogus_run_link(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    with evidence(page, "deep-links"):
        page.goto(f"{url}/overview")
        settle(page)
        assert page.locator("h1").first.inner_text() == "MER Bench"
        assert "Page not found" not in page.content()
        readme_shot(page, "overview")
        page.goto(f"{url}/run?run=no-such-run")
        settle(page)
        assert "no-such-run" in page.locator("[data-testid='stAlertContentError']").first.inner_text()
        assert page.url.endswith("run=no-such-run")  # the address the user gave is kept
    page.close()


def test_deep_link_on_a_fresh_server_shows_the_run(server, browser):
    url, run_id = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/run?run={run_id}")
    settle(page)
    assert page.locator("h1").first.inner_text() == "Run"
    assert run_id in page.content()  # the run picker shows the linked run
    assert not problems(page)
    readme_shot(page, "run")
    page.close()


def click_grid_cell(page, grid, row_text: str, x_offset: float = 70) -> None:
    """Click the first data column of the st.dataframe row showing ``row_text``.

    The grid is drawn on a canvas (rows 35 px under a 35 px header); its row texts are in the grid's
    accessible table. ``x_offset`` clears the row-selection checkboxes of a selectable table.
    """
    deadline = time.time() + 15  # the grid fills its accessible rows after the frame arrives
    rows = grid.locator("[role='row']").all_inner_texts()
    while not any(row_text in t for t in rows) and time.time() < deadline:
        page.wait_for_timeout(300)
        rows = grid.locator("[role='row']").all_inner_texts()
    row = next(i for i, t in enumerate(rows) if row_text in t)  # 0 is the header
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + x_offset, box["y"] + 35 * row + 17)


def test_a_run_id_on_runs_opens_the_run_page_in_the_same_tab(server, browser):
    url, run_id = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    with evidence(page, "same-tab-link"):
        page.goto(f"{url}/runs")
        settle(page)
        readme_shot(page, "runs")
        click_grid_cell(page, page.locator("[data-testid='stDataFrame']").first, run_id)
        page.wait_for_url(re.compile(rf"/run\?run={re.escape(run_id)}$"), timeout=30_000)
        settle(page)
        assert len(context.pages) == 1  # no new tab: the same one shows the run
        assert page.locator("h1").first.inner_text() == "Run" and not problems(page)
        assert run_id in chosen(page, "run")
        page.go_back()  # the way back shows Runs again, and stays there (no stale click navigates again)
        settle(page)
        page.wait_for_timeout(1500)
        assert "/runs" in page.url and page.locator("h1").first.inner_text() == "Runs"
        assert len(context.pages) == 1
    context.close()


def watch_failures(page) -> list[str]:
    """Collect failed requests (4xx/5xx) and console errors, none excepted: a page opened by its address
    (``/runs``) is told where the server's root is (dashboard.server.BaseUrlHint), so Streamlit's frontend
    no longer probes ``/runs/_stcore/health`` and ``host-config`` first (two 404s, two console errors)."""
    seen: list[str] = []
    page.on("response", lambda r: seen.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: seen.append(f"console: {m.text}") if m.type == "error" else None)
    return seen


def wide_tables(page) -> list[tuple[int, int]]:
    """(content width, visible width) of every table on the page that scrolls sideways."""
    sizes = page.evaluate("""Array.from(document.querySelectorAll("[data-testid='stDataFrame'] .dvn-scroller"))
                             .map(e => [e.scrollWidth, e.clientWidth])""")
    return [(w, v) for w, v in sizes if w > v + 1]


def sidebar_hrefs(page) -> list[str]:
    more = page.locator("[data-testid='stSidebarNavViewButton']")
    if more.count() and "more" in more.first.inner_text().lower():  # the sidebar folds after 10 pages
        more.first.click()
        page.wait_for_timeout(300)
    links = page.locator("[data-testid='stSidebarNav'] a")
    return [links.nth(i).get_attribute("href") for i in range(links.count()) if links.nth(i).is_visible()]


LOOP_SHOTS = {"datasets": "datasets", "new": "new-experiment", "jobs": "jobs", "leaderboard": "leaderboard",
              "explain": "explain", "benchmarks": "benchmarks"}  # Study: empty without a study; Analyse: its flow


def test_every_sidebar_page_renders_without_errors(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    failures = watch_failures(page)
    with evidence(page, "sidebar"):
        page.goto(url)
        settle(page)
        hrefs = sidebar_hrefs(page)
        assert len(hrefs) >= 14, hrefs  # every page, including the ones behind "View more"
        seen = {}
        for href in hrefs:
            page.goto(href)
            settle(page)
            seen[href] = problems(page)
            name = href.rstrip("/").rsplit("/", 1)[-1]
            if name in LOOP_SHOTS:  # the other pages are shot by their own flows, with content in them
                readme_shot(page, LOOP_SHOTS[name])
            assert page.locator("h1").count() >= 1, f"{href} has no title"
            if name == "benchmarks":  # a table wider than the page hides its last column: it looked blank
                assert not wide_tables(page), wide_tables(page)
        assert not {h: p for h, p in seen.items() if p}
        assert not failures, failures  # no failed request and no console error on any page
    page.close()


# --- a user's path: submit, watch, cancel, resume, reload, inspect, compare ----------------------------------
def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    settle(page)


def chosen(page, label: str) -> str:
    """What the selectbox labelled ``label`` shows now."""
    return page.get_by_role("combobox", name=label, exact=True).first.input_value()


def job_heading(page) -> str:
    return page.locator("h3", has_text="Job ").first.inner_text()


def wait_for_status(page, wanted: tuple[str, ...], timeout_s: float = 150) -> str:
    """Wait until the live job panel's heading shows one of ``wanted``; returns the heading."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        heading = job_heading(page) if page.locator("h3", has_text="Job ").count() else ""
        if any(heading.endswith(w) for w in wanted):
            return heading
        page.wait_for_timeout(1000)
    raise AssertionError(f"job never reached {wanted}; last heading {heading!r}")


def grid_rows(page, nth: int = 0) -> list[str]:
    """The visible rows of the ``nth`` st.dataframe, as text (the grid's accessible cells)."""
    grid = page.locator("[data-testid='stDataFrame']").nth(nth)
    rows = grid.locator("[role='row']")
    return [rows.nth(i).inner_text() for i in range(rows.count())]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mer_core.cli", *args], env=SERVER["env"], cwd=REPO,
                          capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def submitted(server, browser):
    """A 1-epoch LOSO on the tiny manifest, submitted from the New experiment form; returns its job id."""
    return submit_from_form(browser, server[0], "baseline")


def submit_from_form(browser, url: str, model: str) -> str:
    """Queue a 1-epoch LOSO of ``model`` on the tiny manifest from the New experiment form; returns its job id."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    with evidence(page, "submit-" + model):
        page.goto(f"{url}/new")
        settle(page)
        if chosen(page, "model") != model:
            choose(page, "model", model)
        choose(page, "dataset", "manifest")
        options = page.get_by_role("textbox", name="dataset options (KEY=VALUE per line)", exact=True)
        options.fill(f"manifest={SERVER['manifest']}")
        options.press("Control+Enter")
        settle(page)
        choose(page, "class set", "the dataset's own labels")  # the native class set, in words
        epochs = page.get_by_role("spinbutton", name="epochs", exact=True)
        epochs.fill("1")
        epochs.press("Enter")
        settle(page)
        page.get_by_role("button", name="Submit job").click()
        settle(page)
        queued = page.get_by_text(re.compile(r"^Job \S+ queued\.$")).first.inner_text()
        job_id = queued.split()[1]
        assert page.get_by_text(f"Follow job {job_id} on the Jobs page").count() == 1
    SERVER.setdefault("jobs", []).append(job_id)
    page.close()
    return job_id


def test_submitted_loso_reaches_done_and_table_and_panel_agree(server, browser, submitted):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    with evidence(page, "job-done"):
        page.goto(f"{url}/jobs?job={submitted}")
        settle(page)
        heading = wait_for_status(page, ("done",), timeout_s=180)
        assert submitted in heading
        page.wait_for_timeout(2500)  # the fragment's last full render
        settle(page)
        assert page.url.endswith(f"job={submitted}")
        progress = page.locator("[data-testid='stProgress']").first.inner_text()
        assert "folds done 3 of 3" in progress
        row = [r for r in grid_rows(page) if submitted in r]
        assert row and "done" in row[0] and "3/3" in row[0], row  # the queue table says the same
        assert not problems(page)
        readme_shot(page, "jobs")
    page.close()


def test_cancel_reload_and_resume_another_job(server, browser, submitted):
    url, _ = server
    out = cli("submit", "--dataset", "manifest", "--dataset-option", f"manifest={SERVER['manifest']}",
              "--class-set", "native", "--epochs", "400", "--name", "to cancel")
    job_id = out.stdout.split()[1]  # "job ID queued -> run RUN (log: ...)"
    SERVER.setdefault("jobs", []).append(job_id)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    with evidence(page, "cancel-resume"):
        page.goto(f"{url}/jobs?job={job_id}")
        settle(page)
        wait_for_status(page, ("running",), timeout_s=120)
        page.reload()  # mid-job: the same job, still running, under the same address
        settle(page)
        assert job_id in job_heading(page) and page.url.endswith(f"job={job_id}")
        page.get_by_role("button", name="Cancel").click()
        # the worker stops within a batch, but a pool still starting its workers under a heavy machine load
        # (load 7 once: 'cancel requested' for over 90 s) only sees the cancel once they are up
        heading = wait_for_status(page, ("cancelled",), timeout_s=240)
        assert job_id in heading
        # the heading comes first in the panel's render: the progress line below it may still be the last render's
        bar, deadline = page.locator("[data-testid='stProgress']").first, time.time() + 10
        while "cancelled" not in (progress := bar.inner_text()) and time.time() < deadline:
            page.wait_for_timeout(100)
        assert "cancelled" in progress and "running:" not in progress, progress  # no fold announced after a cancel
        # Clicked at once: with no job left active the page turns static by one full render, and a click landing
        # during it must still act (the live and static views are one fragment; CI once lost this click when
        # they were two, as Streamlit drops a rerun of a fragment the session no longer holds)
        page.get_by_role("button", name="Resume").click()
        settle(page)
        assert not problems(page), problems(page)  # a refused resume shows its reason in an error box
        wait_for_status(page, ("queued", "running"), timeout_s=30)
        picker = chosen(page, "job")
        assert job_id in picker and "cancelled" not in picker, picker  # the picker shows the current status
        page.get_by_role("button", name="Cancel").click()  # leave no training behind
        wait_for_status(page, ("cancelled",), timeout_s=240)
        settle(page)
        from playwright.sync_api import Error as PlaywrightError

        # the queue table is a live fragment: a click that lands while it re-renders is lost, so click again
        for attempt in range(3):
            click_grid_cell(page, page.locator("[data-testid='stDataFrame']").first, submitted, x_offset=40)
            try:
                page.wait_for_url(re.compile(rf"jobs\?job={re.escape(submitted)}$"), timeout=15_000)  # in this tab
                break
            except PlaywrightError:
                if attempt == 2:
                    raise
                settle(page)
        settle(page)
        assert submitted in job_heading(page) and len(page.context.pages) == 1
        assert submitted in chosen(page, "job")
    page.close()


def test_open_the_run_and_click_a_confusion_cell(server, browser, submitted):
    url, _ = server
    run_id = json.loads(cli("jobs", "--json").stdout)
    run_id = next(j["run_id"] for j in run_id if j["id"] == submitted)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    with evidence(page, "confusion"):
        page.goto(f"{url}/run?run={run_id}")
        settle(page)
        assert page.locator("h1").first.inner_text() == "Run" and not problems(page)
        chart = page.locator("[data-testid='stPlotlyChart']").filter(
            has=page.locator(".gtitle", has_text="onfusion")).first
        if not chart.count():
            chart = page.locator("[data-testid='stPlotlyChart']").nth(0)
        chart.scroll_into_view_if_needed()
        box = chart.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 6, box["y"] + box["height"] / 6)  # the top-left cell
        settle(page)
        cell = chosen(page, "list the clips of a cell (or click a cell)")
        assert "→" in cell, cell  # the click chose a cell ...
        n = int(re.search(r"\((\d+)\)$", cell).group(1))
        clips = page.locator("[data-testid='stElementContainer']:has(input[aria-label^='list the clips']) ~ "
                             "[data-testid='stElementContainer'] [data-testid='stDataFrame']").first
        clips.scroll_into_view_if_needed()
        deadline = time.time() + 15  # the grid draws its rows after the frame arrives
        rows = clips.locator("[role='row']").all_inner_texts()
        while len(rows) - 1 != n and time.time() < deadline:
            page.wait_for_timeout(300)
            rows = clips.locator("[role='row']").all_inner_texts()
        assert len(rows) - 1 == n, (cell, rows)  # ... and that cell's clips are listed (a header, then n rows)
    page.close()


def test_compare_a_cli_run_with_a_form_run(server, browser, submitted):
    url, cli_run = server
    jobs = json.loads(cli("jobs", "--json").stdout)
    form_run = next(j["run_id"] for j in jobs if j["id"] == submitted)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    with evidence(page, "compare"):
        page.goto(f"{url}/compare?runs={cli_run},{form_run},{cli_run}")
        settle(page)
        assert not problems(page)
        text = page.locator("[data-testid='stMain']").inner_text()
        assert "cannot be compared" not in text.lower()
        assert page.locator("[data-testid='stMetric']").filter(has_text="UF1").count() >= 1  # the paired test ran
        assert cli_run in text and form_run in text  # both runs, the one listed twice shown once (no exception)
        readme_shot(page, "compare")
    page.close()


@pytest.mark.parametrize("path, words", [("jobs?job=no-such-job", "no-such-job"),
                                         ("datasets?dataset=no-such-set", "no-such-set"),
                                         ("explain?run=no-such-run", "no-such-run")])
def test_a_bogus_deep_link_keeps_its_url_and_says_so(server, browser, path, words):
    url, _ = server
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    with evidence(page, "bogus-" + path.split("?")[0]):
        page.goto(f"{url}/{path}")
        settle(page)
        messages = " ".join(e.inner_text() for e in page.locator("[data-testid='stAlert']").all())
        assert words in messages, messages
        page.wait_for_timeout(500)
        assert page.url.endswith(path)  # the address the user gave is kept
    page.close()


def test_open_a_misclassified_clip_in_explain_with_an_overlay(server, browser, submitted):
    url, _ = server
    jobs = json.loads(cli("jobs", "--json").stdout)
    run_id = next(j["run_id"] for j in jobs if j["id"] == submitted)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    with evidence(page, "explain"):
        page.goto(f"{url}/explain?run={run_id}")
        settle(page, 120)
        assert page.locator("h1").first.inner_text() == "Explain" and not problems(page)
        page.locator("[data-testid='stMain']").get_by_text("Failure cases", exact=True).first.click()
        settle(page, 120)
        opened = page.get_by_role("button", name="explain", exact=True)
        if not opened.count():  # a 1-epoch run may get every clip right: then any clip will do
            assert "No misclassified sample" in page.locator("[data-testid='stMain']").inner_text()
            page.locator("[data-testid='stMain']").get_by_text("Sample", exact=True).first.click()
        else:
            opened.first.click()
        settle(page, 180)
        assert not problems(page)
        assert "sample=" in page.url  # the clip is in the link, so a reload shows the same clip
        main = page.locator("[data-testid='stMain']")
        assert main.locator("[data-testid='stImage'] img").count() >= 1  # the overlay drawn on the face
    page.close()


# --- Analyse a clip: a video of one's own through the file uploader --------------------------------------------
def upload(page, path: Path) -> None:
    """Give ``path`` to the page's file uploader (its hidden <input type=file>)."""
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(str(path))


def test_analyse_an_uploaded_video_then_refuse_a_text_file(server, browser, tmp_path):
    url, run_id = server
    video = synthetic_video(tmp_path / "my clip.mp4", blink=True)  # OpenCV's VideoWriter, a blink after the apex
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    failures = watch_failures(page)
    with evidence(page, "analyse"):
        started = time.time()
        page.goto(f"{url}/analyse")
        settle(page)
        assert page.locator("h1").first.inner_text() == "Analyse a clip" and not problems(page)
        page.get_by_role("combobox", name="run", exact=True).first.click()
        page.get_by_role("option").filter(has_text=run_id).first.click()  # the tiny stored run is the model
        settle(page)
        assert run_id in chosen(page, "run")
        upload(page, video)
        verdict = page.locator("h3", has_text="Prediction:").or_(page.get_by_text("No verdict.")).first
        verdict.wait_for(timeout=90_000)  # a 1-epoch run is often close to chance: then no verdict is given
        settle(page)
        assert not problems(page)
        main = page.locator("[data-testid='stMain']")
        spotted = main.locator("p", has_text="Spotted frames").first.inner_text()
        frames = re.search(r"onset (\d+), apex (\d+), offset (\d+) of the file", spotted)
        assert frames and int(frames[1]) < int(frames[2]) <= int(frames[3]), spotted
        assert "left out of the motion curve (a blink was found)" in main.inner_text()  # the spotting's note
        if page.locator("h3", has_text="Prediction:").count():
            bars = page.locator("[data-testid='stPlotlyChart']").filter(has=page.locator("text.bartext")).first
            bars.scroll_into_view_if_needed()
            classes = bars.locator(".ytick text").all_text_contents()  # SVG text: no innerText
            probs = [float(v) for v in bars.locator("text.bartext").all_text_contents()]
            predicted = page.locator("h3", has_text="Prediction:").first.inner_text().split(":", 1)[1].strip()
            assert predicted in classes
        else:  # no verdict: the probabilities in small type
            small = main.get_by_text(re.compile(r"^probabilities: ")).first.inner_text()
            pairs = re.findall(r"(\w+) ([01]\.\d+)", small)
            classes, probs = [c for c, _ in pairs], [float(v) for _, v in pairs]
        assert sorted(classes) == ["negative", "positive", "surprise"], classes  # every class of the run
        assert len(probs) == 3 and abs(sum(probs) - 1) <= 0.02, probs
        page.locator("h1").first.scroll_into_view_if_needed()
        readme_shot(page, "analyse")
        print(f"analyse flow: {time.time() - started:.1f} s to a prediction or its withholding", file=sys.stderr)

        bogus = tmp_path / "holiday.mp4"  # a text file renamed .mp4
        bogus.write_text("Dear diary, today we went to the sea.\n" * 40)
        upload(page, bogus)
        error = page.locator("[data-testid='stAlertContentError']").first
        error.wait_for(timeout=60_000)
        settle(page)
        assert "holiday.mp4" in error.inner_text() and "not a video" in error.inner_text(), error.inner_text()
        assert not page.locator("[data-testid='stException']").count()
        assert not page.locator("h3", has_text="Prediction:").count()  # no prediction from the refused file
        page.reload()  # the server keeps serving
        settle(page)
        assert page.locator("h1").first.inner_text() == "Analyse a clip" and not problems(page)
        assert not failures, failures
        print(f"analyse flow: {time.time() - started:.1f} s in all", file=sys.stderr)
    page.close()


# --- the three newcomers' paths: what the flows above leave out -------------------------------------------------
def test_researcher_submits_a_second_model_and_compare_says_seed_noise_is_not_covered(server, browser, submitted):
    """A second model from the form, watched to done; Compare of the two single-seed runs carries the caveat."""
    url, _ = server
    second = submit_from_form(browser, url, "linear")
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    with evidence(page, "second-model"):
        page.goto(f"{url}/jobs?job={second}")
        settle(page)
        wait_for_status(page, ("done",), timeout_s=240)
        jobs = {j["id"]: j["run_id"] for j in json.loads(cli("jobs", "--json").stdout)}
        page.goto(f"{url}/jobs?job={submitted}")
        settle(page)
        wait_for_status(page, ("done",), timeout_s=240)
        page.goto(f"{url}/compare?runs={jobs[submitted]},{jobs[second]}")
        settle(page, 120)
        assert not problems(page)
        text = page.locator("[data-testid='stMain']").inner_text()
        assert "one training run each" in text and "not how much a score moves" in text, text[:2000]
        assert page.get_by_role("link", name=re.compile("as a study with three seeds")).count() == 1
        assert "linear" in text and "baseline" in text  # the two models, told apart
    page.close()


def test_teacher_sees_the_datasets_magnification_follow_alpha(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    with evidence(page, "datasets-magnification"):
        page.goto(f"{url}/datasets?dataset=manifest&tab=Motion+%26+magnification")
        settle(page, 120)
        assert not problems(page)

        def titles() -> str:
            return " ".join(page.locator("[data-testid='stPlotlyChart'] .gtitle").all_text_contents())

        assert "apex − onset, original" in titles() and "magnified α = 10" in titles(), titles()
        slider = page.get_by_role("slider", name="EVM amplification α")
        slider.focus()
        slider.press("ArrowRight")
        settle(page, 120)
        assert "magnified α = 11" in titles() and not problems(page), titles()
    page.close()


def _clip_without_a_face(path: Path) -> Path:
    """Smooth noise with a patch that moves and comes back: motion, but no face."""
    import cv2
    import numpy as np

    from mer_core.datasets.synthetic.video_export import write_video

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur((rng.random((96, 96)) * 200 + 20).astype(np.float32), (5, 5), 0)
    frames = [np.clip(cv2.warpAffine(base, np.float32([[1, 0, min(t, 12 - t) / 3], [0, 1, 0]]), (96, 96),
                                     borderMode=cv2.BORDER_REFLECT), 0, 255).astype(np.uint8) for t in range(13)]
    return write_video(path, np.stack(frames), 30.0)


def test_analyst_gets_no_verdict_without_a_face_and_the_sidecar_frames_are_used(server, browser, tmp_path):
    url, run_id = server
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    with evidence(page, "analyse-no-face-sidecar"):
        page.goto(f"{url}/analyse?run={run_id}")
        settle(page)
        main = page.locator("[data-testid='stMain']")
        upload(page, _clip_without_a_face(tmp_path / "wall.mp4"))
        page.get_by_text("No verdict.").first.wait_for(timeout=90_000)
        settle(page)
        warning = page.locator("[data-testid='stAlert']", has_text="No verdict.").first.inner_text()
        assert "no face was found" in warning.lower(), warning
        assert not page.locator("h3", has_text="Prediction:").count()  # no verdict in large type
        assert main.get_by_text(re.compile(r"^probabilities: ")).count() == 1  # the probabilities, small
        sidecar = tmp_path / "mine.json"
        sidecar.write_text('{"onset": 2, "apex": 7}')
        page.locator("[data-testid='stFileUploader'] input[type='file']").nth(1).set_input_files(str(sidecar))
        settle(page)
        upload(page, synthetic_video(tmp_path / "mine.mp4", blink=False))
        page.locator("p", has_text="Frames used").first.wait_for(timeout=90_000)
        settle(page)
        used = main.locator("p", has_text="Frames used").first.inner_text()
        assert "onset 2" in used and "apex 7" in used and "sidecar" in used, used
        assert "come from the uploaded sidecar" in main.inner_text()
        assert not problems(page)
    page.close()


# --- spotting: a long-video run submitted, its timeline opened, a missed interval played ---------------------------
SPOT_OPTIONS = ("subjects=2\nvideos_per_subject=1\nmin_seconds=4\nmax_seconds=4\nfps=20\nsize=48\nmax_micro=2\n"
                "max_macro=1\namplitude=0.3")  # faint micro-expressions: a miss to play, whatever the spotter finds


def test_submit_a_spotting_run_open_its_timeline_and_play_a_missed_interval(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    failures = watch_failures(page)
    with evidence(page, "spotting"):
        page.goto(f"{url}/spotting")
        settle(page)
        assert page.locator("h1").first.inner_text() == "Spotting" and not problems(page)
        options = page.get_by_role("textbox", name="dataset options (KEY=VALUE per line)", exact=True)
        options.fill(SPOT_OPTIONS)  # a tiny synthetic-long set: 2 subjects, one 4 s video each
        options.press("Control+Enter")
        settle(page)
        page.get_by_role("button", name="Submit spotting job").click()
        settle(page)
        job_id = page.get_by_text(re.compile(r"^Job \S+ queued\.$")).first.inner_text().split()[1]
        SERVER.setdefault("jobs", []).append(job_id)
        page.get_by_role("link", name=f"Follow job {job_id} on the Jobs page").click()
        page.wait_for_url(re.compile(rf"/jobs\?job={re.escape(job_id)}$"), timeout=30_000)
        settle(page)
        wait_for_status(page, ("done",), timeout_s=180)
        page.wait_for_timeout(2500)  # the fragment's last full render
        settle(page)
        page.get_by_role("link", name=re.compile(r"^Results of run ")).first.click()  # the Spotting page, not Run
        page.wait_for_url(re.compile(r"/spotting\?spot=[^&]+"), timeout=30_000)
        settle(page)
        assert page.locator("h1").first.inner_text() == "Spotting" and not problems(page)
        main = page.locator("[data-testid='stMain']")
        assert "synthetic long videos" in main.inner_text()  # the data, said to be synthetic
        timeline = page.locator("[data-testid='stPlotlyChart']").first  # the timeline: curves, then interval lanes
        assert timeline.locator(".annotation-text", has_text="intervals").count() == 1
        assert timeline.locator(".legendtext", has_text="miss").count() == 1  # a miss among its coloured bars
        from playwright.sync_api import Error as PlaywrightError

        missed = page.get_by_role("option").filter(has_text=re.compile(r"^miss")).first
        for attempt in range(3):  # a click that lands while the page redraws leaves the list closed: open it again
            page.get_by_role("combobox", name="play an interval", exact=True).click()
            try:
                missed.wait_for(timeout=5_000)
                break
            except PlaywrightError:
                page.keyboard.press("Escape")
        missed.click()
        settle(page)
        assert "A miss: no spotted interval" in main.inner_text()
        readout = page.locator("text.slider-label").first
        before = readout.text_content()
        page.locator(".updatemenu-button").first.click()  # ▶
        page.wait_for_timeout(1500)
        assert readout.text_content() != before, before  # the player moves through the interval's frames
        assert not problems(page) and not failures, failures
        readme_shot(page, "spotting")
    page.close()
