"""MER Bench dashboard: the st.navigation router, nothing else.

Run with ``make demo`` (or ``streamlit run dashboard/app.py``).
"""
import streamlit as st

from dashboard import writes
from dashboard.nav import pages

st.set_page_config(page_title="MER Bench", page_icon="🙂", layout="wide")
writes.on_dashboard_start()
st.navigation(pages()).run()
