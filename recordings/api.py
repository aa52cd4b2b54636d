"""Recorder-facing ingest of rrweb batches: POST /v1/runs/{id}/recording/events."""

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView

from recordings import services
from recordings.exports import CONTENT_TYPE as REPLAY_TYPE
from recordings.exports import replay_file, replay_filename
from recordings.selectors import run_recording_summary
from recordings.video import screencast_frames
from runs import selectors
from runs.api import serializers as s
from runs.api import throttles
from runs.api.auth import bearer_token, space_of
from runs.api.parsers import BodySlot, BoundedJSONParser, body_slot, json_body
from runs.api.schema import ERRORS, RunDetailOut
from runs.errors import ApiError, Invalid, error_body
from runs.exports import streaming_response
from runs.exports.trace import CONTENT_TYPE as TRACE_TYPE
from runs.exports.trace import trace_chunks, trace_filename
from runs.models import Run
from runs.selectors import ObjectNotFound


class RecordingBatchParser(BoundedJSONParser):
    """JSON with the recording limits, which are larger than the rest of the API's."""

    max_body_setting = "BCTRL_RECORDING_MAX_BATCH_BYTES"
    max_inflated_setting = "BCTRL_RECORDING_MAX_INFLATED_BYTES"


class BatchIn(serializers.Serializer):
    target = serializers.CharField()
    seq = serializers.IntegerField(min_value=0)
    events = serializers.ListField(child=serializers.DictField())


class BatchOut(serializers.Serializer):
    recordingId = serializers.CharField()
    target = serializers.CharField()
    seq = serializers.IntegerField()
    eventCount = serializers.IntegerField()
    duplicate = serializers.BooleanField()


def _ingest_threads() -> int:
    configured = getattr(settings, "BCTRL_RECORDING_INGEST_THREADS", None)
    return int(configured or os.environ.get("BCTRL_RECORDING_INGEST_THREADS") or 4)


_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_executor_lock = threading.Lock()


def ingest_executor() -> ThreadPoolExecutor:
    """The threads that ingest batches in parallel, each with its own database connection.

    Django runs a sync view in a thread of its own per request under ASGI, started for
    that request (a new thread, so a new database connection, every time); these threads
    and their connections live as long as the process. Bounded: at most
    BCTRL_RECORDING_INGEST_THREADS (4) connections per web process. A forked process
    makes its own: it inherits the parent's pool but not its threads, and work given to
    that pool would wait for them forever.
    """
    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(
                max_workers=_ingest_threads(), thread_name_prefix="recording-ingest"
            )
            _executor_pid = os.getpid()
        return _executor


def ingest_batch(meta: Mapping[str, Any], stream: Any, run: Run) -> tuple[int, dict[str, Any]]:
    """Parses, validates and stores one batch for `run` (read with its active recording:
    see services.ingest_lookup) from a request's META and body stream; the status and
    JSON body of the answer."""
    with body_slot() as slot:  # held until the batch is stored: its memory lasts as long
        return _ingest_batch(meta, stream, run, slot)


def _ingest_batch(
    meta: Mapping[str, Any], stream: Any, run: Run, slot: BodySlot
) -> tuple[int, dict[str, Any]]:
    content_type = meta.get("CONTENT_TYPE", "")
    body: dict[str, Any] = {}  # no Content-Type: no body, as DRF reads it
    if content_type:
        if content_type != "application/json" and not media_type_matches(
            RecordingBatchParser.media_type, content_type
        ):
            raise UnsupportedMediaType(content_type)
        body = json_body(
            stream,
            meta,
            max_body=settings.BCTRL_RECORDING_MAX_BATCH_BYTES,
            max_inflated=settings.BCTRL_RECORDING_MAX_INFLATED_BYTES,
            slot=slot,
        )
    unknown = sorted(set(body) - {"target", "seq", "events"})
    if unknown:
        raise Invalid(f"Unknown field {unknown[0]!r}.", details={"unknown": unknown})
    target, seq = body.get("target"), body.get("seq")
    if not isinstance(target, str):
        raise Invalid("target must be a string.", details={"field": "target"})
    if type(seq) is not int or not 0 <= seq <= 2**31 - 1:
        raise Invalid(f"seq must be an integer from 0 to {2**31 - 1}.", details={"field": "seq"})
    events = services.validate_rrweb_events(body.get("events"))
    result = services.batch_ingest(run=run, target=target, seq=seq, events=events)
    return (
        201 if result.created else 200,
        {
            "recordingId": result.batch.recording_id,
            "target": result.batch.target,
            "seq": result.batch.seq,
            "eventCount": result.batch.event_count,
            "duplicate": not result.created,
        },
    )


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _error(exc: Exception) -> HttpResponse | None:
    """The API's error answer for `exc` (runs.errors.exception_handler), or None."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = _json(401, error_body("unauthenticated", str(exc.detail)))
        response["WWW-Authenticate"] = 'Bearer realm="bctrl"'
        return response
    if isinstance(exc, UnsupportedMediaType):
        return _json(415, error_body("unsupported_media_type", str(exc.detail)))
    if isinstance(exc, ObjectNotFound):
        return _json(404, error_body("not_found", str(exc)))
    if isinstance(exc, ApiError):
        response = _json(exc.status_code, error_body(exc.code, str(exc.detail), exc.details))
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    return None


def ingest(meta: Mapping[str, Any], stream: Any, run_id: str) -> HttpResponse:
    """The whole POST, sync: API key, run, body, batch, from the request's META (Django's
    names: HTTP_AUTHORIZATION, CONTENT_TYPE, …) and its body stream. Every refusal is an
    answer in the API's error shape; anything else raised is a server error."""
    try:
        token = bearer_token(meta)  # type: ignore[arg-type]  # reads META like a dict
        if token is None:
            raise exceptions.NotAuthenticated()
        caller = services.ingest_lookup(token, run_id)
        if caller is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or revoked.")
        caller.api_key.touch()
        throttles.check(throttles.INGEST, api_key_id=caller.api_key.id, meta=meta)
        if caller.run is None:
            raise ObjectNotFound(f"No run {run_id!r}.")
        status, body = ingest_batch(meta, stream, caller.run)
        return _json(status, body)
    except Exception as exc:
        response = _error(exc)
        if response is None:
            raise
        return response


def ingest_request(request: HttpRequest, run_id: str) -> HttpResponse:
    return ingest(request.META, request, run_id)


# `POST /v1/runs/{id}/recording/events` is an async view (see `as_view`) that stores the
# batch in an ingest thread, so one process takes several batches at once. The DRF class
# documents the endpoint (OpenAPI) and answers the other methods.
class RecordingEventsView(APIView):
    parser_classes = [RecordingBatchParser]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)
        other_methods = sync_to_async(drf_view)

        async def view(request: HttpRequest, run_id: str) -> HttpResponseBase:
            if request.method != "POST":
                response: HttpResponseBase = await other_methods(request, run_id=run_id)
                return response
            if isinstance(request, ASGIRequest):
                # Under an ASGI server (when the route of recordings.ingest_route left
                # the request to Django): a thread of the ingest pool, not the
                # request's own (new) thread, so several batches are taken in parallel
                # on warm database connections.
                return await in_ingest_thread(ingest_request, request, run_id)
            # Django's test client and other sync callers: the caller's thread, its
            # connection and its transaction.
            return await sync_to_async(ingest_request)(request, run_id)

        view.cls = cls  # type: ignore[attr-defined]  # for drf-spectacular, as DRF sets
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        view.view_class = cls  # type: ignore[attr-defined]
        return csrf_exempt(view)

    @extend_schema(
        operation_id="runs_recording_events_append",
        request=BatchIn,
        responses={201: BatchOut, 200: BatchOut, **ERRORS},
        parameters=[
            OpenApiParameter(
                "Content-Encoding", str, OpenApiParameter.HEADER, enum=["identity", "gzip"]
            )
        ],
    )
    def post(self, request: Request, run_id: str) -> Response:
        runs = services.with_active_recording(selectors.runs_of(space_of(request)))
        run = runs.select_related(None).filter(pk=run_id).first()
        if run is None:
            raise ObjectNotFound(f"No run {run_id!r}.")
        status, body = ingest_batch(request._request.META, request._request, run)
        return Response(body, status=status)


_Answer = TypeVar("_Answer")


async def in_ingest_thread(function: Callable[..., _Answer], *args: Any) -> _Answer:
    """`function(*args)` in a thread of the ingest pool, awaited on the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        ingest_executor(), contextvars.copy_context().run, _in_thread, loop, function, args
    )


def _in_thread(
    loop: asyncio.AbstractEventLoop, function: Callable[..., _Answer], args: tuple[Any, ...]
) -> _Answer:
    # As sync_to_async does for its threads: async_to_sync (the channel layer's
    # publish) then runs on the server's event loop.
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()
    # What request_started and request_finished do for the connection of a view's thread
    # (CONN_MAX_AGE, CONN_HEALTH_CHECKS, a connection left unusable by an error), except
    # that CONN_MAX_AGE = 0 (SQLite's default here) keeps the connection: these threads
    # are few and live as long as the process, so each keeps one connection.
    _close_old_connections()
    try:
        return function(*args)
    finally:
        _close_old_connections()


def _close_old_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict.get("CONN_MAX_AGE") == 0:
            connection.close_at = None
        connection.close_if_unusable_or_obsolete()


class RunTraceView(APIView):
    """`GET /v1/runs/{id}/trace.zip`: the run as a Playwright trace (runs/exports/trace.py)
    with its pages' pictures from the recording's videos; here, beside the replay file,
    because those pictures are the recording's."""

    @extend_schema(
        operation_id="runs_trace",
        responses={(200, "application/zip"): OpenApiTypes.BINARY, **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> HttpResponseBase:
        run = selectors.run_of(space_of(request), run_id)
        return streaming_response(
            request._request,
            trace_chunks(run, screencast_frames(run)),
            content_type=TRACE_TYPE,
            filename=trace_filename(run),
        )


class RunReplayFileView(APIView):
    """`GET /v1/runs/{id}/replay.html`: the self-contained replay file (recordings/
    exports.py), streamed with its Content-Length; HEAD gives the size alone."""

    @extend_schema(
        operation_id="runs_replay_file",
        responses={(200, "text/html"): OpenApiTypes.BINARY, **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> HttpResponseBase:
        run = selectors.run_of(space_of(request), run_id)
        file = replay_file(run)
        response = streaming_response(
            request._request,
            file.chunks(),
            content_type=REPLAY_TYPE,
            filename=replay_filename(run),
        )
        response["Content-Length"] = str(file.size)
        return response

    @extend_schema(operation_id="runs_replay_file_size", responses={200: None, **ERRORS})
    def head(self, request: Request, run_id: str) -> HttpResponseBase:
        run = selectors.run_of(space_of(request), run_id)
        file = replay_file(run)
        response = HttpResponse(content_type=REPLAY_TYPE)
        response["Content-Length"] = str(file.size)
        response["Content-Disposition"] = f'attachment; filename="{replay_filename(run)}"'
        response["Cache-Control"] = "private, no-store"
        return response


class RunDetailView(APIView):
    """`GET /v1/runs/{id}`: the run with its recording's summary, so it is answered here,
    where both are known."""

    @extend_schema(operation_id="runs_get", responses={200: RunDetailOut, **ERRORS})
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return Response({**s.run_json(run), "recording": run_recording_summary(run)})
