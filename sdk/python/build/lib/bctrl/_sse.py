"""Server-sent events: the wire format's parser, and streams that resume after a drop.

The server's streams send `retry:` first, `id:` + `event:` + `data:` frames, comment
heartbeats, and `event: end` when the run has ended and everything was sent. A dropped
connection (reset, cut, a read that outlasts the heartbeats) is reopened after the
server's `retry` delay with `Last-Event-ID`, so nothing is seen twice or missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEMessage", "SSEParser"]

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
