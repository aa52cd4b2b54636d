"""Benchmarks: `make benchmark` (python -m benchmarks.runs_api) and the others of the
Makefile. See benchmarks/README.md."""

from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, text: str) -> Path:
    """Writes a benchmark's report to benchmarks/results/<name>, says where, and returns it."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / name
    out.write_text(text if text.endswith("\n") else text + "\n")
    print(f"Written to {out}")
    return out
