"""Activity: the human-readable timeline of a run, derived from its events and commands."""

from typing import Any

from runs.models import Run


def activity_items(run: Run) -> list[dict[str, Any]]:
    """Returns the run's activity items in time order (to be written)."""
    return []
