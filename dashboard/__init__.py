"""MER Bench dashboard (Streamlit), the top floor beside the CLI (never imported by the library).

Three kinds of module: ``reads`` (cached loaders), ``writes`` (every action that
changes stored state) and shared ``widgets``/``palette``; ``views/`` hold layout only.
"""
