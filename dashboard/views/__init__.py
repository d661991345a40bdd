"""One module per dashboard page, each with a single ``render()``."""
