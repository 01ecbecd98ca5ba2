"""Benchmarks, reported as ratios against a reference measured in the same run (`python -m bench.perf NAME`)."""
