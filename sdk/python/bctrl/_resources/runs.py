"""Runs: one browser session each, opened, listed, stopped, looked at live or replayed.
A run's parts (events, activity, commands, files, handoffs, viewers, rrweb batches) have
their own modules; `Runs` gathers them as `client.runs.<part>`, and a `Run` reaches
them bound to itself (`run.events.list()`).

client.runs.retrieve/list/iter/create/stop/screenshot/live/recording
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI, joined
from bctrl._errors import BctrlError
from bctrl._models import Artifact, LiveViewer, RecordingViewer, RunData
from bctrl._pagination import AsyncPage, Page
from bctrl._resources.activity import Activity, AsyncActivity, AsyncRunActivity, RunActivity
from bctrl._resources.events import (
    AsyncCommands,
    AsyncEvents,
    AsyncRunCommands,
    AsyncRunEvents,
    Commands,
    Events,
    RunCommands,
    RunEvents,
)
from bctrl._resources.files import (
    Artifacts,
    AsyncArtifacts,
    AsyncFiles,
    AsyncRunArtifacts,
    AsyncRunFiles,
    Files,
    RunArtifacts,
    RunFiles,
)
from bctrl._resources.handoffs import AsyncHandoffs, Handoffs
from bctrl._resources.recordings import AsyncRecordingEvents, RecordingEvents
from bctrl._resources.viewers import AsyncLeases, Leases

if TYPE_CHECKING:
    from bctrl._client import AsyncBctrl, Bctrl


def runs_query(
    status: str | Sequence[str] | None,
    runtime_id: str | None,
    space_id: str | None,
    limit: int | None,
    cursor: str | None,
) -> dict[str, Any]:
    return {
        "status": joined(status),
        "runtimeId": runtime_id,
        "spaceId": space_id,
        "limit": limit,
        "cursor": cursor,
    }


def run_body(
    runtime_id: str | None,
    name: str,
    labels: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "labels": labels or {}, "metadata": metadata or {}}
    if runtime_id is not None:
        body["runtimeId"] = runtime_id
    return body


def stop_body(status: str | None, error: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if status is not None:
        body["status"] = status
    if error is not None:
        body["error"] = error
    return body


def live_body(control: str, expires_in_seconds: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"control": control}
    if expires_in_seconds is not None:
        body["expiresInSeconds"] = expires_in_seconds
    return body


def replay_body(components: Sequence[str] | None, expires_in_seconds: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if components is not None:
        body["components"] = list(components)
    if expires_in_seconds is not None:
        body["expiresInSeconds"] = expires_in_seconds
    return body


# A run, bound to its client ------------------------------------------------------------------


@dataclass
class Run(RunData):
    """A run, with seed 002's helpers: `run.events.list()`, `run.events.wait(timeout=…)`,
    `run.commands.list()`, `run.artifacts.list()`, `run.live()`, `run.recording()`."""

    _client: Bctrl | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def bound_to(cls, client: Bctrl, raw: dict[str, Any]) -> Self:
        """The run of an answer, whose helpers call through `client`."""
        run = cls.from_json(raw)
        run._client = client
        return run

    def _bound(self) -> Bctrl:
        if self._client is None:
            raise BctrlError("This run is not bound to a client.")
        return self._client

    @property
    def events(self) -> RunEvents:
        return RunEvents(self._bound().runs.events, self.id)

    @property
    def commands(self) -> RunCommands:
        return RunCommands(self._bound().runs.commands, self.id)

    @property
    def artifacts(self) -> RunArtifacts:
        return RunArtifacts(self._bound().runs.artifacts, self.id)

    @property
    def activity(self) -> RunActivity:
        return RunActivity(self._bound().runs.activity, self.id)

    @property
    def files(self) -> RunFiles:
        return RunFiles(self._bound().runs.files, self.id)

    def live(
        self,
        *,
        control: str = "none",
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> LiveViewer:
        return self._bound().runs.live(
            self.id, control=control, expires_in_seconds=expires_in_seconds, **o
        )

    def recording(
        self,
        *,
        components: Sequence[str] | None = None,
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingViewer:
        return self._bound().runs.recording(
            self.id, components=components, expires_in_seconds=expires_in_seconds, **o
        )

    def stop(self, *, status: str | None = None, error: Any = None) -> Run:
        return self._bound().runs.stop(self.id, status=status, error=error)

    def refresh(self) -> Run:
        return self._bound().runs.retrieve(self.id)


@dataclass
class AsyncRun(RunData):
    """A run of the asynchronous client, with the same helpers as `Run`, awaited."""

    _client: AsyncBctrl | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def bound_to(cls, client: AsyncBctrl, raw: dict[str, Any]) -> Self:
        """The run of an answer, whose helpers call through `client`."""
        run = cls.from_json(raw)
        run._client = client
        return run

    def _bound(self) -> AsyncBctrl:
        if self._client is None:
            raise BctrlError("This run is not bound to a client.")
        return self._client

    @property
    def events(self) -> AsyncRunEvents:
        return AsyncRunEvents(self._bound().runs.events, self.id)

    @property
    def commands(self) -> AsyncRunCommands:
        return AsyncRunCommands(self._bound().runs.commands, self.id)

    @property
    def artifacts(self) -> AsyncRunArtifacts:
        return AsyncRunArtifacts(self._bound().runs.artifacts, self.id)

    @property
    def activity(self) -> AsyncRunActivity:
        return AsyncRunActivity(self._bound().runs.activity, self.id)

    @property
    def files(self) -> AsyncRunFiles:
        return AsyncRunFiles(self._bound().runs.files, self.id)

    async def live(
        self,
        *,
        control: str = "none",
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> LiveViewer:
        return await self._bound().runs.live(
            self.id, control=control, expires_in_seconds=expires_in_seconds, **o
        )

    async def recording(
        self,
        *,
        components: Sequence[str] | None = None,
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingViewer:
        return await self._bound().runs.recording(
            self.id, components=components, expires_in_seconds=expires_in_seconds, **o
        )

    async def stop(self, *, status: str | None = None, error: Any = None) -> AsyncRun:
        return await self._bound().runs.stop(self.id, status=status, error=error)

    async def refresh(self) -> AsyncRun:
        return await self._bound().runs.retrieve(self.id)


# client.runs ---------------------------------------------------------------------------------


class Runs:
    def __init__(self, client: Bctrl) -> None:
        self._client = client
        self._api: SyncAPI = client._api
        self.events = Events(self._api)
        self.activity = Activity(self._api)
        self.commands = Commands(self._api)
        self.artifacts = Artifacts(self._api)
        self.files = Files(self._api)
        self.leases = Leases(self._api)
        self.handoffs = Handoffs(self._api)
        self.recording_events = RecordingEvents(self._api)

    def _run(self, raw: dict[str, Any]) -> Run:
        return Run.bound_to(self._client, raw)

    def retrieve(self, run_id: str, **o: Unpack[CallOptions]) -> Run:
        """One run, with its usage and its recording's status."""
        return self._run(self._api.json("GET", f"/v1/runs/{run_id}", **o))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        runtime_id: str | None = None,
        space_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Run]:
        """Runs, newest first (iterate the page to follow the cursors)."""
        params = runs_query(status, runtime_id, space_id, limit, cursor)
        answer = self._api.json("GET", "/v1/runs", params=params, **o)

        def fetch(next_: str) -> Page[Run]:
            return self.list(
                status=status,
                runtime_id=runtime_id,
                space_id=space_id,
                limit=limit,
                cursor=next_,
                **o,
            )

        return Page(answer, self._run, fetch)

    def iter(self, **filters: Any) -> Iterator[Run]:
        """Every run matching the filters, newest first, page after page."""
        return iter(self.list(**filters))

    def create(
        self,
        *,
        runtime_id: str | None = None,
        name: str = "",
        labels: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **o: Unpack[CallOptions],
    ) -> Run:
        """Opens a run (409 runtime.run_active if the runtime has one)."""
        body = run_body(runtime_id, name, labels, metadata)
        return self._run(self._api.json("POST", "/v1/runs", json=body, **o))

    def stop(
        self,
        run_id: str,
        *,
        status: str | None = None,
        error: Any = None,
        **o: Unpack[CallOptions],
    ) -> Run:
        """Ends the run (completed, or failed with `error`); stopping twice is harmless."""
        body = stop_body(status, error)
        path = f"/v1/runs/{run_id}/stop"
        return self._run(self._api.json("POST", path, json=body, idempotent=True, **o))

    def screenshot(self, run_id: str, **o: Unpack[CallOptions]) -> Artifact:
        """A screenshot artifact of the runtime's current page."""
        return Artifact.from_json(self._api.json("POST", f"/v1/runs/{run_id}/screenshot", **o))

    def live(
        self,
        run_id: str,
        *,
        control: str = "none",
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> LiveViewer:
        """A live viewer URL (`control`: "none" to watch, "input" to allow take-over)."""
        body = live_body(control, expires_in_seconds)
        answer = self._api.json("POST", f"/v1/runs/{run_id}/live", json=body, **o)
        return LiveViewer.from_json(answer)

    def recording(
        self,
        run_id: str,
        *,
        components: Sequence[str] | None = None,
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingViewer:
        """A replay viewer URL (seed 000): `iframe_url`, `status`, `expires_at`."""
        body = replay_body(components, expires_in_seconds)
        answer = self._api.json("POST", f"/v1/runs/{run_id}/recording", json=body, **o)
        return RecordingViewer.from_json(answer)


class AsyncRuns:
    def __init__(self, client: AsyncBctrl) -> None:
        self._client = client
        self._api: AsyncAPI = client._api
        self.events = AsyncEvents(self._api)
        self.activity = AsyncActivity(self._api)
        self.commands = AsyncCommands(self._api)
        self.artifacts = AsyncArtifacts(self._api)
        self.files = AsyncFiles(self._api)
        self.leases = AsyncLeases(self._api)
        self.handoffs = AsyncHandoffs(self._api)
        self.recording_events = AsyncRecordingEvents(self._api)

    def _run(self, raw: dict[str, Any]) -> AsyncRun:
        return AsyncRun.bound_to(self._client, raw)

    async def retrieve(self, run_id: str, **o: Unpack[CallOptions]) -> AsyncRun:
        """One run, with its usage and its recording's status."""
        return self._run(await self._api.json("GET", f"/v1/runs/{run_id}", **o))

    async def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        runtime_id: str | None = None,
        space_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[AsyncRun]:
        """Runs, newest first (iterate the page to follow the cursors)."""
        params = runs_query(status, runtime_id, space_id, limit, cursor)
        answer = await self._api.json("GET", "/v1/runs", params=params, **o)

        async def fetch(next_: str) -> AsyncPage[AsyncRun]:
            return await self.list(
                status=status,
                runtime_id=runtime_id,
                space_id=space_id,
                limit=limit,
                cursor=next_,
                **o,
            )

        return AsyncPage(answer, self._run, fetch)

    async def iter(self, **filters: Any) -> AsyncIterator[AsyncRun]:
        """Every run matching the filters, newest first, page after page."""
        page = await self.list(**filters)
        async for item in page:
            yield item

    async def create(
        self,
        *,
        runtime_id: str | None = None,
        name: str = "",
        labels: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncRun:
        """Opens a run (409 runtime.run_active if the runtime has one)."""
        body = run_body(runtime_id, name, labels, metadata)
        return self._run(await self._api.json("POST", "/v1/runs", json=body, **o))

    async def stop(
        self,
        run_id: str,
        *,
        status: str | None = None,
        error: Any = None,
        **o: Unpack[CallOptions],
    ) -> AsyncRun:
        """Ends the run (completed, or failed with `error`); stopping twice is harmless."""
        body = stop_body(status, error)
        path = f"/v1/runs/{run_id}/stop"
        return self._run(await self._api.json("POST", path, json=body, idempotent=True, **o))

    async def screenshot(self, run_id: str, **o: Unpack[CallOptions]) -> Artifact:
        """A screenshot artifact of the runtime's current page."""
        answer = await self._api.json("POST", f"/v1/runs/{run_id}/screenshot", **o)
        return Artifact.from_json(answer)

    async def live(
        self,
        run_id: str,
        *,
        control: str = "none",
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> LiveViewer:
        """A live viewer URL (`control`: "none" to watch, "input" to allow take-over)."""
        body = live_body(control, expires_in_seconds)
        answer = await self._api.json("POST", f"/v1/runs/{run_id}/live", json=body, **o)
        return LiveViewer.from_json(answer)

    async def recording(
        self,
        run_id: str,
        *,
        components: Sequence[str] | None = None,
        expires_in_seconds: int | None = None,
        **o: Unpack[CallOptions],
    ) -> RecordingViewer:
        """A replay viewer URL (seed 000): `iframe_url`, `status`, `expires_at`."""
        body = replay_body(components, expires_in_seconds)
        answer = await self._api.json("POST", f"/v1/runs/{run_id}/recording", json=body, **o)
        return RecordingViewer.from_json(answer)
