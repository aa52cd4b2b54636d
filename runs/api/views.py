"""The runs API (`/v1`): thin views over selectors and services."""

import io
from collections.abc import Callable
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bctrl_site.storage import download_url
from runs import selectors, services
from runs.api import serializers as s
from runs.api.auth import space_of
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
    list_of,
    page_of,
)
from runs.api.uploads import LimitedUploads
from runs.cdp_client import CdpError, capture_screenshot
from runs.errors import ApiError, Conflict, Invalid, NotFound, PayloadTooLarge
from runs.exports import streaming_response
from runs.exports.files import export_request
from runs.exports.har import CONTENT_TYPE as HAR_TYPE
from runs.exports.har import har_chunks, har_filename
from runs.models import Artifact, Command, Run, Runtime


def validated(serializer_class: type[s.serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _split(raw: str | None) -> list[str]:
    return [part for part in (raw or "").split(",") if part]


def int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if len(raw) > 12 or not raw.isdigit():
        raise Invalid(f"{name} must be a non-negative integer.", details={name: raw[:20]})
    value = int(raw)
    if value > 2**31 - 1:
        raise Invalid(f"{name} is too large.", details={name: value})
    return value


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
        "after_seq": int_param(request, "after"),
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
    return int(settings.BCTRL_MAX_EVENTS_PER_BATCH)


def _check_event_sizes(events: list[Any]) -> None:
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


def artifact_page(
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
        return artifact_page(request, selectors.artifacts_of(run, kinds=_kinds(request, "kind")))

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
        return artifact_page(request, selectors.files_of(run, kinds=_kinds(request, "type")))


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
        export, created = export_request(
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
        run = selectors.run_of(space_of(request), run_id)
        raw_page = request.query_params.get("pageId")
        page_id = selectors.page_of(run, raw_page) if raw_page is not None else None
        return streaming_response(
            request._request,
            har_chunks(run, page_id),
            content_type=HAR_TYPE,
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
