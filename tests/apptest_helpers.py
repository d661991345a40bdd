"""Render one dashboard page module with Streamlit's AppTest."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script(module: str) -> None:
    import importlib

    importlib.import_module(module).render()


def page_app(module: str, **query) -> AppTest:
    """An AppTest of ``dashboard.views.<module>.render()`` with the given query params, already run.

    The module name travels as the script's argument, so ``widget.set_value(...).run()``
    reruns the same page.
    """
    at = AppTest.from_function(_script, default_timeout=30, args=(f"dashboard.views.{module}",))
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()
