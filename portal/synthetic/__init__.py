"""Synthetic cities for tests, the demo and benchmarks: a generator with labels, and the feed that
ingests it."""
