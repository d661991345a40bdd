"""KEY=VALUE parsing shared by the CLI and the dashboard (ground floor)."""
from __future__ import annotations

import json
from typing import Any


def parse_value(text: str) -> Any:
    """A JSON value where the text parses as one, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
