"""Runtimes: the browsers of a space, started (which opens a run) and stopped, and the
files put where a running browser's file inputs reach them.

client.runtimes.create/retrieve/list/iter/start/stop/current_run/upload_file/files
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI
from bctrl._models import RuntimeData, RuntimeFile, RuntimeStarted
from bctrl._pagination import AsyncPage, Page
from bctrl._resources.files import file_form
from bctrl._resources.runs import AsyncRun, Run

if TYPE_CHECKING:
    from bctrl._client import AsyncBctrl, Bctrl

# A start answers once the browser is up; placing and launching may take a while.
START_TIMEOUT_S = 180.0


def runtime_body(name: str, config: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if config is not None:
        body["config"] = config
    return body


def start_body(
    extra_body: Mapping[str, Any] | None,
    *,
    recording: bool | None,
    keep_alive_ms: int | None,
    viewport: tuple[int, int] | None,
    user_agent: str | None,
    locale: str | None,
    timezone: str | None,
    proxy: Mapping[str, str] | None,
    profile_id: str | None,
    persist: bool | None,
) -> dict[str, Any]:
    """A start's JSON body: the options given, named as the API names them (camelCase),
    over `extra_body`."""
    fields = {
        "recording": recording,
        "keepAliveMs": keep_alive_ms,
        "viewport": {"width": viewport[0], "height": viewport[1]} if viewport else None,
        "userAgent": user_agent,
        "locale": locale,
        "timezone": timezone,
        "proxy": dict(proxy) if proxy else None,
        "profileId": profile_id,
        "persist": persist,
    }
    body = dict(extra_body or {})
    body.update({name: value for name, value in fields.items() if value is not None})
    return body


def start_options(wait_ms: int | None, options: CallOptions) -> CallOptions:
    """A start's call options: unless told otherwise, it may take START_TIMEOUT_S and the
    time the server was asked to wait for room (`wait_ms`)."""
    options.setdefault("timeout", START_TIMEOUT_S + (wait_ms or 0) / 1000)
    return options


# A runtime, bound to its client --------------------------------------------------------------


@dataclass
class Runtime(RuntimeData):
    """A runtime, with seed 002's `current_run()`."""

    _client: Bctrl | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def bound_to(cls, client: Bctrl, raw: dict[str, Any]) -> Self:
        runtime = cls.from_json(raw)
        runtime._client = client
        return runtime

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


@dataclass
class AsyncRuntime(RuntimeData):
    """A runtime of the asynchronous client, with `current_run()` awaited."""

    _client: AsyncBctrl | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def bound_to(cls, client: AsyncBctrl, raw: dict[str, Any]) -> Self:
        runtime = cls.from_json(raw)
        runtime._client = client
        return runtime

    async def current_run(self, **options: Unpack[CallOptions]) -> AsyncRun:
        """The runtime's active run: from the cached `active_run_id` if that run still runs,
        else from a fresh look at the runtime. Raises `NoActiveRunError`
        (`runtime.no_active_run`) when it has none."""
        assert self._client is not None
        runs = self._client.runs
        if self.active_run_id:
            run = await runs.retrieve(self.active_run_id, **options)
            if run.status == "running":
                return run
        return await self._client.runtimes.current_run(self.id, **options)

    async def refresh(self) -> AsyncRuntime:
        assert self._client is not None
        return await self._client.runtimes.retrieve(self.id)


# client.runtimes -----------------------------------------------------------------------------


class Runtimes:
    def __init__(self, client: Bctrl) -> None:
        self._client = client
        self._api: SyncAPI = client._api

    def _runtime(self, raw: dict[str, Any]) -> Runtime:
        return Runtime.bound_to(self._client, raw)

    def create(
        self, *, name: str = "", config: dict[str, Any] | None = None, **o: Unpack[CallOptions]
    ) -> Runtime:
        body = runtime_body(name, config)
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
            keep_alive_ms=keep_alive_ms,
            viewport=viewport,
            user_agent=user_agent,
            locale=locale,
            timezone=timezone,
            proxy=proxy,
            profile_id=profile_id,
            persist=persist,
        )
        answer = self._api.json(
            "POST",
            f"/v1/runtimes/{runtime_id}/start",
            json=body,
            params={"waitMs": wait_ms},
            **start_options(wait_ms, o),
        )
        return RuntimeStarted.from_json(answer)

    def stop(self, runtime_id: str, **o: Unpack[CallOptions]) -> Runtime:
        """Stops the runtime; its run ends and its recording is processed."""
        path = f"/v1/runtimes/{runtime_id}/stop"
        return self._runtime(self._api.json("POST", path, idempotent=True, **o))

    def current_run(self, runtime_id: str, **o: Unpack[CallOptions]) -> Run:
        """The runtime's active run; `NoActiveRunError` (runtime.no_active_run) if none."""
        answer = self._api.json("GET", f"/v1/runtimes/{runtime_id}/current-run", **o)
        return Run.bound_to(self._client, answer)

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


class AsyncRuntimes:
    def __init__(self, client: AsyncBctrl) -> None:
        self._client = client
        self._api: AsyncAPI = client._api

    def _runtime(self, raw: dict[str, Any]) -> AsyncRuntime:
        return AsyncRuntime.bound_to(self._client, raw)

    async def create(
        self, *, name: str = "", config: dict[str, Any] | None = None, **o: Unpack[CallOptions]
    ) -> AsyncRuntime:
        body = runtime_body(name, config)
        return self._runtime(await self._api.json("POST", "/v1/runtimes", json=body, **o))

    async def retrieve(self, runtime_id: str, **o: Unpack[CallOptions]) -> AsyncRuntime:
        return self._runtime(await self._api.json("GET", f"/v1/runtimes/{runtime_id}", **o))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None, **o: Unpack[CallOptions]
    ) -> AsyncPage[AsyncRuntime]:
        params = {"limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", "/v1/runtimes", params=params, **o)
        return AsyncPage(
            answer, self._runtime, lambda next_: self.list(limit=limit, cursor=next_, **o)
        )

    async def iter(
        self, *, limit: int | None = None, **o: Unpack[CallOptions]
    ) -> AsyncIterator[AsyncRuntime]:
        page = await self.list(limit=limit, **o)
        async for item in page:
            yield item

    async def start(
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
            keep_alive_ms=keep_alive_ms,
            viewport=viewport,
            user_agent=user_agent,
            locale=locale,
            timezone=timezone,
            proxy=proxy,
            profile_id=profile_id,
            persist=persist,
        )
        answer = await self._api.json(
            "POST",
            f"/v1/runtimes/{runtime_id}/start",
            json=body,
            params={"waitMs": wait_ms},
            **start_options(wait_ms, o),
        )
        return RuntimeStarted.from_json(answer)

    async def stop(self, runtime_id: str, **o: Unpack[CallOptions]) -> AsyncRuntime:
        """Stops the runtime; its run ends and its recording is processed."""
        path = f"/v1/runtimes/{runtime_id}/stop"
        return self._runtime(await self._api.json("POST", path, idempotent=True, **o))

    async def current_run(self, runtime_id: str, **o: Unpack[CallOptions]) -> AsyncRun:
        """The runtime's active run; `NoActiveRunError` (runtime.no_active_run) if none."""
        answer = await self._api.json("GET", f"/v1/runtimes/{runtime_id}/current-run", **o)
        return AsyncRun.bound_to(self._client, answer)

    async def upload_file(
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
        answer = await self._api.json("POST", path, files=files, data=form, **o)
        return RuntimeFile.from_json(answer)

    async def files(
        self,
        runtime_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[RuntimeFile]:
        """The files uploaded for the runtime's current run."""
        path = f"/v1/runtimes/{runtime_id}/files"
        params = {"limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", path, params=params, **o)
        return AsyncPage(
            answer,
            RuntimeFile.from_json,
            lambda next_: self.files(runtime_id, limit=limit, cursor=next_, **o),
        )
