"""A run's activity: its timeline in words, listed or followed as it comes and changes.

client.runs.activity.list/stream
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI, joined
from bctrl._models import ActivityItem, ActivityList
from bctrl._sse import SSEMessage, afollow, follow


class ActivityChanges:
    """What of a followed activity stream is news: an item not seen yet ("activity") or
    seen with other content ("activity.updated"). A reconnect replays the items; those
    unchanged since are not news."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def news(self, message: SSEMessage) -> ActivityItem | None:
        if message.event not in ("activity", "activity.updated"):
            return None
        raw = message.json()
        key, content = str(raw.get("id")), json.dumps(raw, sort_keys=True)
        if self._seen.get(key) == content:
            return None
        event = "activity" if key not in self._seen else "activity.updated"
        self._seen[key] = content
        item = ActivityItem.from_json(raw)
        item.event = event
        return item


class Activity:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        severity: str | None = None,
        type: str | Sequence[str] | None = None,
        **o: Unpack[CallOptions],
    ) -> ActivityList:
        """The run's timeline in words (`severity` at least, of `type`)."""
        params = {"severity": severity, "type": joined(type)}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/activity", params=params, **o)
        return ActivityList.from_json(answer)

    def stream(self, run_id: str, **o: Unpack[CallOptions]) -> Iterator[ActivityItem]:
        """Activity items as they come and change (`item.event` is "activity" or
        "activity.updated") until the run ends; after a reconnect, only what is new or
        changed since is yielded."""
        changes = ActivityChanges()
        for message in follow(self._api, f"/v1/runs/{run_id}/activity/stream", {}, None, o):
            item = changes.news(message)
            if item is not None:
                yield item


class AsyncActivity:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        severity: str | None = None,
        type: str | Sequence[str] | None = None,
        **o: Unpack[CallOptions],
    ) -> ActivityList:
        """The run's timeline in words (`severity` at least, of `type`)."""
        params = {"severity": severity, "type": joined(type)}
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/activity", params=params, **o)
        return ActivityList.from_json(answer)

    async def stream(self, run_id: str, **o: Unpack[CallOptions]) -> AsyncIterator[ActivityItem]:
        """Activity items as they come and change (`item.event` is "activity" or
        "activity.updated") until the run ends; after a reconnect, only what is new or
        changed since is yielded."""
        changes = ActivityChanges()
        path = f"/v1/runs/{run_id}/activity/stream"
        async for message in afollow(self._api, path, {}, None, o):
            item = changes.news(message)
            if item is not None:
                yield item


# Bound to one run: `run.activity` ------------------------------------------------------------


class RunActivity:
    def __init__(self, activity: Activity, run_id: str) -> None:
        self._activity, self._run_id = activity, run_id

    def list(self, **filters: Any) -> ActivityList:
        return self._activity.list(self._run_id, **filters)

    def stream(self) -> Iterator[ActivityItem]:
        return self._activity.stream(self._run_id)


class AsyncRunActivity:
    def __init__(self, activity: AsyncActivity, run_id: str) -> None:
        self._activity, self._run_id = activity, run_id

    async def list(self, **filters: Any) -> ActivityList:
        return await self._activity.list(self._run_id, **filters)

    def stream(self) -> AsyncIterator[ActivityItem]:
        return self._activity.stream(self._run_id)
