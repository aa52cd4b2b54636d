"""One JSON error shape for the runs API: {"error": {"code", "message", "details"?}}.

Outages: a request that fails because the database, Redis or the Celery broker cannot be
reached is answered `503` with `Retry-After` (the API's JSON error on API paths, an HTML
page elsewhere), never a 500 (`handler500`, `outage_of`; DRF's `exception_handler` leaves
these errors to it). Django opens a new database connection on the next request, so the
answers return to normal with the service, without a restart.
"""

import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import kombu.exceptions
import redis.exceptions
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ObjectNotFound(Exception):
    """An id that does not exist, or that belongs to another space: callers see a 404.
    Selectors raise it (runs.selectors)."""


class ApiError(exceptions.APIException):
    """An error with a stable machine-readable code, raised from services and views."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, code or self.default_code)
        self.code = code or self.default_code
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        self.retry_after = retry_after


class NotFound(ApiError):
    status_code: int = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class Conflict(ApiError):
    status_code: int = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    status_code: int = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class UnsupportedEncoding(ApiError):
    status_code: int = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_encoding"


class Invalid(ApiError):
    status_code: int = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "validation_error"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


_DRF_CODES: dict[type[exceptions.APIException], tuple[int, str]] = {
    exceptions.ParseError: (400, "invalid_json"),
    exceptions.NotAuthenticated: (401, "unauthenticated"),
    exceptions.AuthenticationFailed: (401, "unauthenticated"),
    exceptions.PermissionDenied: (403, "forbidden"),
    exceptions.NotFound: (404, "not_found"),
    exceptions.MethodNotAllowed: (405, "method_not_allowed"),
    exceptions.NotAcceptable: (406, "not_acceptable"),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type"),
    exceptions.Throttled: (429, "rate_limited"),
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, reshaped: invalid fields are 422, nothing leaks a trace."""
    if isinstance(exc, ObjectNotFound):
        return Response(error_body("not_found", str(exc)), status=404)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, PermissionDenied):
        return Response(error_body("forbidden", "Forbidden."), status=403)
    if isinstance(exc, ApiError):
        response = Response(
            error_body(exc.code, str(exc.detail), exc.details), status=exc.status_code
        )
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("validation_error", _first_message(exc.detail), exc.detail), status=422
        )
    if isinstance(exc, exceptions.APIException):
        status_code, code = _DRF_CODES.get(type(exc), (exc.status_code, "error"))
        response = Response(error_body(code, str(exc.detail)), status=status_code)
        if status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="bctrl"'
        wait = getattr(exc, "wait", None)
        if status_code == 429 and wait is not None:
            response["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    return None


_API_PREFIXES = ("/v1/", "/api/v1/", "/client/v4/")
MCP_PATHS = ("/mcp", "/mcp/")  # the MCP server (bctrl_site/mcp_route.py)


def is_api_path(path: str) -> bool:
    return path.startswith(_API_PREFIXES) or path in MCP_PATHS


def api_error_response(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if is_api_path(request.path):
        return api_error_response(404, "not_found", "Not found.")
    return defaults.page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> Any:
    # The error being handled (asgiref hands it to the thread that calls this under ASGI).
    exc = sys.exc_info()[1]
    if exc is not None and outage_of(exc) is not None:
        return service_unavailable(request.path, exc)
    if is_api_path(request.path):
        return api_error_response(500, "internal_error", "Internal server error.")
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> Any:
    if is_api_path(request.path):
        return api_error_response(400, "bad_request", "Bad request.")
    return defaults.bad_request(request, exception or Exception())


# --- Outages --------------------------------------------------------------------------

RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Outage:
    code: str
    message: str


DATABASE_DOWN = Outage(
    "database_unavailable", "The database is unavailable. Try again in a few seconds."
)
BROKER_DOWN = Outage(
    "queue_unavailable", "The task queue is unavailable. Try again in a few seconds."
)
REDIS_DOWN = Outage("redis_unavailable", "Redis is unavailable. Try again in a few seconds.")
STORAGE_DOWN = Outage(
    "storage_unavailable", "The object storage is unavailable. Try again in a few seconds."
)
SERVICE_DOWN = Outage(
    "service_unavailable", "A service bctrl needs is unavailable. Try again in a few seconds."
)


# What each error says is down. Django raises OperationalError when it cannot connect or
# the connection broke (and for SQLite's "database is locked" after its timeout),
# InterfaceError on a connection already closed; a Celery enqueue raises kombu's
# OperationalError once its retries are spent; redis-py ConnectionError or TimeoutError;
# botocore's connection errors (refused, reset, timed out) when the S3 endpoint is away.
_OUTAGES: tuple[tuple[tuple[type[Exception], ...], Outage], ...] = (
    ((OperationalError, InterfaceError), DATABASE_DOWN),
    ((kombu.exceptions.OperationalError,), BROKER_DOWN),
    ((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError), REDIS_DOWN),
    (
        (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError),
        STORAGE_DOWN,
    ),
)
OUTAGE_ERRORS = tuple(kind for kinds, _ in _OUTAGES for kind in kinds)


def outage_of(exc: BaseException | None) -> Outage | None:
    """The service that `exc` says cannot be reached, or None for any other error."""
    for kinds, outage in _OUTAGES:
        if isinstance(exc, kinds):
            return outage
    return None


def service_unavailable(path: str, exc: BaseException) -> HttpResponse:
    """The answer to a request that `exc` failed because a service is down: 503 with
    Retry-After, the API's JSON error on API paths and a page elsewhere."""
    outage = outage_of(exc) or SERVICE_DOWN
    logger.warning("%s: %s (%s)", path, outage.code, exc)
    response: HttpResponse
    if is_api_path(path):
        response = api_error_response(503, outage.code, outage.message)
    else:
        # Rendered without the request: its context processors would read the session.
        context = {"message": outage.message, "retry_after": RETRY_AFTER_S}
        response = HttpResponse(render_to_string("503.html", context), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response
