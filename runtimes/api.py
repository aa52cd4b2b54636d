"""`/v1/runtimes`: a space's runtimes, starting and stopping them, and the files a client
puts into a running browser."""

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import selectors, services
from runs.api import serializers as s
from runs.api import throttles
from runs.api.auth import space_of
from runs.api.pagination import paginate, parse_limit
from runs.api.schema import (
    ERRORS,
    PAGING,
    ArtifactOut,
    RunOut,
    RuntimeDetailOut,
    RuntimeOut,
    RuntimeStartOut,
    page_of,
)
from runs.api.uploads import LimitedUploads
from runs.api.views import artifact_page, int_param, validated
from runs.errors import Invalid, NotFound
from runs.models import Artifact, Runtime
from runtimes import services as runtime_services
from runtimes.launch import launch


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
        runtime = runtime_services.runtime_create(
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
        wait_ms = int_param(request, "waitMs") or 0
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
        runtime = runtime_services.runtime_stop(runtime=runtime)
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
        return artifact_page(request, files, runtime_file_json)

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
        placed = runtime_services.upload_wait_placed(artifact)
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
