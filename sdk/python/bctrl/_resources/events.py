"""A run's events, as they are recorded (listed, appended, streamed, waited for), and the
commands that drove it.

client.runs.events.list/iter/append/stream/wait
client.runs.commands.list/iter/create
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI, joined, long_poll_timeout
from bctrl._models import Command, Event, EventsAppended, WaitResult
from bctrl._pagination import AsyncPage, Page
from bctrl._sse import afollow, follow


def events_query(
    type: str | Sequence[str] | None, page_id: str | None, **more: int | str | None
) -> dict[str, Any]:
    """The query that picks a run's events: of a `type` (one or several), of a page."""
    return {"type": joined(type), "pageId": page_id, **more}


def stream_start(after: int | None) -> str | None:
    """The `Last-Event-ID` a stream opens with: the seq to follow on from."""
    return str(after) if after is not None else None


def batch_body(key: str, items: Sequence[dict[str, Any]], id_field: str) -> tuple[Any, bool]:
    """A batch's body, and whether sending it twice is harmless (so it may be retried):
    it is when every item carries its `id_field`, by which the server keeps it once."""
    return {key: list(items)}, all(id_field in item for item in items)


# Events --------------------------------------------------------------------------------------


class Events:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        after: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Event]:
        """The run's events by seq (`after` a seq, of a `type`, of a page)."""
        params = events_query(type, page_id, after=after, limit=limit, cursor=cursor)
        answer = self._api.json("GET", f"/v1/runs/{run_id}/events", params=params, **o)

        def fetch(next_: str) -> Page[Event]:
            return self.list(
                run_id, type=type, page_id=page_id, after=after, limit=limit, cursor=next_, **o
            )

        return Page(answer, Event.from_json, fetch)

    def iter(self, run_id: str, **filters: Any) -> Iterator[Event]:
        return iter(self.list(run_id, **filters))

    def append(
        self, run_id: str, events: Sequence[dict[str, Any]], **o: Unpack[CallOptions]
    ) -> EventsAppended:
        """Appends a batch. With seqs, a repeated batch is accepted once, so it is retried."""
        body, numbered = batch_body("events", events, "seq")
        path = f"/v1/runs/{run_id}/events"
        answer = self._api.json("POST", path, json=body, idempotent=numbered, **o)
        return EventsAppended.from_json(answer)

    def stream(
        self,
        run_id: str,
        *,
        after: int | None = None,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Iterator[Event]:
        """The run's events as they happen (SSE), from `after` on, until the run ends. A
        dropped connection is reopened from the last event seen (`Last-Event-ID`)."""
        path = f"/v1/runs/{run_id}/events/stream"
        params = events_query(type, page_id)
        for message in follow(self._api, path, params, stream_start(after), o):
            if message.event == "event":
                yield Event.from_json(message.json())

    def wait(
        self,
        run_id: str,
        *,
        timeout: float = 30.0,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        after: int | None = None,
        max_retries: int | None = None,
    ) -> WaitResult:
        """The next event (of `type`, after `after` or the run's latest), waiting up to
        `timeout` seconds: `.event`, or `.timed_out`, or `.run_ended`."""
        params = {"timeoutMs": int(timeout * 1000), **events_query(type, page_id, after=after)}
        answer = self._api.json(
            "GET",
            f"/v1/runs/{run_id}/events/wait",
            params=params,
            timeout=long_poll_timeout(timeout),
            max_retries=max_retries,
        )
        return WaitResult.from_json(answer)


class AsyncEvents:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        after: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[Event]:
        """The run's events by seq (`after` a seq, of a `type`, of a page)."""
        params = events_query(type, page_id, after=after, limit=limit, cursor=cursor)
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/events", params=params, **o)

        async def fetch(next_: str) -> AsyncPage[Event]:
            return await self.list(
                run_id, type=type, page_id=page_id, after=after, limit=limit, cursor=next_, **o
            )

        return AsyncPage(answer, Event.from_json, fetch)

    async def iter(self, run_id: str, **filters: Any) -> AsyncIterator[Event]:
        page = await self.list(run_id, **filters)
        async for item in page:
            yield item

    async def append(
        self, run_id: str, events: Sequence[dict[str, Any]], **o: Unpack[CallOptions]
    ) -> EventsAppended:
        """Appends a batch. With seqs, a repeated batch is accepted once, so it is retried."""
        body, numbered = batch_body("events", events, "seq")
        path = f"/v1/runs/{run_id}/events"
        answer = await self._api.json("POST", path, json=body, idempotent=numbered, **o)
        return EventsAppended.from_json(answer)

    async def stream(
        self,
        run_id: str,
        *,
        after: int | None = None,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncIterator[Event]:
        """The run's events as they happen (SSE), from `after` on, until the run ends. A
        dropped connection is reopened from the last event seen (`Last-Event-ID`)."""
        path = f"/v1/runs/{run_id}/events/stream"
        params = events_query(type, page_id)
        async for message in afollow(self._api, path, params, stream_start(after), o):
            if message.event == "event":
                yield Event.from_json(message.json())

    async def wait(
        self,
        run_id: str,
        *,
        timeout: float = 30.0,
        type: str | Sequence[str] | None = None,
        page_id: str | None = None,
        after: int | None = None,
        max_retries: int | None = None,
    ) -> WaitResult:
        """The next event (of `type`, after `after` or the run's latest), waiting up to
        `timeout` seconds: `.event`, or `.timed_out`, or `.run_ended`."""
        params = {"timeoutMs": int(timeout * 1000), **events_query(type, page_id, after=after)}
        answer = await self._api.json(
            "GET",
            f"/v1/runs/{run_id}/events/wait",
            params=params,
            timeout=long_poll_timeout(timeout),
            max_retries=max_retries,
        )
        return WaitResult.from_json(answer)


# Commands ------------------------------------------------------------------------------------


class Commands:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Command]:
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/commands", params=params, **o)
        return Page(
            answer,
            Command.from_json,
            lambda next_: self.list(run_id, limit=limit, cursor=next_, **o),
        )

    def iter(self, run_id: str, **filters: Any) -> Iterator[Command]:
        return iter(self.list(run_id, **filters))

    def create(
        self, run_id: str, commands: Sequence[dict[str, Any]], **o: Unpack[CallOptions]
    ) -> Any:
        """Records commands (a command `id` sent twice is kept once)."""
        body, has_ids = batch_body("commands", commands, "id")
        path = f"/v1/runs/{run_id}/commands"
        return self._api.json("POST", path, json=body, idempotent=has_ids, **o)


class AsyncCommands:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[Command]:
        params = {"limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/commands", params=params, **o)
        return AsyncPage(
            answer,
            Command.from_json,
            lambda next_: self.list(run_id, limit=limit, cursor=next_, **o),
        )

    async def iter(self, run_id: str, **filters: Any) -> AsyncIterator[Command]:
        page = await self.list(run_id, **filters)
        async for item in page:
            yield item

    async def create(
        self, run_id: str, commands: Sequence[dict[str, Any]], **o: Unpack[CallOptions]
    ) -> Any:
        """Records commands (a command `id` sent twice is kept once)."""
        body, has_ids = batch_body("commands", commands, "id")
        path = f"/v1/runs/{run_id}/commands"
        return await self._api.json("POST", path, json=body, idempotent=has_ids, **o)


# Bound to one run: `run.events`, `run.commands` ----------------------------------------------


class RunEvents:
    def __init__(self, events: Events, run_id: str) -> None:
        self._events, self._run_id = events, run_id

    def list(self, **filters: Any) -> Page[Event]:
        return self._events.list(self._run_id, **filters)

    def iter(self, **filters: Any) -> Iterator[Event]:
        return self._events.iter(self._run_id, **filters)

    def wait(self, *, timeout: float = 30.0, **filters: Any) -> WaitResult:
        return self._events.wait(self._run_id, timeout=timeout, **filters)

    def stream(self, **filters: Any) -> Iterator[Event]:
        return self._events.stream(self._run_id, **filters)

    def append(self, events: Sequence[dict[str, Any]]) -> EventsAppended:
        return self._events.append(self._run_id, events)


class AsyncRunEvents:
    def __init__(self, events: AsyncEvents, run_id: str) -> None:
        self._events, self._run_id = events, run_id

    async def list(self, **filters: Any) -> AsyncPage[Event]:
        return await self._events.list(self._run_id, **filters)

    def iter(self, **filters: Any) -> AsyncIterator[Event]:
        return self._events.iter(self._run_id, **filters)

    async def wait(self, *, timeout: float = 30.0, **filters: Any) -> WaitResult:
        return await self._events.wait(self._run_id, timeout=timeout, **filters)

    def stream(self, **filters: Any) -> AsyncIterator[Event]:
        return self._events.stream(self._run_id, **filters)

    async def append(self, events: Sequence[dict[str, Any]]) -> EventsAppended:
        return await self._events.append(self._run_id, events)


class RunCommands:
    def __init__(self, commands: Commands, run_id: str) -> None:
        self._commands, self._run_id = commands, run_id

    def list(self, **filters: Any) -> Page[Command]:
        return self._commands.list(self._run_id, **filters)


class AsyncRunCommands:
    def __init__(self, commands: AsyncCommands, run_id: str) -> None:
        self._commands, self._run_id = commands, run_id

    async def list(self, **filters: Any) -> AsyncPage[Command]:
        return await self._commands.list(self._run_id, **filters)
