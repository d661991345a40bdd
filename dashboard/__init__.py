"""MER Bench dashboard (Streamlit). Pages only read the run store and submit jobs."""
