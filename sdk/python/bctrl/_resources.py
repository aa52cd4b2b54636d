"""The calls of the synchronous client, grouped by resource as the API is.

client.runtimes.create/retrieve/list/iter/start/stop/current_run
client.runs.retrieve/list/iter/create/stop/screenshot/live/recording
client.runs.events.list/iter/append/stream/wait
client.runs.activity.list/stream      client.runs.commands.list/iter/create
client.runs.artifacts.list/iter/upload/download
client.runs.files.list/iter/export/retrieve_export/download_export
client.runs.leases.list/iter          client.leases.revoke
client.runs.handoffs.create/retrieve/wait/list/complete/cancel
client.runs.recording_events.ingest   client.spaces.retrieve/update, .upstream
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Unpack

import httpx

from bctrl._base import CallOptions, SyncAPI
from bctrl._errors import APIConnectionError, BctrlError
from bctrl._models import (
    ActivityItem,
    ActivityList,
    Artifact,
    Command,
    Event,
    EventsAppended,
    Export,
    Handoff,
    Lease,
    LiveViewer,
    Profile,
    Recording,
    RecordingBatchResult,
    RecordingDownload,
    RecordingSync,
    RecordingViewer,
    RunData,
    RuntimeData,
    RuntimeFile,
    RuntimeStarted,
    Space,
    Upstream,
    WaitResult,
)
from bctrl._pagination import OffsetPage, Page
from bctrl._sse import MAX_CONSECUTIVE_FAILURES, READ_TIMEOUT_S, SSEParser

if TYPE_CHECKING:
    from bctrl._client import Bctrl

# A start answers once the browser is up; placing and launching may take a while.
START_TIMEOUT_S = 180.0
EXPORT_POLL_S = 0.5
# The longest a single `GET …/handoff/{id}?waitMs=` waits on the server; `wait` repeats it.
HANDOFF_WAIT_MAX_MS = 60_000

Progress = Callable[[int, int | None], None]


def joined(values: str | Sequence[str] | None) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


def handoff_body(instructions: str, timeout_ms: int | None, notify: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"instructions": instructions}
    if timeout_ms is not None:
        body["timeoutMs"] = timeout_ms
    if notify is not None:
        body["notify"] = notify
    return body


def sse_timeout(base: float | httpx.Timeout | None) -> httpx.Timeout:
    connect = base.connect if isinstance(base, httpx.Timeout) else base
    return httpx.Timeout(connect=connect or 10.0, read=READ_TIMEOUT_S, write=10.0, pool=10.0)


# Runtimes ------------------------------------------------------------------------------------


@dataclass
class Runtime(RuntimeData):
    """A runtime, with seed 002's `current_run()`."""

    _client: Bctrl | None = field(default=None, init=False, repr=False, compare=False)

    def current_run(self, **options: Unpack[CallOptions]) -> Run:
        """The runtime's active run: from the cached `active_run_id` if that run still runs,
        else from a fresh look at the runtime. Raises `NoActiveRunError`
        (`runtime.no_active_run`) when it has none."""
        assert self._client is not None
        runs = self._client.runs
        if self.active_run_id:
            run = runs.retrieve(self.active_run_id, **options)
            if run.status == "running":
                return run
        return self._client.runtimes.current_run(self.id, **options)

    def refresh(self) -> Runtime:
        assert self._client is not None
        return self._client.runtimes.retrieve(self.id)


def start_body(extra: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """A start's JSON body: the fields given (camelCase), over `extra`."""
    body = dict(extra or {})
    body.update({name: value for name, value in fields.items() if value is not None})
    return body


def file_form(
    file: bytes | IO[bytes] | str | Path, *, name: str | None, content_type: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The multipart parts of a file upload: the file (read from disk for a path) and the
    form fields `name` and `contentType`."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        content: bytes | IO[bytes] = path.read_bytes()
        name = name or path.name
    else:
        content = file
    form: dict[str, str] = {}
    if name:
        form["name"] = name
    if content_type:
        form["contentType"] = content_type
    files = {"file": (name or "file", content, content_type or "application/octet-stream")}
    return files, form


class Runtimes:
    def __init__(self, client: Bctrl) -> None:
        self._client = client
        self._api: SyncAPI = client._api

    def _runtime(self, raw: dict[str, Any]) -> Runtime:
        runtime = Runtime.from_json(raw)
        runtime._client = self._client
        return runtime

    def create(
        self, *, name: str = "", config: dict[str, Any] | None = None, **o: Unpack[CallOptions]
    ) -> Runtime:
        body: dict[str, Any] = {"name": name}
        if config is not None:
            body["config"] = config
        return self._runtime(self._api.json("POST", "/v1/runtimes", json=body, **o))

    def retrieve(self, runtime_id: str, **o: Unpack[CallOptions]) -> Runtime:
        return self._runtime(self._api.json("GET", f"/v1/runtimes/{runtime_id}", **o))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, **o: Unpack[CallOptions]
    ) -> Page[Runtime]:
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", "/v1/runtimes", params=params, **o)
        return Page(answer, self._runtime, lambda next_: self.list(limit=limit, cursor=next_, **o))

    def iter(self, *, limit: int | None = None, **o: Unpack[CallOptions]) -> Iterator[Runtime]:
        return iter(self.list(limit=limit, **o))

    def start(
        self,
        runtime_id: str,
        *,
        recording: bool | None = None,
        keep_alive_ms: int | None = None,
        wait_ms: int | None = None,
        viewport: tuple[int, int] | None = None,
        user_agent: str | None = None,
        locale: str | None = None,
        timezone: str | None = None,
        proxy: Mapping[str, str] | None = None,
        profile_id: str | None = None,
        persist: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **o: Unpack[CallOptions],
    ) -> RuntimeStarted:
        """Starts the runtime and opens its run; answers once the browser is up. A full or
        absent fleet (429 runtime.capacity, 503 runtime.no_host) is retried after the
        server's Retry-After, `max_retries` times; `wait_ms` asks the server to wait.
        Browser options: `viewport` (width, height), `user_agent`, `locale`, `timezone`,
        `proxy` ({"server", "username", "password"}); `profile_id` loads a profile and
        `persist=True` saves the browser's state back into it when the run stops.
        `extra_body` adds fields of the start's body as the API names them (camelCase)."""
        body = start_body(
            extra_body,
            recording=recording,
            keepAliveMs=keep_alive_ms,
            viewport={"width": viewport[0], "height": viewport[1]} if viewport else None,
            userAgent=user_agent,
            locale=locale,
            timezone=timezone,
            proxy=dict(proxy) if proxy else None,
            profileId=profile_id,
            persist=persist,
        )
        o.setdefault("timeout", START_TIMEOUT_S + (wait_ms or 0) / 1000)
        answer = self._api.json(
            "POST",
            f"/v1/runtimes/{runtime_id}/start",
            json=body,
            params={"waitMs": wait_ms},
            **o,
        )
        return RuntimeStarted.from_json(answer)

    def stop(self, runtime_id: str, **o: Unpack[CallOptions]) -> Runtime:
        """Stops the runtime; its run ends and its recording is processed."""
        return self._runtime(
            self._api.json("POST", f"/v1/runtimes/{runtime_id}/stop", idempotent=True, **o)
        )

    def current_run(self, runtime_id: str, **o: Unpack[CallOptions]) -> Run:
        """The runtime's active run; `NoActiveRunError` (runtime.no_active_run) if none."""
        answer = self._api.json("GET", f"/v1/runtimes/{runtime_id}/current-run", **o)
        return self._client.runs._run(answer)

    def upload_file(
        self,
        runtime_id: str,
        file: bytes | IO[bytes] | str | Path,
        *,
        name: str | None = None,
        content_type: str | None = None,
        **o: Unpack[CallOptions],
    ) -> RuntimeFile:
        """Puts a file where the running browser's file inputs reach it (kept as an
        `upload` artifact of its run); `.path` is what `set_input_files` takes."""
        files, form = file_form(file, name=name, content_type=content_type)
        path = f"/v1/runtimes/{runtime_id}/files"
        answer = self._api.json("POST", path, files=files, data=form, **o)
        return RuntimeFile.from_json(answer)

    def files(
        self,
        runtime_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[RuntimeFile]:
        """The files uploaded for the runtime's current run."""
        path = f"/v1/runtimes/{runtime_id}/files"
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", path, params=params, **o)
        return Page(
            answer,
            RuntimeFile.from_json,
            lambda next_: self.files(runtime_id, limit=limit, cursor=next_, **o),
        )


class Profiles:
    """Browser profiles of the key's space: cookies and local storage that a start loads
    (`profile_id=`) and, with `persist=True`, saves back when its run stops."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(self, *, name: str, **o: Unpack[CallOptions]) -> Profile:
        answer = self._api.json("POST", "/v1/profiles", json={"name": name}, **o)
        return Profile.from_json(answer)

    def retrieve(self, profile_id: str, **o: Unpack[CallOptions]) -> Profile:
        return Profile.from_json(self._api.json("GET", f"/v1/profiles/{profile_id}", **o))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, **o: Unpack[CallOptions]
    ) -> Page[Profile]:
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", "/v1/profiles", params=params, **o)
        return Page(
            answer, Profile.from_json, lambda next_: self.list(limit=limit, cursor=next_, **o)
        )

    def delete(self, profile_id: str, **o: Unpack[CallOptions]) -> None:
        """Deletes it (409 profile.in_use while a running run will save into it)."""
        self._api.send("DELETE", f"/v1/profiles/{profile_id}", **o)


# Runs ----------------------------------------------------------------------------------------


@dataclass
class Run(RunData):
    """A run, with seed 002's helpers: `run.events.list()`, `run.events.wait(timeout=…)`,
    `run.commands.list()`, `run.artifacts.list()`, `run.live()`, `run.recording()`."""

    _client: Bctrl | None = field(default=None, init=False, repr=False, compare=False)

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
        params = {
            "type": joined(type),
            "pageId": page_id,
            "after": after,
            "limit": limit,
            "cursor": cursor,
        }
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
        numbered = all("seq" in event for event in events)
        answer = self._api.json(
            "POST",
            f"/v1/runs/{run_id}/events",
            json={"events": list(events)},
            idempotent=numbered,
            **o,
        )
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
        last_id = str(after) if after is not None else None
        params = {"type": joined(type), "pageId": page_id}
        for message in _follow(self._api, f"/v1/runs/{run_id}/events/stream", params, last_id, o):
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
        params = {
            "timeoutMs": int(timeout * 1000),
            "type": joined(type),
            "pageId": page_id,
            "after": after,
        }
        answer = self._api.json(
            "GET",
            f"/v1/runs/{run_id}/events/wait",
            params=params,
            timeout=httpx.Timeout(timeout + 30.0, connect=10.0),
            max_retries=max_retries,
        )
        return WaitResult.from_json(answer)


def _follow(
    api: SyncAPI,
    path: str,
    params: dict[str, Any],
    last_id: str | None,
    options: CallOptions,
) -> Iterator[Any]:
    """SSE messages of `path` until `event: end`, reconnecting after drops."""
    parser = SSEParser()
    failures = 0
    timeout = sse_timeout(options.get("timeout", api.timeout))
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with api.stream(
                "GET",
                path,
                params=params,
                headers=headers,
                timeout=timeout,
                max_retries=options.get("max_retries"),
            ) as response:
                for message in parser.messages(response.iter_lines()):
                    failures = 0
                    if message.event == "end":
                        return
                    if message.id is not None:
                        last_id = message.id
                    yield message
        except (APIConnectionError, httpx.TransportError):
            failures += 1
            if failures > MAX_CONSECUTIVE_FAILURES:
                raise
        else:
            failures += 1  # closed without `end` (the server restarts, the database left)
            if failures > MAX_CONSECUTIVE_FAILURES:
                raise BctrlError(f"The stream {path} keeps closing without its end.")
        api._sleep(parser.retry_s)


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
        seen: dict[str, str] = {}
        path = f"/v1/runs/{run_id}/activity/stream"
        for message in _follow(self._api, path, {}, None, o):
            if message.event not in ("activity", "activity.updated"):
                continue
            raw = message.json()
            key, content = str(raw.get("id")), json.dumps(raw, sort_keys=True)
            if seen.get(key) == content:
                continue
            event = "activity" if key not in seen else "activity.updated"
            seen[key] = content
            item = ActivityItem.from_json(raw)
            item.event = event
            yield item


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
        has_ids = all("id" in command for command in commands)
        return self._api.json(
            "POST",
            f"/v1/runs/{run_id}/commands",
            json={"commands": list(commands)},
            idempotent=has_ids,
            **o,
        )


def _download(
    api: SyncAPI,
    path: str,
    to: str | Path | IO[bytes] | None,
    on_progress: Progress | None,
    options: CallOptions,
) -> bytes | Path:
    """Streams a file: into `to` (a path or a binary file) or, without it, into bytes."""
    chunks: list[bytes] = []
    done = 0
    with api.stream("GET", path, headers={"Accept": "*/*"}, **options) as response:
        total = (
            int(response.headers["content-length"])
            if "content-length" in response.headers
            else None
        )
        target: IO[bytes] | None = None
        opened = False
        if isinstance(to, (str, Path)):
            target, opened = open(to, "wb"), True  # noqa: SIM115 (closed below)
        elif to is not None:
            target = to
        try:
            for chunk in response.iter_bytes():
                if target is not None:
                    target.write(chunk)
                else:
                    chunks.append(chunk)
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, total)
        finally:
            if opened and target is not None:
                target.close()
    return Path(to) if isinstance(to, (str, Path)) else b"".join(chunks)


class Artifacts:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        kind: str | Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Artifact]:
        params = {"kind": joined(kind), "limit": limit, "cursor": cursor}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/artifacts", params=params, **o)
        return Page(
            answer,
            Artifact.from_json,
            lambda next_: self.list(run_id, kind=kind, limit=limit, cursor=next_, **o),
        )

    def iter(self, run_id: str, **filters: Any) -> Iterator[Artifact]:
        return iter(self.list(run_id, **filters))

    def upload(
        self,
        run_id: str,
        file: bytes | IO[bytes] | str | Path,
        *,
        kind: str,
        name: str | None = None,
        content_type: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Artifact:
        """Stores a file as an artifact of the run (`kind`: screenshot, download, report…)."""
        files, form = file_form(file, name=name, content_type=content_type)
        form["kind"] = kind
        answer = self._api.json("POST", f"/v1/runs/{run_id}/artifacts", files=files, data=form, **o)
        return Artifact.from_json(answer)

    def download(
        self,
        run_id: str,
        artifact: str | Artifact,
        *,
        to: str | Path | IO[bytes] | None = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The artifact's content: bytes, or written to `to` (its Path is returned).
        `on_progress(bytes_so_far, total_or_None)` is called as it arrives."""
        artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
        path = f"/v1/runs/{run_id}/artifacts/{artifact_id}/content"
        return _download(self._api, path, to, on_progress, o)


class Files:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        type: str | Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Artifact]:
        """The run's files: every artifact but the recording."""
        params = {"type": joined(type), "limit": limit, "cursor": cursor}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/files", params=params, **o)
        return Page(
            answer,
            Artifact.from_json,
            lambda next_: self.list(run_id, type=type, limit=limit, cursor=next_, **o),
        )

    def iter(self, run_id: str, **filters: Any) -> Iterator[Artifact]:
        return iter(self.list(run_id, **filters))

    def export(
        self,
        run_id: str,
        *,
        name: str = "run-files",
        type: Sequence[str] | None = None,
        wait: bool = False,
        wait_timeout: float = 300.0,
        on_progress: Callable[[Export], None] | None = None,
        idempotency_key: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Export:
        """Asks for a ZIP of the run's files. With `wait`, polls until it is ready (or
        failed), calling `on_progress(export)` at each change of state; a repeated
        request with the same `idempotency_key` gives the same export."""
        body: dict[str, Any] = {"name": name, "type": list(type or [])}
        key = idempotency_key or f"bctrl-python-{uuid.uuid4()}"
        answer = self._api.json(
            "POST",
            f"/v1/runs/{run_id}/files/export",
            json=body,
            headers={"Idempotency-Key": key},
            idempotent=True,
            **o,
        )
        export = Export.from_json(answer)
        if on_progress is not None:
            on_progress(export)
        if not wait:
            return export
        deadline = time.monotonic() + wait_timeout
        while export.status not in ("ready", "failed"):
            if time.monotonic() > deadline:
                raise BctrlError(
                    f"Export {export.id} is still {export.status} after {wait_timeout:g} s."
                )
            self._api._sleep(EXPORT_POLL_S)
            previous = export.status
            export = self.retrieve_export(run_id, export.id, **o)
            if on_progress is not None and export.status != previous:
                on_progress(export)
        if export.status == "failed":
            raise BctrlError(f"Export {export.id} failed: {export.error}")
        return export

    def retrieve_export(self, run_id: str, export_id: str, **o: Unpack[CallOptions]) -> Export:
        path = f"/v1/runs/{run_id}/files/exports/{export_id}"
        return Export.from_json(self._api.json("GET", path, **o))

    def download_export(
        self,
        export: Export,
        *,
        to: str | Path | IO[bytes] | None = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The ZIP of a ready export (see `export(wait=True)`)."""
        if not export.download_url:
            raise BctrlError(f"Export {export.id} is {export.status}: no ZIP to download yet.")
        return _download(self._api, export.download_url, to, on_progress, o)


class Handoffs:
    """Handoffs of a run: ask a person to do a step (`create`), then wait for them."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(
        self,
        run_id: str,
        *,
        instructions: str,
        timeout_ms: int | None = None,
        notify: bool | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """Opens a handoff on a running run (409 handoff.open when one is open, 409
        run.ended once the run ended); its `live_url` is for the person."""
        body = handoff_body(instructions, timeout_ms, notify)
        path = f"/v1/runs/{run_id}/handoff"
        return Handoff.from_json(self._api.json("POST", path, json=body, **o))

    def retrieve(
        self,
        run_id: str,
        handoff_id: str,
        *,
        wait_ms: int | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """The handoff; with `wait_ms` (up to 60,000) the server answers once it is no
        longer open, or when that time has passed (still open)."""
        if wait_ms is not None:
            o.setdefault("timeout", httpx.Timeout(wait_ms / 1000 + 30.0, connect=10.0))
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}"
        return Handoff.from_json(self._api.json("GET", path, params={"waitMs": wait_ms}, **o))

    def wait(self, run_id: str, handoff_id: str, *, timeout: float = 300.0) -> Handoff:
        """The handoff once it is no longer open, or still open after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            handoff = self.retrieve(
                run_id, handoff_id, wait_ms=max(0, min(left_ms, HANDOFF_WAIT_MAX_MS))
            )
            if not handoff.is_open or left_ms <= HANDOFF_WAIT_MAX_MS:
                return handoff

    def list(self, run_id: str, **o: Unpack[CallOptions]) -> Page[Handoff]:
        """The run's handoffs, newest first."""
        answer = self._api.json("GET", f"/v1/runs/{run_id}/handoffs", **o)
        return Page(answer, Handoff.from_json, lambda next_: self.list(run_id, **o))

    def complete(
        self, run_id: str, handoff_id: str, *, note: str | None = None, **o: Unpack[CallOptions]
    ) -> Handoff:
        """Marks the step done (`completed_by` is the key's name); 409 handoff.ended if
        it is no longer open."""
        body = {} if note is None else {"note": note}
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/complete"
        return Handoff.from_json(self._api.json("POST", path, json=body, **o))

    def cancel(self, run_id: str, handoff_id: str, **o: Unpack[CallOptions]) -> Handoff:
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/cancel"
        return Handoff.from_json(self._api.json("POST", path, **o))


class Leases:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Lease]:
        """A run's viewer links (never their tokens)."""
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/leases", params=params, **o)
        return Page(
            answer, Lease.from_json, lambda next_: self.list(run_id, limit=limit, cursor=next_, **o)
        )

    def iter(self, run_id: str, **filters: Any) -> Iterator[Lease]:
        return iter(self.list(run_id, **filters))


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
        headers = {"Content-Type": "application/json"}
        if content_encoding:
            headers["Content-Encoding"] = content_encoding
        content = body
        if content is None:
            document = {"target": target, "seq": seq, "events": list(events or [])}
            content = json.dumps(document, separators=(",", ":")).encode()
        answer = self._api.json(
            "POST",
            f"/v1/runs/{run_id}/recording/events",
            content=content,
            headers=headers,
            idempotent=True,
            **o,
        )
        return RecordingBatchResult.from_json(answer)


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
        run = Run.from_json(raw)
        run._client = self._client
        return run

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
        params = {
            "status": joined(status),
            "runtimeId": runtime_id,
            "spaceId": space_id,
            "limit": limit,
            "cursor": cursor,
        }
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
        body: dict[str, Any] = {"name": name, "labels": labels or {}, "metadata": metadata or {}}
        if runtime_id is not None:
            body["runtimeId"] = runtime_id
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
        body: dict[str, Any] = {}
        if status is not None:
            body["status"] = status
        if error is not None:
            body["error"] = error
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
        body: dict[str, Any] = {"control": control}
        if expires_in_seconds is not None:
            body["expiresInSeconds"] = expires_in_seconds
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
        body: dict[str, Any] = {}
        if components is not None:
            body["components"] = list(components)
        if expires_in_seconds is not None:
            body["expiresInSeconds"] = expires_in_seconds
        answer = self._api.json("POST", f"/v1/runs/{run_id}/recording", json=body, **o)
        return RecordingViewer.from_json(answer)


# Bound to one run (seed 002's run helpers) ------------------------------------------------


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


class RunCommands:
    def __init__(self, commands: Commands, run_id: str) -> None:
        self._commands, self._run_id = commands, run_id

    def list(self, **filters: Any) -> Page[Command]:
        return self._commands.list(self._run_id, **filters)


class RunArtifacts:
    def __init__(self, artifacts: Artifacts, run_id: str) -> None:
        self._artifacts, self._run_id = artifacts, run_id

    def list(self, **filters: Any) -> Page[Artifact]:
        return self._artifacts.list(self._run_id, **filters)

    def download(self, artifact: str | Artifact, **options: Any) -> bytes | Path:
        return self._artifacts.download(self._run_id, artifact, **options)


class RunActivity:
    def __init__(self, activity: Activity, run_id: str) -> None:
        self._activity, self._run_id = activity, run_id

    def list(self, **filters: Any) -> ActivityList:
        return self._activity.list(self._run_id, **filters)

    def stream(self) -> Iterator[ActivityItem]:
        return self._activity.stream(self._run_id)


class RunFiles:
    def __init__(self, files: Files, run_id: str) -> None:
        self._files, self._run_id = files, run_id

    def list(self, **filters: Any) -> Page[Artifact]:
        return self._files.list(self._run_id, **filters)

    def export(self, **options: Any) -> Export:
        return self._files.export(self._run_id, **options)


# Spaces --------------------------------------------------------------------------------------


class SpaceUpstream:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("GET", path, **o))

    def set(
        self,
        space_id: str,
        *,
        base_url: str,
        account_id: str,
        api_token: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Upstream:
        body = {"baseUrl": base_url, "accountId": account_id}
        if api_token is not None:
            body["apiToken"] = api_token
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("PUT", path, json=body, **o))

    def delete(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("DELETE", path, **o))


class Spaces:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api
        self.upstream = SpaceUpstream(api)

    def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Space:
        return Space.from_json(self._api.json("GET", f"/v1/spaces/{space_id}", **o))

    def update(
        self, space_id: str, *, embed_origins: Sequence[str], **o: Unpack[CallOptions]
    ) -> Space:
        """Which sites may embed the space's viewer links: ["*"], [] or origins."""
        body = {"embedOrigins": list(embed_origins)}
        path = f"/v1/spaces/{space_id}"
        return Space.from_json(self._api.json("PATCH", path, json=body, idempotent=True, **o))


class LeaseActions:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def revoke(self, lease_id: str, **o: Unpack[CallOptions]) -> Lease:
        """Ends the lease and closes every viewer open on it."""
        path = f"/v1/leases/{lease_id}/revoke"
        return Lease.from_json(self._api.json("POST", path, idempotent=True, **o))


# Seed 004's recordings API (/api/v1): rooms are runtimes ---------------------------------


def _data(answer: Any) -> dict[str, Any]:
    data = answer.get("data") if isinstance(answer, dict) else None
    return data if isinstance(data, dict) else {}


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
        answer = self._api.json("GET", f"/api/v1/recordings/{recording_id}", **o)
        return Recording.from_json(_data(answer))

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
        return Recording.from_json(_data(self._api.json("POST", path, **o)))

    def recover(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}/recover"
        return Recording.from_json(_data(self._api.json("POST", path, **o)))

    def delete(self, recording_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/recordings/{recording_id}"
        return Recording.from_json(_data(self._api.json("DELETE", path, **o)))


class RoomRecordings:
    """`/api/v1/rooms/{room}/recordings/…` (seed 004): a room is a runtime."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def start(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/start"
        return Recording.from_json(_data(self._api.json("POST", path, **o)))

    def stop(self, room_id: str, **o: Unpack[CallOptions]) -> Recording:
        path = f"/api/v1/rooms/{room_id}/recordings/stop"
        return Recording.from_json(_data(self._api.json("POST", path, **o)))

    def sync(self, room_id: str, **o: Unpack[CallOptions]) -> RecordingSync:
        """Imports the closed sessions of the space's upstream Browser Run account."""
        path = f"/api/v1/rooms/{room_id}/recordings/sync"
        return RecordingSync.from_json(_data(self._api.json("POST", path, **o)))

    def import_(
        self, room_id: str, document: Any, *, gzip: bool = False, **o: Unpack[CallOptions]
    ) -> Recording:
        """Imports seed 003's recording document or an rrweb event array (`document`: the
        JSON value, or its bytes)."""
        content = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        path = f"/api/v1/rooms/{room_id}/recordings/import"
        answer = self._api.json("POST", path, content=content, headers=headers, **o)
        return Recording.from_json(_data(answer))


class Rooms:
    def __init__(self, api: SyncAPI) -> None:
        self.recordings = RoomRecordings(api)
