"""Server-sent events: the wire format's parser, and streams that resume after a drop.

The server's streams send `retry:` first, `id:` + `event:` + `data:` frames, comment
heartbeats, and `event: end` when the run has ended and everything was sent. A dropped
connection (reset, cut, a read that outlasts the heartbeats) is reopened after the
server's `retry` delay with `Last-Event-ID`, so nothing is seen twice or missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bctrl._base import AsyncAPI, CallOptions, SyncAPI
from bctrl._errors import APIConnectionError, BctrlError

__all__ = ["SSEMessage", "SSEParser", "afollow", "follow"]

DEFAULT_RETRY_S = 2.0
# Heartbeats come every 15 s: a read that waits longer than this is a dead connection.
READ_TIMEOUT_S = 45.0
MAX_CONSECUTIVE_FAILURES = 10


@dataclass
class SSEMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


class SSEParser:
    """Feeds lines, gets messages; `retry_s` is the server's latest reconnect delay."""

    def __init__(self) -> None:
        self.retry_s = DEFAULT_RETRY_S
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> SSEMessage | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data and not self._event:
                self._id = None
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_s = int(value) / 1000
        return None

    def messages(self, lines: Iterable[str]) -> Iterator[SSEMessage]:
        for line in lines:
            message = self.feed(line)
            if message is not None:
                yield message

    async def amessages(self, lines: AsyncIterator[str]) -> AsyncIterator[SSEMessage]:
        async for line in lines:
            message = self.feed(line)
            if message is not None:
                yield message


def sse_timeout(base: float | httpx.Timeout | None) -> httpx.Timeout:
    """A stream's timeout: the call's own for connecting, and for reading one that a live
    stream's heartbeats never let pass."""
    connect = base.connect if isinstance(base, httpx.Timeout) else base
    return httpx.Timeout(connect=connect or 10.0, read=READ_TIMEOUT_S, write=10.0, pool=10.0)


class Resumption:
    """Where a followed stream picks up after a drop (the last event id seen) and how many
    times in a row it has dropped: what `follow` and `afollow` decide, kept apart from
    their I/O so that both decide it the same way."""

    def __init__(self, path: str, last_id: str | None) -> None:
        self.path = path
        self.last_id = last_id
        self.failures = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        return headers

    def received(self, message: SSEMessage) -> bool:
        """Notes a message; False when it is the stream's `end`."""
        self.failures = 0
        if message.event == "end":
            return False
        if message.id is not None:
            self.last_id = message.id
        return True

    def dropped(self) -> bool:
        """Counts a lost connection; False once too many were lost in a row."""
        self.failures += 1
        return self.failures <= MAX_CONSECUTIVE_FAILURES

    def closed_early(self) -> None:
        """Counts a stream closed without its `end` (the server restarts, the database
        left); raises once that happened too many times in a row."""
        self.failures += 1
        if self.failures > MAX_CONSECUTIVE_FAILURES:
            raise BctrlError(f"The stream {self.path} keeps closing without its end.")


def follow(
    api: SyncAPI,
    path: str,
    params: Mapping[str, Any],
    last_id: str | None,
    options: CallOptions,
) -> Iterator[SSEMessage]:
    """SSE messages of `path` until `event: end`, reconnecting after drops."""
    parser = SSEParser()
    resumption = Resumption(path, last_id)
    timeout = sse_timeout(options.get("timeout", api.timeout))
    while True:
        try:
            with api.stream(
                "GET",
                path,
                params=params,
                headers=resumption.headers(),
                timeout=timeout,
                max_retries=options.get("max_retries"),
            ) as response:
                for message in parser.messages(response.iter_lines()):
                    if not resumption.received(message):
                        return
                    yield message
        except (APIConnectionError, httpx.TransportError):
            if not resumption.dropped():
                raise
        else:
            resumption.closed_early()
        api._sleep(parser.retry_s)


async def afollow(
    api: AsyncAPI,
    path: str,
    params: Mapping[str, Any],
    last_id: str | None,
    options: CallOptions,
) -> AsyncIterator[SSEMessage]:
    """`follow`, awaited."""
    parser = SSEParser()
    resumption = Resumption(path, last_id)
    timeout = sse_timeout(options.get("timeout", api.timeout))
    while True:
        try:
            async with api.stream(
                "GET",
                path,
                params=params,
                headers=resumption.headers(),
                timeout=timeout,
                max_retries=options.get("max_retries"),
            ) as response:
                async for message in parser.amessages(response.aiter_lines()):
                    if not resumption.received(message):
                        return
                    yield message
        except (APIConnectionError, httpx.TransportError):
            if not resumption.dropped():
                raise
        else:
            resumption.closed_early()
        await api._async_sleep(parser.retry_s)
