"""Benchmarks: scripts that measure and print numbers and write CSV files; not tests."""
