"""Command-line tools that are not top-level entry points (run as ``python -m src.tools.<name>``)."""
