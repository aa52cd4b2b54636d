"""How a time looks in bctrl's JSON (API answers, events, webhooks): ISO 8601 in UTC,
ending in `Z`."""

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
