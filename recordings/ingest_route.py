"""The rrweb ingest's own ASGI route: `POST /v1/runs/{id}/recording/events` answered
without Django's URL resolver and middleware chain.

A recorder posts a batch every few hundred milliseconds per page, so this one endpoint
takes nearly all of the web process's requests while a run records. Through Django, each
pays for the ASGI handler (a body spooled to a temporary file, the request signals, a
per-request thread context, a task that listens for a disconnect) and for nine
middlewares, most of which hop to a thread and back; together more than the batch
itself. This route reads the body on the event loop and hands it to the same function the
view calls (`recordings.api.ingest`: API key, tenancy, limits, validation, storage), in
the same ingest threads, so every rule of the endpoint stays in one place.

What it keeps of the middleware chain, for the requests it takes:

- the response headers the chain adds to an API answer: `Content-Security-Policy` (the
  strict policy), `X-Frame-Options`, `X-Content-Type-Options`, `Referrer-Policy`,
  `Cross-Origin-Opener-Policy`, `Strict-Transport-Security` on a secure request, each
  from the same setting the middleware reads (`security_headers`), and `Content-Length`;
- the `django.request` log line of every 4xx/5xx answer, the API's JSON 500 for an
  unexpected error (logged with its traceback), and its 503 when the database or Redis
  is down (as `runs.errors.handler500` answers on Django's routes).

Everything else goes to Django, unchanged: other methods and paths, and every request for
which a middleware would do more than add headers: a `Host` outside ALLOWED_HOSTS (or
none), `USE_X_FORWARDED_HOST`, an HTTP request that SECURE_SSL_REDIRECT would redirect,
DISALLOWED_USER_AGENTS, PREPEND_WWW, a script prefix, or a MIDDLEWARE setting other than
the one this route was written for (`ROUTED_MIDDLEWARE`).
"""

import io
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.utils.log import log_response

from bctrl_site.middleware import STRICT_POLICY
from recordings import api
from runs.errors import OUTAGE_ERRORS, error_body, service_unavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # Django's handler, or any ASGI application

INGEST_PATH = re.compile(r"/v1/runs/([^/]+)/recording/events")

# The chain whose effect on an ingest answer `security_headers` reproduces. Another list
# (a middleware added or removed) sends every request through Django until this route is
# reviewed against it (tests/test_recording_ingest.py fails meanwhile).
ROUTED_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "bctrl_site.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bctrl_site.middleware.ContentSecurityPolicyMiddleware",
)

logger = logging.getLogger("django.request")


class RecordingIngestRoute:
    """The "http" application: the ingest's POSTs here, every other request to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INGEST_PATH.fullmatch(scope["path"])
            if match is not None:
                meta = routed_meta(scope)
                if meta is not None:
                    await take_batch(scope, meta, match[1], receive, send)
                    return
        await self.app(scope, receive, send)


def routed_meta(scope: Scope) -> dict[str, Any] | None:
    """The request's headers as Django's META names them, or None when the request must
    go through Django because a middleware would do more than add headers to it."""
    if (
        scope.get("root_path")
        or settings.FORCE_SCRIPT_NAME
        or tuple(settings.MIDDLEWARE) != ROUTED_MIDDLEWARE
        or settings.DISALLOWED_USER_AGENTS
        or settings.PREPEND_WWW
        or settings.USE_X_FORWARDED_HOST
    ):
        return None
    meta = header_meta(scope)
    host = meta.get("HTTP_HOST")
    if not host:
        return None  # Django rebuilds it from the server's name and port
    if not host_allowed(host):
        return None  # Django answers DisallowedHost
    secure = is_secure(scope, meta)
    if settings.SECURE_SSL_REDIRECT and not secure:
        return None  # SecurityMiddleware redirects (unless the path is exempt)
    meta["wsgi.url_scheme"] = "https" if secure else "http"
    client = scope.get("client")
    meta["REMOTE_ADDR"] = client[0] if client else ""  # as ASGIRequest sets it
    return meta


def header_meta(scope: Scope) -> dict[str, Any]:
    """The request's headers as Django's META names them: as ASGIRequest builds META,
    repeated headers joined with ",", names with "_" dropped."""
    meta: dict[str, Any] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin1")
        if "_" in name:
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin1")
        meta[key] = f"{meta[key]},{value}" if key in meta else value
    return meta


def host_allowed(host: str) -> bool:
    """Whether a `Host` (or an origin's host) is one of ALLOWED_HOSTS, as Django judges
    it (`.example.com` for its subdomains, `*`; with DEBUG and none set, localhost)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def is_secure(scope: Scope, meta: dict[str, Any]) -> bool:
    """HttpRequest.is_secure() of this request: SECURE_PROXY_SSL_HEADER, else the scheme."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = meta.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(scope.get("scheme") == "https")


def security_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The headers SecurityMiddleware, XFrameOptionsMiddleware and
    ContentSecurityPolicyMiddleware add to an ingest answer (a JSON response that sets
    none of them, on a path outside /embed/)."""
    headers = [
        ("Content-Security-Policy", STRICT_POLICY),
        ("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()),
    ]
    if settings.SECURE_HSTS_SECONDS and secure:
        sts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            sts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            sts += "; preload"
        headers.append(("Strict-Transport-Security", sts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        values = [v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(values)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers


async def read_request_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, cut after `limit` + 1 bytes (enough for the ingest to answer 413
    as it does for a longer one); None when the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk and size <= limit:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return body[: limit + 1] if size > limit else body


async def take_batch(
    scope: Scope, meta: dict[str, Any], run_id: str, receive: Receive, send: Send
) -> None:
    body = await read_request_body(receive, settings.BCTRL_RECORDING_MAX_BATCH_BYTES)
    if body is None:
        return
    try:
        response = await run_ingest(meta, body, run_id)
    except OUTAGE_ERRORS as exc:
        response = service_unavailable(scope["path"], exc)  # as handler500 answers
    except Exception:
        logger.error(
            "Internal Server Error: %s",
            scope["path"],
            exc_info=True,
            extra={"status_code": 500, "request": None},
        )
        response = HttpResponse(
            orjson.dumps(error_body("internal_error", "Internal server error.")),
            status=500,
            content_type="application/json",
        )
        response._has_been_logged = True  # type: ignore[attr-defined]
    await send_response(scope, send, response, secure=meta["wsgi.url_scheme"] == "https")


async def send_response(scope: Scope, send: Send, response: HttpResponse, *, secure: bool) -> None:
    """Sends a Django response answered outside Django, with the headers and the log line
    the middleware chain would have given it."""
    for name, value in security_headers(secure=secure):
        if name not in response:
            response[name] = value
    content = response.content
    response["Content-Length"] = str(len(content))  # as CommonMiddleware sets it
    if response.status_code >= 400:
        log_response("%s: %s", response.reason_phrase, scope["path"], response=response)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [
                (name.encode("ascii"), value.encode("latin1")) for name, value in response.items()
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def run_ingest(meta: dict[str, Any], body: bytes, run_id: str) -> HttpResponse:
    """The ingest of one request in a thread of the ingest pool (tests replace this to run
    it in their own thread and transaction, as Django's test client runs views)."""
    return await api.in_ingest_thread(api.ingest, meta, io.BytesIO(body), run_id)
