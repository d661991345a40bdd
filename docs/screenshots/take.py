"""The README's screenshots, from meaningful data: the three newcomers' paths on a copy of a real run store.

    python docs/screenshots/take.py [--cache cache] [--compare RUN_A,RUN_B]

Copies ``CACHE/runs.sqlite`` (finished runs only: jobs and runs still going are dropped, so the dashboard
started here never resumes them) and those runs' folders into a temporary MER_CACHE, links the datasets
read-only beside it, starts the dashboard there and saves one PNG per key page into docs/screenshots/
(1000 px wide, 256 colours). The source cache is never written. Needs Debian's chromium and Playwright.

* researcher: new-experiment, runs, run, compare (the two best runs, with the seed caveat), explain
  (a failure case), leaderboard;
* teacher: overview, lesson, datasets (the Motion & magnification tab);
* clip analyst: analyse-no-face (no verdict for a clip without a face), analyse (an exported synthetic
  clip whose sidecar gives onset and apex); and benchmarks.

jobs.png (a finished job) comes from the browser suite's tiny fixture job:
``MER_UPDATE_SCREENSHOTS=jobs pytest tests/test_browser.py -k reaches_done`` (a list of names: "1" would
rewrite the pictures above with the suite's tiny fixture runs).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
WIDTH = 1000
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else (shutil.which("chromium") or "/usr/bin/chromium")  # Debian's first


def copy_store(source: Path, dest: Path) -> list[dict]:
    """Finished runs of ``source`` (and their folders) into ``dest``; returns them, best pooled UF1 first."""
    dest.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source / 'runs.sqlite'}?mode=ro", uri=True)
    dst = sqlite3.connect(dest / "runs.sqlite")
    src.backup(dst)  # a consistent snapshot even while trainings write
    src.close()
    dst.close()
    sys.path.insert(0, str(REPO))
    from mer_core.store.db import RunStore

    with RunStore(dest / "runs.sqlite") as store:
        runs = store.list_runs()
        for run_id in runs.loc[runs["status"] != "done", "id"]:
            store.delete_run(run_id)
        with store.tx() as c:
            c.execute("DELETE FROM jobs WHERE status NOT IN ('done', 'failed', 'cancelled')")
        runs = store.list_runs()
    (dest / "runs").mkdir(exist_ok=True)
    for run_id in runs["id"]:
        if (source / "runs" / run_id).is_dir():
            shutil.copytree(source / "runs" / run_id, dest / "runs" / run_id)
    (dest / "datasets").mkdir(exist_ok=True)
    for d in (source / "datasets").iterdir() if (source / "datasets").is_dir() else ():
        (dest / "datasets" / d.name).symlink_to(d.resolve(), target_is_directory=d.is_dir())
    return runs.sort_values("uf1", ascending=False, na_position="last").to_dict("records")


def start_dashboard(cache: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MER_CACHE": str(cache)}
    for key in ("MER_STORE", "MER_DATASETS_TOML"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none", "--server.address", "127.0.0.1"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the dashboard did not start within 90 s")


def settle(page, timeout_s: float = 180) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_s * 1000)
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_s * 1000)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stSkeleton']\").length === 0",
                           timeout=timeout_s * 1000)


def shot(page, name: str) -> None:
    from PIL import Image

    page.wait_for_timeout(1500)  # figures and images finish drawing after the script run
    image = Image.open(io.BytesIO(page.screenshot(type="png", scale="css"))).convert("RGB")
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(OUT / f"{name}.png", optimize=True)
    print(f"{name}.png {(OUT / f'{name}.png').stat().st_size // 1024} KB", flush=True)


def visit(page, url: str, name: str, scroll_to: str | None = None) -> None:
    page.goto(url)
    settle(page)
    if scroll_to:
        target = page.get_by_text(scroll_to).first
        if target.count():
            target.scroll_into_view_if_needed()
    shot(page, name)


def no_face_video(path: Path) -> Path:
    """Smooth noise with a patch that moves and comes back: motion, but no face."""
    import cv2
    import numpy as np

    from mer_core.datasets.synthetic.video_export import write_video

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur((rng.random((96, 96)) * 200 + 20).astype(np.float32), (5, 5), 0)
    frames = [np.clip(cv2.warpAffine(base, np.float32([[1, 0, min(t, 12 - t) / 3], [0, 1, 0]]), (96, 96),
                                     borderMode=cv2.BORDER_REFLECT), 0, 255).astype(np.uint8) for t in range(13)]
    return write_video(path, np.stack(frames), 30.0)


def take(url: str, runs: list[dict], compare: list[str], tmp: Path) -> None:
    from playwright.sync_api import sync_playwright

    best = runs[0]["id"]
    pair = compare or [r["id"] for r in runs[:2]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # the teacher
        visit(page, f"{url}/overview", "overview")
        visit(page, f"{url}/lesson", "lesson")
        visit(page, f"{url}/datasets?dataset=synthetic&tab=Motion+%26+magnification", "datasets",
              scroll_to="Eulerian video magnification")  # the set the Lesson generated: frames, so magnification
        # the researcher
        visit(page, f"{url}/new", "new-experiment")
        visit(page, f"{url}/runs", "runs")
        visit(page, f"{url}/run?run={best}", "run")
        visit(page, f"{url}/compare?runs={','.join(pair)}", "compare", scroll_to="one training run each")
        visit(page, f"{url}/leaderboard", "leaderboard")
        page.goto(f"{url}/explain?run={best}")
        settle(page)
        page.locator("[data-testid='stMain']").get_by_text("Failure cases", exact=True).first.click()
        settle(page)
        opened = page.get_by_role("button", name="explain", exact=True)
        if opened.count():
            opened.first.click()
            settle(page)
            images = page.locator("[data-testid='stMain'] [data-testid='stImage']")
            if images.count():
                images.first.scroll_into_view_if_needed()
        shot(page, "explain")
        visit(page, f"{url}/benchmarks", "benchmarks")
        # the clip analyst: a clip without a face, then an exported synthetic clip with its sidecar
        page.goto(f"{url}/analyse")
        settle(page)
        page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
            str(no_face_video(tmp / "wall.mp4")))
        page.get_by_text("No verdict.").first.wait_for(timeout=180_000)
        settle(page)
        page.get_by_text("No verdict.").first.scroll_into_view_if_needed()
        shot(page, "analyse-no-face")
        page.goto(f"{url}/analyse")
        settle(page)
        page.get_by_text("an exported synthetic clip", exact=True).first.click()
        settle(page)
        if page.get_by_role("button", name="Write 6 synthetic clips").count():
            page.get_by_role("button", name="Write 6 synthetic clips").click()
            settle(page)
        page.locator("p", has_text="Frames used").first.wait_for(timeout=180_000)
        settle(page)
        page.locator("p", has_text="Frames used").first.scroll_into_view_if_needed()
        shot(page, "analyse")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=str(REPO / "cache"), help="the cache whose finished runs are shown")
    parser.add_argument("--compare", default="", help="two run ids for Compare (default: the two best)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mer-screenshots-"))
    runs = copy_store(Path(args.cache), tmp / "cache")
    if len(runs) < 2:
        raise SystemExit(f"{args.cache}: two finished runs are needed, found {len(runs)}")
    proc, url = start_dashboard(tmp / "cache")
    try:
        take(url, runs, [r for r in args.compare.split(",") if r], tmp)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
