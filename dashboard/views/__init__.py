"""One module per dashboard page, each with a single ``render()``.

Deliberately not named ``pages/``: Streamlit treats a ``pages/`` folder next
to the main script as legacy multipage scripts, and a deep link opened as the
first request after a server restart would run the module file directly (a
blank page) instead of going through ``st.navigation``.
"""
