"""The dashboard in a real browser: Debian's chromium driven by Playwright.

A Streamlit server is started on a free port over a private cache holding one
small stored run. Every sidebar page must render without an exception or an
error box, and a shared link (``/run?run=ID``) opened on a fresh server must
show that run: the first request a server sees is a deep link, as after a
restart. Skipped when chromium or playwright is missing (``make test``
installs chromium when run as root).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    env = {**os.environ, "MER_CACHE": str(cache), "MER_ROOT_MANIFEST": str(manifest.parent)}
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
    import json

    run_id = json.loads(env_run.stdout)[0]["id"]
    yield url, run_id
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


def readme_shot(page, name: str) -> None:
    """A small PNG for the README's Screenshots section, written only when MER_UPDATE_SCREENSHOTS=1."""
    if os.environ.get("MER_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), type="png", scale="css")


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


def test_every_sidebar_page_renders_without_errors(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    settle(page)
    links = page.locator("[data-testid='stSidebarNav'] a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) >= 5
    seen = {}
    for href in hrefs:
        page.goto(href)
        settle(page)
        seen[href] = problems(page)
        if href.rstrip("/").rsplit("/", 1)[-1] in ("datasets", "jobs"):
            readme_shot(page, href.rstrip("/").rsplit("/", 1)[-1])
        assert page.locator("h1").count() >= 1, f"{href} has no title"
    assert not {h: p for h, p in seen.items() if p}
    page.close()
