"""The runs API (`/v1`): thin views over selectors and services."""

import io
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bctrl_site.storage import download_url
from runs import selectors, services
from runs.api import serializers as s
from runs.api import throttles
from runs.api.auth import space_of
from runs.api.errors import ApiError, Conflict, Invalid, NotFound, PayloadTooLarge
from runs.api.pagination import paginate, parse_limit
from runs.api.schema import (
    ERRORS,
    EVENT_FILTERS,
    PAGING,
    AppendResult,
    ArtifactOut,
    CommandOut,
    EventOut,
    ExportOut,
    RunOut,
    RuntimeDetailOut,
    RuntimeOut,
    RuntimeStartOut,
    list_of,
    page_of,
)
from runs.api.uploads import LimitedUploads
from runs.cdp import CdpError, capture_screenshot
from runs.launch import launch
from runs.models import Artifact, Command, Run, Runtime


def validated(serializer_class: type[s.serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _split(raw: str | None) -> list[str]:
    return [part for part in (raw or "").split(",") if part]


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if len(raw) > 12 or not raw.isdigit():
        raise Invalid(f"{name} must be a non-negative integer.", details={name: raw[:20]})
    value = int(raw)
    if value > 2**31 - 1:
        raise Invalid(f"{name} is too large.", details={name: value})
    return value


class RuntimeListView(APIView):
    @extend_schema(
        operation_id="runtimes_list",
        parameters=PAGING,
        responses={200: page_of("Runtime", RuntimeOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        space = space_of(request)
        runtimes = selectors.runtimes_of(space)
        active = selectors.active_run_ids(space)
        page = paginate(
            runtimes,
            order=["-id"],
            cursor=request.query_params.get("cursor"),
            limit=parse_limit(request.query_params.get("limit")),
            to_json=lambda runtime: s.runtime_json(runtime, active_run_id=active.get(runtime.id)),
            cursor_values=lambda runtime: [runtime.id],
        )
        return Response(page)

    @extend_schema(
        operation_id="runtimes_create",
        request=s.RuntimeCreateSerializer,
        responses={201: RuntimeOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.RuntimeCreateSerializer, request.data)
        runtime = services.runtime_create(
            space=space_of(request), name=data["name"], config=data["config"]
        )
        return Response(s.runtime_json(runtime, active_run_id=None), status=201)


def runtime_detail_json(runtime: Runtime) -> dict[str, Any]:
    """A runtime with its active run and what its current (or last) start is doing."""
    active = selectors.active_run_of(runtime)
    return {
        **s.runtime_json(runtime, active_run_id=active.id if active else None),
        "failureReason": runtime.failure_reason or None,
        "recording": runtime.recording_enabled,
        "keepAliveMs": runtime.keep_alive_ms,
        "clientCount": runtime.client_count,
    }


class RuntimeDetailView(APIView):
    @extend_schema(operation_id="runtimes_get", responses={200: RuntimeDetailOut, **ERRORS})
    def get(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        return Response(runtime_detail_json(runtime))


MAX_KEEP_ALIVE_MS = 24 * 60 * 60 * 1000
UPLOAD_POLL_S = 0.05


class RuntimeStartSerializer(s.BrowserOptionsSerializer):
    recording = serializers.BooleanField(required=False, default=True)
    keepAliveMs = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_KEEP_ALIVE_MS
    )

    def validate_recording(self, value: bool) -> bool:
        if type(self.initial_data.get("recording", True)) is not bool:
            raise serializers.ValidationError("Must be true or false.")
        return value

    def validate_keepAliveMs(self, value: int | None) -> int | None:
        if type(self.initial_data.get("keepAliveMs")) not in (int, type(None)):
            raise serializers.ValidationError("Must be an integer of milliseconds.")
        return value

    profileId = s.Pattern(r"^prof_[0-9a-z]{1,40}$", required=False)
    persist = serializers.BooleanField(required=False, default=False)

    def validate_persist(self, value: bool) -> bool:
        if type(self.initial_data.get("persist", False)) is not bool:
            raise serializers.ValidationError("Must be true or false.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("persist") and not attrs.get("profileId"):
            raise serializers.ValidationError({"persist": ["Needs a profileId to save to."]})
        return attrs


def connect_url(request: Request, token: str) -> str:
    """The absolute websocket URL of the CDP proxy that `token` opens (no ids in it)."""
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}/cdp/{token}"


class RuntimeStartView(APIView):
    rate_scope = throttles.RUNTIME_START

    @extend_schema(
        operation_id="runtimes_start",
        request=RuntimeStartSerializer,
        responses={200: RuntimeStartOut, **ERRORS},
        parameters=[
            OpenApiParameter(
                "waitMs", int, description="Wait this long for room on a full fleet (429 then)"
            )
        ],
        description=(
            "Places the runtime on the runtime host with the most room, opens a run and "
            "waits until the host has launched the browser. `connectUrl` is a websocket "
            "URL for `chromium.connect_over_cdp`; its query may add `recording=false` and "
            "`keep_alive=<ms>`. When no host has room the answer comes at once: 429 "
            "runtime.capacity (or 503 runtime.no_host when none runs) with Retry-After, "
            "unless `waitMs` lets the start wait for room. 409 runtime.already_running, "
            "502 runtime.start_failed, 503 runtime.start_timeout."
        ),
    )
    def post(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        data = validated(RuntimeStartSerializer, request.data if request.data else {})
        wait_ms = _int_param(request, "waitMs") or 0
        if wait_ms > settings.BCTRL_RUNTIME_START_WAIT_MAX_MS:
            raise Invalid(
                f"waitMs is at most {settings.BCTRL_RUNTIME_START_WAIT_MAX_MS}.",
                details={"waitMs": wait_ms},
            )
        caller = request.user
        started = async_to_sync(launch)(
            runtime,
            recording=data["recording"],
            keep_alive_ms=data["keepAliveMs"],
            api_key=getattr(caller, "api_key", None),
            wait_ms=wait_ms,
            browser_options=s.browser_options_of(data),
            profile_id=data.get("profileId"),
            persist=data["persist"],
            proxy=dict(data["proxy"]) if data.get("proxy") else None,
        )
        runtime = started.runtime
        return Response(
            {
                "connectUrl": connect_url(request, started.token),
                "runId": started.run.id,
                "runtimeId": runtime.id,
                "status": runtime.status,
            }
        )


class RuntimeStopView(APIView):
    @extend_schema(
        operation_id="runtimes_stop", request=None, responses={200: RuntimeDetailOut, **ERRORS}
    )
    def post(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        runtime = services.runtime_stop(runtime=runtime)
        return Response(runtime_detail_json(runtime))


def runtime_file_json(artifact: Artifact) -> dict[str, Any]:
    """An upload as the browser sees it: `path` is what DOM.setFileInputFiles and
    Playwright's set_input_files take, once the host has `placed` it."""
    return {
        **s.artifact_json(artifact),
        "placed": bool(artifact.metadata.get("placed")),
        "path": artifact.metadata.get("path"),
    }


class RuntimeFilesView(LimitedUploads, APIView):
    @extend_schema(
        operation_id="runtimes_files_list",
        parameters=PAGING,
        responses={200: page_of("RuntimeFile", ArtifactOut), **ERRORS},
        description="The files uploaded for the runtime's current run.",
    )
    def get(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        active = selectors.active_run_of(runtime)
        files = (
            selectors.artifacts_of(active, kinds=[Artifact.Kind.UPLOAD])
            if active is not None
            else Artifact.objects.none()
        )
        return _artifact_page(request, files, runtime_file_json)

    @extend_schema(
        operation_id="runtimes_files_upload",
        request={"multipart/form-data": s.RuntimeFileSerializer},
        responses={201: ArtifactOut, 202: ArtifactOut, **ERRORS},
        description=(
            "Puts a file (multipart `file`, optional `name`) where the running browser's "
            "file inputs reach it, and keeps it as an `upload` artifact of the run. 201 "
            "with its `path` once the runtime host placed it; 202 with `placed: false` if "
            "that takes longer than BCTRL_RUNTIME_UPLOAD_WAIT_S. 409 runtime.not_running, "
            "413 past BCTRL_MAX_ARTIFACT_BYTES."
        ),
    )
    def post(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        data = validated(s.RuntimeFileSerializer, request.data)
        upload = data["file"]
        artifact = services.runtime_upload(
            runtime=runtime,
            name=data.get("name") or upload.name or "file",
            content=upload,
            content_type=data.get("contentType") or upload.content_type or "",
        )
        deadline = time.monotonic() + settings.BCTRL_RUNTIME_UPLOAD_WAIT_S
        while not artifact.metadata.get("placed") and time.monotonic() < deadline:
            time.sleep(UPLOAD_POLL_S)
            artifact.refresh_from_db(fields=["metadata"])
        placed = bool(artifact.metadata.get("placed"))
        return Response(runtime_file_json(artifact), status=201 if placed else 202)


class RuntimeCurrentRunView(APIView):
    """What `runtime.currentRun()` falls back to: the runtime's active run, or a clear error."""

    @extend_schema(operation_id="runtimes_current_run", responses={200: RunOut, **ERRORS})
    def get(self, request: Request, runtime_id: str) -> Response:
        runtime = selectors.runtime_of(space_of(request), runtime_id)
        active = selectors.active_run_of(runtime)
        if active is None:
            raise NotFound(f"Runtime {runtime.id} has no active run.", code="runtime.no_active_run")
        return Response(s.run_json(active))


class RunListView(APIView):
    @extend_schema(
        operation_id="runs_list",
        parameters=[
            *PAGING,
            OpenApiParameter("spaceId", str, description="The caller's space (others: 404)"),
            OpenApiParameter(
                "status", str, description="running, completed, failed; comma-separated"
            ),
            OpenApiParameter("runtimeId", str),
        ],
        responses={200: page_of("Run", RunOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        space = space_of(request)
        params = request.query_params
        space_id = params.get("spaceId")
        if space_id and space_id != space.id:
            raise NotFound(f"No space {space_id!r}.")
        runs = selectors.runs_of(space)
        statuses = _split(params.get("status"))
        unknown = sorted(set(statuses) - set(Run.Status.values))
        if unknown:
            raise Invalid(
                f"Unknown status {unknown[0]!r}; use one of {', '.join(Run.Status.values)}.",
                details={"status": unknown},
            )
        if statuses:
            runs = runs.filter(status__in=statuses)
        runtime_id = params.get("runtimeId")
        if runtime_id:
            runs = runs.filter(runtime=selectors.runtime_of(space, runtime_id))
        return Response(
            paginate(
                runs,
                order=["-id"],
                cursor=params.get("cursor"),
                limit=parse_limit(params.get("limit")),
                to_json=s.run_json,
                cursor_values=lambda run: [run.id],
            )
        )

    @extend_schema(
        operation_id="runs_create", request=s.RunCreateSerializer, responses={201: RunOut, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        space = space_of(request)
        data = validated(s.RunCreateSerializer, request.data)
        runtime = selectors.runtime_of(space, data["runtimeId"]) if data.get("runtimeId") else None
        run = services.run_create(
            space=space,
            runtime=runtime,
            name=data["name"],
            labels=data["labels"],
            metadata=data["metadata"],
        )
        return Response(s.run_json(run), status=201)


class RunStopView(APIView):
    @extend_schema(
        operation_id="runs_stop", request=s.RunStopSerializer, responses={200: RunOut, **ERRORS}
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(s.RunStopSerializer, request.data)
        run = services.run_stop(run=run, status=data["status"], error=data.get("error"))
        return Response(s.run_json(run))


def event_filters(request: Request) -> dict[str, Any]:
    """The filters shared by the events list, stream and wait: type, pageId, after."""
    return {
        "types": _split(request.query_params.get("type")),
        "page_id": request.query_params.get("pageId") or None,
        "after_seq": _int_param(request, "after"),
    }


class RunEventsView(APIView):
    @extend_schema(
        operation_id="runs_events_list",
        parameters=[*PAGING, *EVENT_FILTERS],
        responses={200: page_of("Event", EventOut), **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        events = selectors.events_of(run, **event_filters(request))
        return Response(
            paginate(
                events,
                order=["seq"],
                cursor=request.query_params.get("cursor"),
                limit=parse_limit(request.query_params.get("limit"), default=100, maximum=1000),
                to_json=s.event_json,
                cursor_values=lambda event: [event.seq],
                key_types=[int],
            )
        )

    @extend_schema(
        operation_id="runs_events_append",
        request=s.EventBatchSerializer,
        responses={201: AppendResult, 200: AppendResult, **ERRORS},
        parameters=[
            OpenApiParameter(
                "Content-Encoding", str, OpenApiParameter.HEADER, enum=["identity", "gzip"]
            )
        ],
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        body = request.data if isinstance(request.data, dict) else {}
        events = body.get("events")
        if isinstance(events, list) and len(events) > _max_events():
            raise PayloadTooLarge(f"A batch holds at most {_max_events()} events.")
        data = validated(s.EventBatchSerializer, body)
        _check_event_sizes(body["events"])
        result = services.events_append(
            run=run,
            events=[
                {
                    "seq": event.get("seq"),
                    "type": event["type"],
                    "time": event.get("time"),
                    "page_id": event.get("pageId") or "",
                    "data": event["data"],
                }
                for event in data["events"]
            ],
        )
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "nextSeq": result.next_seq,
            },
            status=status.HTTP_201_CREATED if result.accepted else status.HTTP_200_OK,
        )


def _max_events() -> int:
    from django.conf import settings

    return int(settings.BCTRL_MAX_EVENTS_PER_BATCH)


def _check_event_sizes(events: list[Any]) -> None:
    import orjson
    from django.conf import settings

    limit = settings.BCTRL_MAX_EVENT_BYTES
    for index, event in enumerate(events):
        if len(orjson.dumps(event)) > limit:
            raise PayloadTooLarge(
                f"Event {index} is larger than {limit} bytes.", details={"index": index}
            )


class RunCommandsView(APIView):
    @extend_schema(
        operation_id="runs_commands_list",
        parameters=PAGING,
        responses={200: page_of("Command", CommandOut), **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return Response(
            paginate(
                selectors.commands_of(run),
                order=["started_at", "id"],
                cursor=request.query_params.get("cursor"),
                limit=parse_limit(request.query_params.get("limit"), default=100, maximum=1000),
                to_json=s.command_json,
                cursor_values=lambda command: [command.started_at.isoformat(), command.id],
            )
        )

    @extend_schema(
        operation_id="runs_commands_record",
        request=s.CommandBatchSerializer,
        responses={201: list_of("Command", CommandOut), **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(s.CommandBatchSerializer, request.data)
        created = services.commands_record(
            run=run,
            commands=[
                {
                    "id": command.get("id"),
                    "method": command["method"],
                    "params": command["params"],
                    "status": command.get("status"),
                    "source": command.get("source"),
                    "page_id": command.get("pageId"),
                    "started_at": command.get("startedAt"),
                    "ended_at": command.get("endedAt"),
                    "duration_ms": command.get("durationMs"),
                    "error": command.get("error"),
                }
                for command in data["commands"]
            ],
        )
        return Response(
            {"data": [s.command_json(command) for command in created]},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _artifact_page(
    request: Request, artifacts: Any, to_json: Callable[[Artifact], Any] = s.artifact_json
) -> Response:
    return Response(
        paginate(
            artifacts,
            order=["created_at", "id"],
            cursor=request.query_params.get("cursor"),
            limit=parse_limit(request.query_params.get("limit"), default=100, maximum=1000),
            to_json=to_json,
            cursor_values=lambda artifact: [artifact.created_at.isoformat(), artifact.id],
        )
    )


def _kinds(request: Request, param: str) -> list[str]:
    kinds = _split(request.query_params.get(param))
    unknown = sorted(set(kinds) - set(Artifact.Kind.values))
    if unknown:
        raise Invalid(f"Unknown {param} {unknown[0]!r}.", details={param: unknown})
    return kinds


class RunArtifactsView(LimitedUploads, APIView):
    @extend_schema(
        operation_id="runs_artifacts_list",
        parameters=[
            *PAGING,
            OpenApiParameter("kind", str, description="Artifact kinds, comma-separated"),
        ],
        responses={200: page_of("Artifact", ArtifactOut), **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return _artifact_page(request, selectors.artifacts_of(run, kinds=_kinds(request, "kind")))

    @extend_schema(
        operation_id="runs_artifacts_upload",
        request={"multipart/form-data": s.ArtifactUploadSerializer},
        responses={201: ArtifactOut, **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(s.ArtifactUploadSerializer, request.data)
        upload = data["file"]
        artifact = services.artifact_store(
            run=run,
            kind=data["kind"],
            name=data.get("name") or upload.name or "file",
            content=upload,
            content_type=data.get("contentType") or upload.content_type or "",
        )
        return Response(s.artifact_json(artifact), status=201)


class RunFilesView(APIView):
    @extend_schema(
        operation_id="runs_files_list",
        parameters=[
            *PAGING,
            OpenApiParameter("type", str, description="File kinds, comma-separated"),
        ],
        responses={200: page_of("File", ArtifactOut), **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return _artifact_page(request, selectors.files_of(run, kinds=_kinds(request, "type")))


def artifact_file_response(artifact: Artifact, *, inline: bool = False) -> HttpResponseBase:
    """The artifact's bytes, never sniffed and sandboxed: as a download, or `inline` for a
    raster image shown in an <img> or a tab.

    On object storage a download is a redirect (302) to a short-lived presigned URL of the
    bucket, which names the file and its type: the web process does not carry the bytes.
    An inline image is still served here, since the pages' img-src allows only 'self'."""
    if not inline:
        url = download_url(
            artifact.file.storage,
            artifact.file.name or "",
            filename=artifact.name,
            content_type=artifact.content_type,
        )
        if url is not None:
            redirect = HttpResponseRedirect(url)
            redirect["Cache-Control"] = "private, no-store"
            return redirect
    response = FileResponse(
        artifact.file.open("rb"),
        as_attachment=not inline,
        filename=artifact.name,
        content_type=artifact.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
        if inline
        else "default-src 'none'; sandbox"
    )
    return response


class ArtifactContentView(APIView):
    @extend_schema(
        operation_id="runs_artifacts_download",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS},
    )
    def get(self, request: Request, run_id: str, artifact_id: str) -> HttpResponseBase:
        run = selectors.run_of(space_of(request), run_id)
        return artifact_file_response(selectors.artifact_of(run, artifact_id))


class RunExportView(APIView):
    @extend_schema(
        operation_id="runs_files_export",
        request=s.ExportRequestSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        responses={202: ExportOut, 200: ExportOut, **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(s.ExportRequestSerializer, request.data)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise Invalid("Idempotency-Key is longer than 200 characters.")
        export, created = services.export_request(
            run=run, name=data["name"], types=data["type"], idempotency_key=key
        )
        export.refresh_from_db()
        return Response(s.export_json(export), status=202 if created else 200)


class RunExportDetailView(APIView):
    @extend_schema(operation_id="runs_files_export_get", responses={200: ExportOut, **ERRORS})
    def get(self, request: Request, run_id: str, export_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return Response(s.export_json(selectors.export_of(run, export_id)))


class RunHarView(APIView):
    @extend_schema(
        operation_id="runs_har",
        parameters=[OpenApiParameter("pageId", str, description="Only this page (tab)")],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> StreamingHttpResponse:
        from runs.exports import streaming_response
        from runs.exports.har import CONTENT_TYPE, har_chunks, har_filename

        run = selectors.run_of(space_of(request), run_id)
        raw_page = request.query_params.get("pageId")
        page_id = selectors.page_of(run, raw_page) if raw_page is not None else None
        return streaming_response(
            request._request,
            har_chunks(run, page_id),
            content_type=CONTENT_TYPE,
            filename=har_filename(run, page_id),
        )


class RunScreenshotView(APIView):
    @extend_schema(
        operation_id="runs_screenshot",
        request=None,
        responses={201: ArtifactOut, **ERRORS},
        description=(
            "A PNG of the page the run's clients used last (else the first page that "
            "shows something), stored as a `screenshot` artifact. 409 when the runtime "
            "is not running."
        ),
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        runtime = run.runtime
        if runtime is not None:
            runtime.refresh_from_db()
        if (
            not run.is_active
            or runtime is None
            or runtime.status != Runtime.Status.RUNNING
            or not runtime.cdp_endpoint
        ):
            raise Conflict(
                f"Run {run.id} has no running browser to photograph.",
                code="runtime.not_running",
            )
        last_used = (
            selectors.commands_of(run)
            .filter(source="cdp")
            .exclude(page_id="")
            .order_by("-started_at", "-id")
            .values_list("page_id", flat=True)
            .first()
        )
        started_at = timezone.now()
        try:
            shot = async_to_sync(capture_screenshot)(
                runtime.cdp_endpoint,
                preferred_target_id=last_used,
                timeout_s=float(settings.BCTRL_CDP_SCREENSHOT_TIMEOUT_S),
            )
        except CdpError as exc:
            raise ApiError(
                f"The screenshot failed: {exc}", code="runtime.screenshot_failed", status_code=502
            ) from exc
        artifact = services.artifact_store(
            run=run,
            kind=Artifact.Kind.SCREENSHOT,
            name=f"screenshot-{started_at:%Y%m%d-%H%M%S}.png",
            content=io.BytesIO(shot.png),
            content_type="image/png",
            metadata={"pageId": shot.target_id, "url": shot.url, "title": shot.title},
        )
        services.commands_record(
            run=run,
            commands=[
                {
                    "method": "Page.captureScreenshot",
                    "params": {"format": "png", "artifactId": artifact.id},
                    "status": Command.Status.SUCCEEDED,
                    "source": "platform",
                    "page_id": shot.target_id,
                    "started_at": started_at,
                    "ended_at": timezone.now(),
                }
            ],
        )
        return Response(s.artifact_json(artifact), status=201)
