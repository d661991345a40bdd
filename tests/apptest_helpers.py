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


def unescape(value: str) -> str:
    """What Markdown shows for a backslash-escaped text (hard line breaks back to newlines)."""
    import re

    return re.sub(r"\\(.)", r"\1", value).replace("  \n", "\n")


def assert_no_markup(value: str) -> None:
    """Nothing in ``value`` can open a link, image, tag, colour or autolink: each such character is escaped."""
    import re

    bare = re.sub(r"\\.", "", value)  # drop every escaped character
    assert not set("[]<>") & set(bare), f"unescaped bracket in {value!r}"
    assert not re.search(r":\S", bare), f"unescaped colon (autolink or directive) in {value!r}"
    assert "www.evil" not in value, f"www autolink in {value!r}"
