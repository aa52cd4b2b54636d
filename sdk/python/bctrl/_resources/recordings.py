"""Recordings: a run's rrweb batches as a page sends them, and seed 004's recordings API
(/api/v1), where a room is a runtime.

client.runs.recording_events.ingest
client.recordings.list/retrieve/download/archive/recover/delete
client.rooms.recordings.start/stop/sync/import_
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI
from bctrl._models import (
    Recording,
    RecordingBatchResult,
    RecordingDownload,
    RecordingSync,
)
from bctrl._pagination import AsyncOffsetPage, OffsetPage


def batch_request(
    target: str,
    seq: int,
    events: Sequence[dict[str, Any]] | None,
    body: bytes | None,
    content_encoding: str | None,
) -> tuple[bytes, dict[str, str]]:
    """An rrweb batch's body and headers: `body` as it is when given, else the compact
    JSON of `{target, seq, events}`."""
    headers = {"Content-Type": "application/json"}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    if body is not None:
        return body, headers
    document = {"target": target, "seq": seq, "events": list(events or [])}
    return json.dumps(document, separators=(",", ":")).encode(), headers


def import_request(document: Any, gzip: bool) -> tuple[bytes, dict[str, str]]:
    """An import's body (the document's JSON, or its bytes as they are) and headers."""
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = {"Content-Type": "application/json"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return content, headers


def enveloped(answer: Any) -> dict[str, Any]:
    """The object of a /api/v1 answer, which wraps it in `{"data": …}`."""
    data = answer.get("data") if isinstance(answer, dict) else None
    return data if isinstance(data, dict) else {}


def recording_of(answer: Any) -> Recording:
    return Recording.from_json(enveloped(answer))


# A run's rrweb batches -----------------------------------------------------------------------


class RecordingEvents:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def ingest(
        self,
        run_id: str,
        *,
        target: str,
        seq: int,
        events: Sequence[dict[str, Any]] | None = None,
        body: bytes | None = None,
        content_encoding: str | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingBatchResult:
        """Sends one rrweb batch of a page (`target`); idempotent on target + seq, so it is
        retried. `body` sends an already encoded `{target, seq, events}` document as is."""
        content, headers = batch_request(target, seq, events, body, content_encoding)
        path = f"/v1/runs/{run_id}/recording/events"
        answer = self._api.json(
            "POST", path, content=content, headers=headers, idempotent=True, **o
        )
        return RecordingBatchResult.from_json(answer)


class AsyncRecordingEvents:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def ingest(
        self,
        run_id: str,
        *,
        target: str,
        seq: int,
        events: Sequence[dict[str, Any]] | None = None,
        body: bytes | None = None,
        content_encoding: str | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingBatchResult:
        """Sends one rrweb batch of a page (`target`); idempotent on target + seq, so it is
        retried. `body` sends an already encoded `{target, seq, events}` document as is."""
        content, headers = batch_request(target, seq, events, body, content_encoding)
        path = f"/v1/runs/{run_id}/recording/events"
        answer = await self._api.json(
            "POST", path, content=content, headers=headers, idempotent=True, **o
        )
        return RecordingBatchResult.from_json(answer)


# Seed 004's recordings API (/api/v1): rooms are runtimes ---------------------------------


class Recordings:
    """`/api/v1/recordings` (seed 004): list, get, download URL, archive, recover, delete."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self, *, limit: int | None = None, offset: int | None = None, **o: Unpack[CallOptions]
    ) -> OffsetPage[Recording]:
        params = {"limit": limit, "offset": offset}
        answer = self._api.json("GET", "/api/v1/recordings", params=params, **o)
        return OffsetPage(
            answer,
            Recording.from_json,
            lambda following: self.list(limit=limit, offset=following, **o),
        )

    def retrieve(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        return recording_of(self._api.json("GET", f"/api/v1/recordings/{recording_id}", **o))

    def download(
        self,
        recording_id: str,
        *,
        format: Literal["mp4", "rrweb"] | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingDownload:
        """A signed, expiring download URL (or, while it is processed, none yet): the MP4
        of the first tab when the recording has video, else its rrweb events;
        `format="rrweb"` asks for the events, `format="mp4"` for the video only."""
        path = f"/api/v1/recordings/{recording_id}/download"
        params = {"format": format} if format else None
        return RecordingDownload.from_json(self._api.json("GET", path, params=params, **o))

    def archive(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}/archive"
        return recording_of(self._api.json("POST", path, **o))

    def recover(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}/recover"
        return recording_of(self._api.json("POST", path, **o))

    def delete(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}"
        return recording_of(self._api.json("DELETE", path, **o))


class AsyncRecordings:
    """`/api/v1/recordings` (seed 004): list, get, download URL, archive, recover, delete."""

    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self, *, limit: int | None = None, offset: int | None = None, **o: Unpack[CallOptions]
    ) -> AsyncOffsetPage[Recording]:
        params = {"limit": limit, "offset": offset}
        answer = await self._api.json("GET", "/api/v1/recordings", params=params, **o)
        return AsyncOffsetPage(
            answer,
            Recording.from_json,
            lambda following: self.list(limit=limit, offset=following, **o),
        )

    async def retrieve(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}"
        return recording_of(await self._api.json("GET", path, **o))

    async def download(
        self,
        recording_id: str,
        *,
        format: Literal["mp4", "rrweb"] | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingDownload:
        """A signed, expiring download URL (or, while it is processed, none yet): the MP4
        of the first tab when the recording has video, else its rrweb events;
        `format="rrweb"` asks for the events, `format="mp4"` for the video only."""
        path = f"/api/v1/recordings/{recording_id}/download"
        params = {"format": format} if format else None
        return RecordingDownload.from_json(await self._api.json("GET", path, params=params, **o))

    async def archive(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}/archive"
        return recording_of(await self._api.json("POST", path, **o))

    async def recover(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}/recover"
        return recording_of(await self._api.json("POST", path, **o))

    async def delete(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}"
        return recording_of(await self._api.json("DELETE", path, **o))


class RoomRecordings:
    """`/api/v1/rooms/{room}/recordings/…` (seed 004): a room is a runtime."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def start(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/start"
        return recording_of(self._api.json("POST", path, **o))

    def stop(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/stop"
        return recording_of(self._api.json("POST", path, **o))

    def sync(self, room_id: str, **o: Unpack[CallOptions]) -> RecordingSync:
        """Imports the closed sessions of the space's upstream Browser Run account."""
        path = f"/api/v1/rooms/{room_id}/recordings/sync"
        return RecordingSync.from_json(enveloped(self._api.json("POST", path, **o)))

    def import_(
        self, room_id: str, document: Any, *, gzip: bool = False, **o: Unpack[CallOptions]
    ) -> Recording:
        """Imports seed 003's recording document or an rrweb event array (`document`: the
        JSON value, or its bytes)."""
        content, headers = import_request(document, gzip)
        path = f"/api/v1/rooms/{room_id}/recordings/import"
        return recording_of(self._api.json("POST", path, content=content, headers=headers, **o))


class AsyncRoomRecordings:
    """`/api/v1/rooms/{room}/recordings/…` (seed 004): a room is a runtime."""

    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def start(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/start"
        return recording_of(await self._api.json("POST", path, **o))

    async def stop(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/stop"
        return recording_of(await self._api.json("POST", path, **o))

    async def sync(self, room_id: str, **o: Unpack[CallOptions]) -> RecordingSync:
        """Imports the closed sessions of the space's upstream Browser Run account."""
        path = f"/api/v1/rooms/{room_id}/recordings/sync"
        return RecordingSync.from_json(enveloped(await self._api.json("POST", path, **o)))

    async def import_(
        self, room_id: str, document: Any, *, gzip: bool = False, **o: Unpack[CallOptions]
    ) -> Recording:
        """Imports seed 003's recording document or an rrweb event array (`document`: the
        JSON value, or its bytes)."""
        content, headers = import_request(document, gzip)
        path = f"/api/v1/rooms/{room_id}/recordings/import"
        answer = await self._api.json("POST", path, content=content, headers=headers, **o)
        return recording_of(answer)


class Rooms:
    def __init__(self, api: SyncAPI) -> None:
        self.recordings = RoomRecordings(api)


class AsyncRooms:
    def __init__(self, api: AsyncAPI) -> None:
        self.recordings = AsyncRoomRecordings(api)
