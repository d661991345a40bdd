"""MER Bench dashboard: the st.navigation router, and the server it is served by.

Run with ``make demo`` (or ``mer dashboard``, or ``streamlit run dashboard/app.py``).
``streamlit run`` finds ``app`` below and imports this file once to serve it: on
that import only the server is declared (``st.App`` with the host guard of
:mod:`dashboard.server`). Each browser session then runs this file as its page
script (``__main__``): the router.
"""
import importlib
import threading

import streamlit as st

from dashboard import access, server, widgets, writes
from dashboard.nav import pages


@st.cache_resource(show_spinner=False)
def _warm_imports() -> threading.Thread:
    """Import scipy.signal (about 2 s, EVM's filter) in the background once per server, before a page needs it."""
    thread = threading.Thread(target=importlib.import_module, args=("scipy.signal",), daemon=True)
    thread.start()
    return thread


def main() -> None:
    st.set_page_config(page_title="MER Bench", page_icon="🙂", layout="wide")
    _warm_imports()
    if access.gate():  # a token when bound beyond localhost (mer dashboard --host ...)
        writes.on_dashboard_start()
        st.sidebar.radio("download figures as", widgets.FIG_FORMATS, horizontal=True, key=widgets.FIG_FORMAT_KEY,
                         format_func=str.upper, help="the camera button of every figure saves this format")
        st.navigation(pages(), expanded=True).run()  # every page listed: no "View more"


if __name__ == "__main__":  # a browser session: the pages
    main()
else:  # the server's import (streamlit run serves `app`): never open beyond loopback, host guard first
    server.refuse_to_start_open()
    server.apply_project_settings()
    app = st.App(__file__, middleware=server.middleware())
