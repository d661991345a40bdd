"""An access token for a dashboard bound beyond localhost.

``mer dashboard --host 0.0.0.0`` generates a token, prints it once in the
terminal and hands it to the server as ``MER_ACCESS_TOKEN``. Every browser
session must then present it (``?token=...`` in the link printed, or typed
once into the box); without it no page renders. On 127.0.0.1 no token is
needed: only people on this machine reach the server. A DNS-rebinding page
in a local browser can reach 127.0.0.1 too: the server refuses it by its
Host header (dashboard.server), Streamlit's own XSRF protection stays on,
and paths from the browser are confined (mer_core.datasets.allowed).
"""
from __future__ import annotations

import hmac
import os

import streamlit as st

TOKEN_ENV = "MER_ACCESS_TOKEN"
_OK = "access_ok"


def required_token() -> str:
    """The token sessions must give; empty (or blank) means none is set."""
    return os.environ.get(TOKEN_ENV, "").strip()


def gate() -> bool:
    """True when this session may see the dashboard; otherwise draws the token box and returns False."""
    token = required_token()
    if not token or st.session_state.get(_OK):
        return True
    given = st.query_params.get("token", "")
    if given and hmac.compare_digest(str(given), token):
        st.session_state[_OK] = True
        return True
    st.title("MER Bench")
    st.text("This dashboard is shared beyond this machine: enter the access token printed in the "
            "terminal that started it.")
    typed = st.text_input("access token", type="password", key="access_token_box")
    if typed and hmac.compare_digest(typed, token):
        st.session_state[_OK] = True
        st.rerun()
    elif typed:
        st.error("wrong token")
    return False
