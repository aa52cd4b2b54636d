"""A run's files: its artifacts (screenshots, downloads, uploads, reports), uploaded and
downloaded one by one, and ZIP exports of them.

client.runs.artifacts.list/iter/upload/download
client.runs.files.list/iter/export/retrieve_export/download_export
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Unpack

import httpx

from bctrl._base import AsyncAPI, CallOptions, SyncAPI, joined
from bctrl._errors import BctrlError
from bctrl._models import Artifact, Export
from bctrl._pagination import AsyncPage, Page

EXPORT_POLL_S = 0.5

Progress = Callable[[int, int | None], None]
Destination = str | Path | IO[bytes] | None


def file_form(
    file: bytes | IO[bytes] | str | Path,
    *,
    name: str | None,
    content_type: str | None,
    **fields: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The multipart parts of a file upload: the file (read from disk for a path) and the
    form fields `name`, `contentType` and any other `fields`."""
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
    form.update(fields)
    files = {"file": (name or "file", content, content_type or "application/octet-stream")}
    return files, form


class Download:
    """Where a streamed file goes, `to` a path, a binary file or (None) bytes, and who
    hears how far it got: the writing side of a download, which the sync and async
    readers share."""

    def __init__(
        self, to: Destination, on_progress: Progress | None, headers: httpx.Headers
    ) -> None:
        self._to = to
        self._on_progress = on_progress
        self._total = int(headers["content-length"]) if "content-length" in headers else None
        self._done = 0
        self._chunks: list[bytes] = []
        self._target: IO[bytes] | None = None
        self._opened = False
        if isinstance(to, (str, Path)):
            self._target, self._opened = open(to, "wb"), True  # noqa: SIM115 (closed on exit)
        elif to is not None:
            self._target = to

    def __enter__(self) -> Download:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._opened and self._target is not None:
            self._target.close()

    def write(self, chunk: bytes) -> None:
        if self._target is not None:
            self._target.write(chunk)
        else:
            self._chunks.append(chunk)
        self._done += len(chunk)
        if self._on_progress is not None:
            self._on_progress(self._done, self._total)

    def result(self) -> bytes | Path:
        """The Path written to, or the bytes received."""
        return Path(self._to) if isinstance(self._to, (str, Path)) else b"".join(self._chunks)


def download(
    api: SyncAPI, path: str, to: Destination, on_progress: Progress | None, options: CallOptions
) -> bytes | Path:
    """Streams a file: into `to` (a path or a binary file) or, without it, into bytes."""
    with (
        api.stream("GET", path, headers={"Accept": "*/*"}, **options) as response,
        Download(to, on_progress, response.headers) as sink,
    ):
        for chunk in response.iter_bytes():
            sink.write(chunk)
    return sink.result()


async def adownload(
    api: AsyncAPI, path: str, to: Destination, on_progress: Progress | None, options: CallOptions
) -> bytes | Path:
    """`download`, awaited."""
    async with api.stream("GET", path, headers={"Accept": "*/*"}, **options) as response:
        with Download(to, on_progress, response.headers) as sink:
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
    return sink.result()


def artifact_content_path(run_id: str, artifact: str | Artifact) -> str:
    artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
    return f"/v1/runs/{run_id}/artifacts/{artifact_id}/content"


def export_request(
    name: str, type: Sequence[str] | None, idempotency_key: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """An export's body and headers: without a key of the caller's, a fresh one, so that
    the retries of this one request give one export."""
    key = idempotency_key or f"bctrl-python-{uuid.uuid4()}"
    return {"name": name, "type": list(type or [])}, {"Idempotency-Key": key}


class ExportProgress:
    """How `export(wait=True)` follows an export being built: `on_progress` at each change
    of its state, an error once it failed or `wait_timeout` passed."""

    def __init__(self, on_progress: Callable[[Export], None] | None, wait_timeout: float) -> None:
        self._on_progress = on_progress
        self._wait_timeout = wait_timeout
        self._deadline = time.monotonic() + wait_timeout
        self._status: str | None = None

    def seen(self, export: Export) -> Export:
        if self._on_progress is not None and export.status != self._status:
            self._on_progress(export)
        self._status = export.status
        return export

    def building(self, export: Export) -> bool:
        """Whether to look again; raises once the export has taken too long."""
        if export.status in ("ready", "failed"):
            return False
        if time.monotonic() > self._deadline:
            raise BctrlError(
                f"Export {export.id} is still {export.status} after {self._wait_timeout:g} s."
            )
        return True

    @staticmethod
    def outcome(export: Export) -> Export:
        if export.status == "failed":
            raise BctrlError(f"Export {export.id} failed: {export.error}")
        return export


def export_zip_url(export: Export) -> str:
    if not export.download_url:
        raise BctrlError(f"Export {export.id} is {export.status}: no ZIP to download yet.")
    return export.download_url


# Artifacts -----------------------------------------------------------------------------------


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
        files, form = file_form(file, name=name, content_type=content_type, kind=kind)
        answer = self._api.json("POST", f"/v1/runs/{run_id}/artifacts", files=files, data=form, **o)
        return Artifact.from_json(answer)

    def download(
        self,
        run_id: str,
        artifact: str | Artifact,
        *,
        to: Destination = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The artifact's content: bytes, or written to `to` (its Path is returned).
        `on_progress(bytes_so_far, total_or_None)` is called as it arrives."""
        return download(self._api, artifact_content_path(run_id, artifact), to, on_progress, o)


class AsyncArtifacts:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        kind: str | Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[Artifact]:
        params = {"kind": joined(kind), "limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/artifacts", params=params, **o)
        return AsyncPage(
            answer,
            Artifact.from_json,
            lambda next_: self.list(run_id, kind=kind, limit=limit, cursor=next_, **o),
        )

    async def iter(self, run_id: str, **filters: Any) -> AsyncIterator[Artifact]:
        page = await self.list(run_id, **filters)
        async for item in page:
            yield item

    async def upload(
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
        files, form = file_form(file, name=name, content_type=content_type, kind=kind)
        answer = await self._api.json(
            "POST", f"/v1/runs/{run_id}/artifacts", files=files, data=form, **o
        )
        return Artifact.from_json(answer)

    async def download(
        self,
        run_id: str,
        artifact: str | Artifact,
        *,
        to: Destination = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The artifact's content: bytes, or written to `to` (its Path is returned).
        `on_progress(bytes_so_far, total_or_None)` is called as it arrives."""
        path = artifact_content_path(run_id, artifact)
        return await adownload(self._api, path, to, on_progress, o)


# Files and their exports ---------------------------------------------------------------------


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
        body, headers = export_request(name, type, idempotency_key)
        path = f"/v1/runs/{run_id}/files/export"
        answer = self._api.json("POST", path, json=body, headers=headers, idempotent=True, **o)
        progress = ExportProgress(on_progress, wait_timeout)
        export = progress.seen(Export.from_json(answer))
        if not wait:
            return export
        while progress.building(export):
            self._api._sleep(EXPORT_POLL_S)
            export = progress.seen(self.retrieve_export(run_id, export.id, **o))
        return progress.outcome(export)

    def retrieve_export(self, run_id: str, export_id: str, **o: Unpack[CallOptions]) -> Export:
        path = f"/v1/runs/{run_id}/files/exports/{export_id}"
        return Export.from_json(self._api.json("GET", path, **o))

    def download_export(
        self,
        export: Export,
        *,
        to: Destination = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The ZIP of a ready export (see `export(wait=True)`)."""
        return download(self._api, export_zip_url(export), to, on_progress, o)


class AsyncFiles:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        type: str | Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[Artifact]:
        """The run's files: every artifact but the recording."""
        params = {"type": joined(type), "limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/files", params=params, **o)
        return AsyncPage(
            answer,
            Artifact.from_json,
            lambda next_: self.list(run_id, type=type, limit=limit, cursor=next_, **o),
        )

    async def iter(self, run_id: str, **filters: Any) -> AsyncIterator[Artifact]:
        page = await self.list(run_id, **filters)
        async for item in page:
            yield item

    async def export(
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
        body, headers = export_request(name, type, idempotency_key)
        path = f"/v1/runs/{run_id}/files/export"
        answer = await self._api.json(
            "POST", path, json=body, headers=headers, idempotent=True, **o
        )
        progress = ExportProgress(on_progress, wait_timeout)
        export = progress.seen(Export.from_json(answer))
        if not wait:
            return export
        while progress.building(export):
            await self._api._async_sleep(EXPORT_POLL_S)
            export = progress.seen(await self.retrieve_export(run_id, export.id, **o))
        return progress.outcome(export)

    async def retrieve_export(
        self, run_id: str, export_id: str, **o: Unpack[CallOptions]
    ) -> Export:
        path = f"/v1/runs/{run_id}/files/exports/{export_id}"
        return Export.from_json(await self._api.json("GET", path, **o))

    async def download_export(
        self,
        export: Export,
        *,
        to: Destination = None,
        on_progress: Progress | None = None,
        **o: Unpack[CallOptions],
    ) -> bytes | Path:
        """The ZIP of a ready export (see `export(wait=True)`)."""
        return await adownload(self._api, export_zip_url(export), to, on_progress, o)


# Bound to one run: `run.artifacts`, `run.files` ----------------------------------------------


class RunArtifacts:
    def __init__(self, artifacts: Artifacts, run_id: str) -> None:
        self._artifacts, self._run_id = artifacts, run_id

    def list(self, **filters: Any) -> Page[Artifact]:
        return self._artifacts.list(self._run_id, **filters)

    def download(self, artifact: str | Artifact, **options: Any) -> bytes | Path:
        return self._artifacts.download(self._run_id, artifact, **options)


class AsyncRunArtifacts:
    def __init__(self, artifacts: AsyncArtifacts, run_id: str) -> None:
        self._artifacts, self._run_id = artifacts, run_id

    async def list(self, **filters: Any) -> AsyncPage[Artifact]:
        return await self._artifacts.list(self._run_id, **filters)

    async def download(self, artifact: str | Artifact, **options: Any) -> bytes | Path:
        return await self._artifacts.download(self._run_id, artifact, **options)


class RunFiles:
    def __init__(self, files: Files, run_id: str) -> None:
        self._files, self._run_id = files, run_id

    def list(self, **filters: Any) -> Page[Artifact]:
        return self._files.list(self._run_id, **filters)

    def export(self, **options: Any) -> Export:
        return self._files.export(self._run_id, **options)


class AsyncRunFiles:
    def __init__(self, files: AsyncFiles, run_id: str) -> None:
        self._files, self._run_id = files, run_id

    async def list(self, **filters: Any) -> AsyncPage[Artifact]:
        return await self._files.list(self._run_id, **filters)

    async def export(self, **options: Any) -> Export:
        return await self._files.export(self._run_id, **options)
