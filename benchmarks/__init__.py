"""Benchmarks: scripts that measure and write CSV files, and `benchmarks.report`, which runs them into one Markdown
report with charts; not tests."""
