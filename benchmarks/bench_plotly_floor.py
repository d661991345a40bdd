"""The floor of a cold page visit in the browser, with and without Plotly charts.

A throwaway Streamlit page that draws N tiny Plotly charts (``?n=N``) is opened in a new chromium tab, timed
as benchmarks/bench_pages.py times a cold visit (until no script runs, no spinner is left and every chart is
drawn). It separates what the dashboard's pages cost from what any Streamlit page with a chart costs on this
machine: the browser parses and starts plotly.js in every new tab once the first chart arrives.

    .venv/bin/python benchmarks/bench_plotly_floor.py            # 0, 1 and 7 charts, 3 visits each
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pages as bp  # noqa: E402  (its browser helpers: the same timing as the page bench)

PAGE = '''import plotly.graph_objects as go
import streamlit as st
st.title("charts")
for i in range(int(st.query_params.get("n", "0"))):
    st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[i, 2, 1])), key=f"c{i}")
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--charts", type=int, nargs="+", default=[0, 1, 7])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "charts.py"
        page.write_text(PAGE)
        with bp.server(str(page), dict(os.environ)) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=bp.CHROMIUM, args=bp.BROWSER_FLAGS)
            tab, _ = bp._open(browser, url, "")  # the server's first session: its imports not charged
            tab.close()
            for n in args.charts:
                for _ in range(args.repeats):
                    load = bp.load()
                    tab, seconds = bp._open(browser, url, f"?n={n}")
                    tab.close()
                    print(f"{n} chart(s): {seconds:.2f} s cold in a new tab (load {load})", flush=True)
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
