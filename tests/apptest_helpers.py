"""Render one dashboard page module with Streamlit's AppTest."""
from __future__ import annotations

import sys

from streamlit.testing.v1 import AppTest


def page_app(module: str, **query) -> AppTest:
    def script():
        import importlib
        import sys

        mod = importlib.import_module(sys.argv[-1])
        mod.render()

    at = AppTest.from_function(script, default_timeout=30)
    for k, v in query.items():
        at.query_params[k] = v
    sys.argv.append(f"dashboard.pages.{module}")
    try:
        at.run()
    finally:
        sys.argv.pop()
    return at
