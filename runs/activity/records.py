"""The records a timeline is folded from: the run's events and commands, as rows.

An event's data and a command's params and error are whatever a runtime or a client
sent, so their values are read here, with readers that never raise.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_TEXT = 300

# The columns read of each event and command, in the order the records' fields take.
EVENT_FIELDS = ("id", "seq", "time", "type", "page_id", "data")
COMMAND_FIELDS = (
    "id",
    "method",
    "params",
    "status",
    "page_id",
    "started_at",
    "ended_at",
    "duration_ms",
    "error",
)

# One record of the merged stream: (time, "e" for an event row or "c" for a command row, row).
Record = tuple[datetime, str, tuple[Any, ...]]


@dataclass(slots=True)
class CommandRecord:
    id: str
    method: str
    params: dict[str, Any]
    status: str
    page_id: str
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    error: Any

    @property
    def end(self) -> datetime:
        return self.ended_at or self.started_at


@dataclass(slots=True)
class EventRecord:
    id: str
    seq: int
    time: datetime
    type: str
    page_id: str
    data: dict[str, Any]


def same_page(a: str, b: str) -> bool:
    """Whether two records can be of one page (a record without a page can be of any)."""
    return a == b or not a or not b


def text(value: Any) -> str:
    """A value as text, cut to MAX_TEXT characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def error_text(error: Any) -> str:
    """What a command's (or a run's) error says, "" when there is none."""
    if error in (None, "", {}, []):
        return ""
    if isinstance(error, dict):
        for key in ("message", "errorText", "error", "reason"):
            if error.get(key):
                return text(error[key])
        return text(json.dumps(error, sort_keys=True, default=str))
    return text(error)


def as_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))
