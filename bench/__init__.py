"""Benchmarks: each runs as ``python -m bench.NAME [--quick]`` and ends with one JSON line."""
