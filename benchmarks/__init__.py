"""Benchmarks: `make benchmark` (python -m benchmarks.runs_api). See benchmarks/README.md."""
