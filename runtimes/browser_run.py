"""Browser Run's session API (seed 003), served as the official `cloudflare` package calls
it, under `/client/v4/accounts/{account_id}/browser-rendering/`: the account id is the
space id, `Authorization: Bearer <bctrl API key>`. A session is a runtime with its run
(the session id is the run id), so sessions are runs like any other: in `/v1/runs`, the
dashboard, the replay and the live view.

HTTP (this module; the websockets are the CDP proxy's, runtimes/cdp_proxy.py):

- `POST devtools/browser?keep_alive=&recording=&targets=&lab=&live_view_url_expires_in_ms=`
  (body `{"guardrails": {"allowedDomains": [...]}}` optional) → `{sessionId,
  webSocketDebuggerUrl}`: a runtime started for the session. Recording is opt-in here
  (`recording=true`), keep_alive defaults to 60 s without a client, as upstream.
- `DELETE devtools/browser/{id}` → `{"status": "closing" | "closed"}`.
- `GET devtools/browser/{id}/json/version|protocol|list|list/{target}`, `PUT json/new?url=`,
  `GET json/activate/{target}`, `GET json/close/{target}`: the browser's own DevTools HTTP
  answers, with its websocket URLs replaced by ours.
- `POST devtools/browser/{id}/live_view` `{expiresInMs?, mode?, guardrails?, targetId?}` →
  a bctrl live viewer URL (view-only with `guardrails.mode = "readonly"`).
- `GET devtools/session?limit=&offset=`, `GET devtools/session/{id}`: sessions, closed
  ones included.
- A plain (non-websocket) GET of a websocket route answers 426.

These calls answer the bare objects the package parses (not Cloudflare's `result`
envelope, which it does not unwrap for them); every error is Cloudflare's envelope
`{"success": false, "errors": [{"code", "message"}], "messages": [], "result": null}`.
"""

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import selectors
from runs.api.auth import space_of
from runs.confinement import url_refusal
from runs.errors import ApiError, Invalid, NotFound, exception_handler
from runs.models import Event, Run, Runtime, Space
from runtimes import services as runtime_services
from runtimes.launch import launch
from viewers.leases import embed_url, lease_mint
from viewers.models import ViewerLease

OBJECT = {200: OpenApiTypes.OBJECT}
DEFAULT_KEEP_ALIVE_MS = 60_000  # upstream closes a browser idle for 60 s
MAX_KEEP_ALIVE_MS = 24 * 60 * 60 * 1000
DEFAULT_LIVE_VIEW_MS = 5 * 60 * 1000
MAX_LIVE_VIEW_MS = 60 * 60 * 1000
DEFAULT_SESSION_LIMIT = 50
MAX_SESSION_LIMIT = 100
BROWSER_TIMEOUT_S = 10
SESSION_RUNTIME_NAME = "Browser Run session"
MAX_ALLOWED_DOMAINS = 50
TARGET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DOMAIN_PATTERN = re.compile(r"^[a-z0-9*](?:[a-z0-9*.-]{0,251}[a-z0-9*])?$")

# Cloudflare's numeric error codes where it has well-known ones, else 1000 + status.
_CLOUDFLARE_CODES = {401: 10000, 403: 10000, 404: 7003}

# closeReason / closeReasonText of a closed session.
CLOSE_REASONS = {
    "client": (1, "NormalClosure"),
    "idle": (2, "BrowserIdle"),
    "failed": (3, "BrowserError"),
}


def cloudflare_error(status: int, message: str, code: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": _CLOUDFLARE_CODES.get(status, 1000 + status)}
    error["message"] = message
    if code:
        error["type"] = code  # bctrl's own error code
    return {"success": False, "errors": [error], "messages": [], "result": None}


def cloudflare_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's errors (runs.errors.exception_handler), in Cloudflare's envelope."""
    response = exception_handler(exc, context)
    if response is not None:
        error = (response.data or {}).get("error") or {}
        response.data = cloudflare_error(
            response.status_code, str(error.get("message", "")), str(error.get("code", ""))
        )
    return response


class BrowserRunView(APIView):
    def get_exception_handler(self) -> Any:
        return cloudflare_exception_handler


def account_of(request: Request, account_id: str) -> Space:
    space = space_of(request)
    if account_id != space.id:
        raise selectors.ObjectNotFound(f"No account {account_id!r}.")
    return space


def epoch_ms(moment: datetime | None) -> float | None:
    return round(moment.timestamp() * 1000, 3) if moment is not None else None


def websocket_base(request: Request | None = None) -> str:
    """`ws(s)://host` of this server: the request's, else SITE_URL's."""
    if request is not None:
        return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}"
    parts = urlsplit(settings.SITE_URL)
    return f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"


def session_url(base: str, space_id: str, run_id: str, target_id: str | None = None) -> str:
    url = f"{base}/client/v4/accounts/{space_id}/browser-rendering/devtools/browser/{run_id}"
    return f"{url}/page/{target_id}" if target_id else url


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in ("true", "1", "false", "0"):
        raise Invalid(f"{name} must be true or false.", details={name: raw})
    return value in ("true", "1")


def query_ms(request: Request, name: str, default: int | None, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= maximum:
        raise Invalid(f"{name} must be milliseconds from 0 to {maximum}.", details={name: raw})
    return int(value)


def allowed_domains(body: Any) -> list[str] | None:
    """The hosts a session may reach (`guardrails.allowedDomains`), or None for no rule."""
    guardrails = body.get("guardrails") if isinstance(body, dict) else None
    if guardrails is None:
        return None
    if not isinstance(guardrails, dict):
        raise Invalid("guardrails must be an object.")
    if guardrails.get("allowedDomainSets"):
        raise Invalid(
            "allowedDomainSets is not supported by bctrl; list the hosts in allowedDomains.",
            details={"allowedDomainSets": guardrails["allowedDomainSets"]},
        )
    domains = guardrails.get("allowedDomains")
    if domains is None:
        return None
    if not isinstance(domains, list) or len(domains) > MAX_ALLOWED_DOMAINS:
        raise Invalid(f"allowedDomains must be a list of at most {MAX_ALLOWED_DOMAINS} hosts.")
    cleaned = []
    for domain in domains:
        value = domain.strip().lower() if isinstance(domain, str) else ""
        if not _DOMAIN_PATTERN.fullmatch(value) or value.count("*") > 1:
            raise Invalid(f"{domain!r} is not a host pattern (one * wildcard at most).")
        cleaned.append(value)
    return cleaned


# Sessions -----------------------------------------------------------------------------


def sessions_of(space: Space) -> QuerySet[Run]:
    """A space's browser sessions: its runs of a runtime, newest first."""
    return selectors.runs_of(space).filter(runtime__isnull=False).order_by("-id")


def session_of(space: Space, session_id: str) -> Run:
    run = selectors.run_of(space, session_id)
    if run.runtime_id is None:
        raise selectors.ObjectNotFound(f"No session {session_id!r}.")
    return run


def _connections(runs: Iterable[Run]) -> dict[str, dict[str, Any]]:
    """Each run's latest CDP connection, from its connection.* and lifecycle events, and
    why it closed: one query for a page of sessions."""
    found: dict[str, dict[str, Any]] = {}
    rows = Event.objects.filter(
        run__in=list(runs),
        type__in=("connection.opened", "connection.closed", "runtime.lifecycle"),
    ).order_by("seq")
    for run_id, type, time, data in rows.values_list("run_id", "type", "time", "data"):
        facts = found.setdefault(run_id, {})
        facts["last"] = time
        if type == "connection.opened":
            facts.update(id=data.get("connectionId"), start=time, end=None)
        elif type == "connection.closed" and data.get("connectionId") == facts.get("id"):
            facts["end"] = time
        elif type == "runtime.lifecycle" and data.get("state") in ("stopped", "failed"):
            facts["close"] = "failed" if data["state"] == "failed" else data.get("reason")
    return found


def session_json(run: Run, connection: dict[str, Any], base: str, site: str = "") -> dict[str, Any]:
    running = run.status == Run.Status.RUNNING
    closed_by = None if running else (connection.get("close") or "client")
    if run.status == Run.Status.FAILED:
        closed_by = "failed"
    reason = CLOSE_REASONS.get(closed_by or "", CLOSE_REASONS["client"]) if closed_by else None
    updated = max(t for t in (run.started_at, run.ended_at, connection.get("last")) if t)
    return {
        "sessionId": run.id,
        "startTime": epoch_ms(run.started_at),
        "endTime": epoch_ms(run.ended_at),
        "closeReason": reason[0] if reason else None,
        "closeReasonText": reason[1] if reason else None,
        "connectionId": connection.get("id"),
        "connectionStartTime": epoch_ms(connection.get("start")),
        "connectionEndTime": epoch_ms(connection.get("end")),
        "webSocketDebuggerUrl": session_url(base, run.space_id, run.id) if running else None,
        "devtoolsFrontendUrl": f"{site or settings.SITE_URL}/runs/{run.id}",
        "lastUpdated": epoch_ms(updated),
    }


class SessionListView(BrowserRunView):
    @extend_schema(operation_id="browser_run_sessions_list", responses=OBJECT)
    def get(self, request: Request, account_id: str) -> Response:
        space = account_of(request, account_id)
        limit = _query_int(request, "limit", DEFAULT_SESSION_LIMIT, MAX_SESSION_LIMIT)
        offset = _query_int(request, "offset", 0, 10**9)
        runs = list(sessions_of(space)[offset : offset + limit])
        connections = _connections(runs)
        base = websocket_base(request)
        site = request.build_absolute_uri("/").rstrip("/")
        return Response([session_json(r, connections.get(r.id, {}), base, site) for r in runs])


class SessionDetailView(BrowserRunView):
    @extend_schema(operation_id="browser_run_sessions_get", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str) -> Response:
        run = session_of(account_of(request, account_id), session_id)
        site = request.build_absolute_uri("/").rstrip("/")
        facts = _connections([run]).get(run.id, {})
        return Response(session_json(run, facts, websocket_base(request), site))


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not (0 <= value <= maximum and value == int(value)):
        raise Invalid(f"{name} must be a whole number from 0 to {maximum}.", details={name: raw})
    return int(value)


# Acquire, close ---------------------------------------------------------------------


def acquire(
    space: Space,
    *,
    recording: bool,
    keep_alive_ms: int | None,
    api_key: Any,
    domains: list[str] | None = None,
) -> runtime_services.RuntimeStart:
    """A runtime started for one session; raises the API's errors when it cannot start."""
    config: dict[str, Any] = {"browserRun": True}
    if domains is not None:
        config["allowedDomains"] = domains
    runtime = runtime_services.runtime_create(space=space, name=SESSION_RUNTIME_NAME, config=config)
    return async_to_sync(launch)(
        runtime, recording=recording, keep_alive_ms=keep_alive_ms, api_key=api_key
    )


class BrowserView(BrowserRunView):
    @extend_schema(
        operation_id="browser_run_acquire", request=OpenApiTypes.OBJECT, responses=OBJECT
    )
    def post(self, request: Request, account_id: str) -> Response:
        space = account_of(request, account_id)
        recording = query_bool(request, "recording")
        keep_alive = query_ms(request, "keep_alive", DEFAULT_KEEP_ALIVE_MS, MAX_KEEP_ALIVE_MS)
        targets = query_bool(request, "targets")
        query_bool(request, "lab")  # accepted; there is one kind of browser here
        live_ms = query_ms(
            request, "live_view_url_expires_in_ms", DEFAULT_LIVE_VIEW_MS, MAX_LIVE_VIEW_MS
        )
        started = acquire(
            space,
            recording=recording,
            keep_alive_ms=keep_alive,
            api_key=getattr(request.user, "api_key", None),
            domains=allowed_domains(request.data),
        )
        base = websocket_base(request)
        body: dict[str, Any] = {
            "sessionId": started.run.id,
            "webSocketDebuggerUrl": session_url(base, space.id, started.run.id),
        }
        if targets:
            browser = BrowserHttp(started.runtime)
            body["targets"] = [
                target_json(t, base, started.run, live_ms, request)
                for t in browser.json("/json/list")
            ]
        return Response(body)

    @extend_schema(exclude=True)  # a websocket (runtimes/cdp_proxy.py)
    def get(self, request: Request, account_id: str) -> Response:
        account_of(request, account_id)
        raise websocket_only()


class SessionView(BrowserRunView):
    @extend_schema(operation_id="browser_run_close", request=None, responses=OBJECT)
    def delete(self, request: Request, account_id: str, session_id: str) -> Response:
        run = session_of(account_of(request, account_id), session_id)
        if run.status != Run.Status.RUNNING or run.runtime is None:
            return Response({"status": "closed"})
        runtime = runtime_services.runtime_stop(runtime=run.runtime)
        closed = runtime.status in (Runtime.Status.STOPPED, Runtime.Status.FAILED)
        return Response({"status": "closed" if closed else "closing"})

    @extend_schema(exclude=True)  # a websocket (runtimes/cdp_proxy.py)
    def get(self, request: Request, account_id: str, session_id: str) -> Response:
        session_of(account_of(request, account_id), session_id)
        raise websocket_only()


def websocket_only() -> ApiError:
    return ApiError(
        "This is a websocket endpoint: connect a CDP client (e.g. Playwright's "
        "connect_over_cdp) with the Authorization header.",
        code="websocket_required",
        status_code=426,
    )


# The browser's own DevTools HTTP endpoints ---------------------------------------------


class BrowserHttp:
    """The DevTools HTTP endpoints of a session's browser (on its runtime host)."""

    def __init__(self, runtime: Runtime) -> None:
        if runtime.status != Runtime.Status.RUNNING or not runtime.cdp_endpoint:
            raise ApiError(
                f"The session's browser is {runtime.status}; there is nothing to reach.",
                code="session.closed",
                status_code=410,
            )
        parts = urlsplit(runtime.cdp_endpoint)
        self.base = f"http://{parts.netloc}"

    def open(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(self.base + path, method=method)  # noqa: S310
        try:
            return urllib.request.urlopen(request, timeout=BROWSER_TIMEOUT_S)  # noqa: S310
        except urllib.error.HTTPError as exc:
            raise ApiError(
                exc.read().decode("utf-8", "replace")[:300] or f"The browser answered {exc.code}.",
                code="browser.error",
                status_code=404 if exc.code == 404 else 502,
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise ApiError(
                "The session's browser cannot be reached.",
                code="runtime.unreachable",
                status_code=502,
            ) from exc

    def json(self, path: str, method: str = "GET") -> Any:
        with self.open(path, method) as answer:
            try:
                return json.loads(answer.read())
            except ValueError:
                return {"message": "ok"}


def target_json(
    target: dict[str, Any], base: str, run: Run, live_ms: int | None, request: Request
) -> dict[str, Any]:
    fields = ("id", "type", "url", "title", "description")
    body: dict[str, Any] = {key: target[key] for key in fields if key in target}
    body["webSocketDebuggerUrl"] = session_url(base, run.space_id, run.id, str(target.get("id")))
    if live_ms:
        body["devtoolsFrontendUrl"] = live_view(run, live_ms, readonly=False, request=request)
    return body


def live_view(run: Run, lifetime_ms: int, *, readonly: bool, request: Request) -> str:

    minted = lease_mint(
        run=run,
        kind=ViewerLease.Kind.LIVE,
        control=ViewerLease.Control.NONE if readonly else ViewerLease.Control.INPUT,
        lifetime_s=max(1, lifetime_ms // 1000),
        api_key=getattr(request.user, "api_key", None),
    )
    return embed_url("live", minted.token)


def target_id_of(value: str) -> str:
    if not TARGET_ID.fullmatch(value):
        raise NotFound(f"No target {value!r}.")
    return value


def _browser_of(request: Request, account_id: str, session_id: str) -> tuple[Run, BrowserHttp]:
    run = session_of(account_of(request, account_id), session_id)
    assert run.runtime is not None
    if run.status != Run.Status.RUNNING:
        raise ApiError(f"Session {run.id} has closed.", code="session.closed", status_code=410)
    return run, BrowserHttp(run.runtime)


class VersionView(BrowserRunView):
    @extend_schema(operation_id="browser_run_version", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str) -> Response:
        run, browser = _browser_of(request, account_id, session_id)
        version = browser.json("/json/version")
        version["webSocketDebuggerUrl"] = session_url(websocket_base(request), account_id, run.id)
        return Response(version)


class ProtocolView(BrowserRunView):
    @extend_schema(operation_id="browser_run_protocol", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str) -> StreamingHttpResponse:
        _, browser = _browser_of(request, account_id, session_id)
        answer = browser.open("/json/protocol")
        chunks = iter(lambda: answer.read(64 * 1024), b"")
        return StreamingHttpResponse(chunks, content_type="application/json")


class TargetListView(BrowserRunView):
    @extend_schema(operation_id="browser_run_targets_list", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str) -> Response:
        run, browser = _browser_of(request, account_id, session_id)
        live_ms = query_ms(request, "live_view_url_expires_in_ms", None, MAX_LIVE_VIEW_MS)
        base = websocket_base(request)
        targets = browser.json("/json/list")
        return Response([target_json(t, base, run, live_ms, request) for t in targets])


class TargetGetView(BrowserRunView):
    @extend_schema(operation_id="browser_run_targets_get", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str, target_id: str) -> Response:
        run, browser = _browser_of(request, account_id, session_id)
        wanted = target_id_of(target_id)
        for target in browser.json("/json/list"):
            if target.get("id") == wanted:
                return Response(target_json(target, websocket_base(request), run, None, request))
        raise NotFound(f"No target {target_id!r} in session {run.id}.")


class TargetNewView(BrowserRunView):
    @extend_schema(operation_id="browser_run_targets_create", request=None, responses=OBJECT)
    def put(self, request: Request, account_id: str, session_id: str) -> Response:
        run, browser = _browser_of(request, account_id, session_id)
        url = request.query_params.get("url") or "about:blank"
        refusal = url_refusal(url)
        if refusal is not None:
            raise ApiError(f"{refusal}.", code="runtime.blocked", status_code=403)
        live_ms = query_ms(request, "live_view_url_expires_in_ms", None, MAX_LIVE_VIEW_MS)
        target = browser.json(f"/json/new?{quote(url, safe=':/?&=%#@+,;')}", method="PUT")
        return Response(target_json(target, websocket_base(request), run, live_ms, request))


def target_action(
    request: Request, account_id: str, session_id: str, action: str, target_id: str
) -> Response:
    """`json/activate/{target}` and `json/close/{target}`: the browser's own answer."""
    _, browser = _browser_of(request, account_id, session_id)
    with browser.open(f"/json/{action}/{target_id_of(target_id)}") as answer:
        return Response({"message": answer.read().decode("utf-8", "replace").strip()})


class TargetActivateView(BrowserRunView):
    @extend_schema(operation_id="browser_run_targets_activate", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str, target_id: str) -> Response:
        return target_action(request, account_id, session_id, "activate", target_id)


class TargetCloseView(BrowserRunView):
    @extend_schema(operation_id="browser_run_targets_close", responses=OBJECT)
    def get(self, request: Request, account_id: str, session_id: str, target_id: str) -> Response:
        return target_action(request, account_id, session_id, "close", target_id)


class LiveViewView(BrowserRunView):
    @extend_schema(
        operation_id="browser_run_live_view", request=OpenApiTypes.OBJECT, responses=OBJECT
    )
    def post(self, request: Request, account_id: str, session_id: str) -> Response:
        run, browser = _browser_of(request, account_id, session_id)
        body = request.data if isinstance(request.data, dict) else {}
        lifetime = body.get("expiresInMs", DEFAULT_LIVE_VIEW_MS)
        if not isinstance(lifetime, int | float) or not 0 < lifetime <= MAX_LIVE_VIEW_MS:
            raise Invalid(f"expiresInMs must be from 1 to {MAX_LIVE_VIEW_MS} milliseconds.")
        mode = body.get("mode", "tab")
        if mode not in ("devtools", "tab", "full"):
            raise Invalid("mode must be devtools, tab or full.")
        guardrails = body.get("guardrails")
        readonly = isinstance(guardrails, dict) and guardrails.get("mode") == "readonly"
        if guardrails is not None and not readonly:
            raise Invalid('guardrails must be {"mode": "readonly"}.')
        pages = [t for t in browser.json("/json/list") if t.get("type") == "page"]
        target_id = body.get("targetId")
        if target_id is not None:
            pages = [t for t in pages if t.get("id") == target_id]
            if not pages:
                raise NotFound(f"No page {target_id!r} in session {run.id}.")
        if not pages:
            raise ApiError(
                "The session has no page to view.", code="session.no_page", status_code=409
            )
        options: dict[str, Any] = {"mode": mode}
        if readonly:
            options["guardrails"] = {"mode": "readonly"}
        return Response(
            {
                "id": pages[0]["id"],
                "devtoolsFrontendUrl": live_view(
                    run, int(lifetime), readonly=readonly, request=request
                ),
                "options": options,
                "webSocketDebuggerUrl": session_url(
                    websocket_base(request), account_id, run.id, pages[0]["id"]
                ),
            }
        )


class PageView(BrowserRunView):
    @extend_schema(exclude=True)  # a websocket (runtimes/cdp_proxy.py)
    def get(self, request: Request, account_id: str, session_id: str, target_id: str) -> Response:
        session_of(account_of(request, account_id), session_id)
        raise websocket_only()


PREFIX = "client/v4/accounts/<str:account_id>/browser-rendering/devtools"
SESSION = f"{PREFIX}/browser/<str:session_id>"

urlpatterns = [
    path(f"{PREFIX}/session", SessionListView.as_view(), name="browser-run-sessions"),
    path(
        f"{PREFIX}/session/<str:session_id>",
        SessionDetailView.as_view(),
        name="browser-run-session",
    ),
    path(f"{PREFIX}/browser", BrowserView.as_view(), name="browser-run-browser"),
    path(SESSION, SessionView.as_view(), name="browser-run-session-browser"),
    path(f"{SESSION}/json/version", VersionView.as_view(), name="browser-run-version"),
    path(f"{SESSION}/json/protocol", ProtocolView.as_view(), name="browser-run-protocol"),
    path(f"{SESSION}/json/list", TargetListView.as_view(), name="browser-run-targets"),
    path(
        f"{SESSION}/json/list/<str:target_id>",
        TargetGetView.as_view(),
        name="browser-run-target",
    ),
    path(f"{SESSION}/json/new", TargetNewView.as_view(), name="browser-run-target-new"),
    path(
        f"{SESSION}/json/activate/<str:target_id>",
        TargetActivateView.as_view(),
        name="browser-run-target-activate",
    ),
    path(
        f"{SESSION}/json/close/<str:target_id>",
        TargetCloseView.as_view(),
        name="browser-run-target-close",
    ),
    path(f"{SESSION}/live_view", LiveViewView.as_view(), name="browser-run-live-view"),
    path(f"{SESSION}/page/<str:target_id>", PageView.as_view(), name="browser-run-page"),
]
