"""What every dashboard page shows: the user's spaces and the current one, and the small
formatters the templates print with."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from runs import selectors
from runs.models import (
    Run,
    Space,
)

SESSION_SPACE_KEY = "space_id"


# Formatting -------------------------------------------------------------------------


def relative_time(value: datetime, now: datetime | None = None) -> str:
    """ "just now", "4 min ago", "3 h ago", "2 days ago"."""
    seconds = int(((now or timezone.now()) - value).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    if days < 30:
        return f"{days} day{'s' if days != 1 else ''} ago"
    return f"{value:%b} {value.day}, {value.year}"


def time_until(value: datetime, now: datetime | None = None) -> str:
    """ "in 45 s", "in 12 min", "in 5 h", "expired"."""
    seconds = int((value - (now or timezone.now())).total_seconds())
    if seconds <= 0:
        return "expired"
    if seconds < 90:
        return f"in {seconds} s"
    if seconds < 5400:
        return f"in {round(seconds / 60)} min"
    if seconds < 172800:
        return f"in {round(seconds / 3600)} h"
    return f"in {seconds // 86400} days"


def json_preview(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# Spaces -----------------------------------------------------------------------------


@dataclass
class SpaceContext:
    spaces: list[Space]
    current: Space | None


def space_context(request: HttpRequest) -> SpaceContext:
    """The user's spaces (one query) and the current one: the session's, else the first."""
    spaces = list(selectors.spaces_of_user(request.user).order_by("name", "id"))
    wanted = request.session.get(SESSION_SPACE_KEY)
    current = next((space for space in spaces if space.id == wanted), None)
    if current is None and spaces:
        current = spaces[0]
    return SpaceContext(spaces=spaces, current=current)


def base_context(request: HttpRequest, spaces: SpaceContext, **extra: Any) -> dict[str, Any]:
    return {
        "spaces": spaces.spaces,
        "current_space": spaces.current,
        "docs_url": reverse("api-docs"),
        **extra,
    }


def run_context(request: HttpRequest, run: Run, **extra: Any) -> dict[str, Any]:
    """The base context of a page about one run: a run of another of the user's spaces
    is shown in its own space."""
    spaces = space_context(request)
    spaces.current = run.space
    return base_context(request, spaces, run=run, **extra)
