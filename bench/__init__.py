"""Benchmark suite: ``python bench/run_all.py`` writes docs/benchmarks.md (see run_all.py)."""
