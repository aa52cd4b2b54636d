"""The CDP proxy behind a runtime's `connectUrl`.

Routes (runtimes.routing.cdp_urlpatterns, outside the browser Origin check, since a
Playwright or Puppeteer client sends no Origin header):

- `/cdp/<token>`: the token of POST /v1/runtimes/{id}/start (a `cdp` viewer lease,
  revoked when the run ends), checked by viewers.leases.lease_check.
- `/v1/runtimes/<runtime_id>/cdp` with `Authorization: Bearer <api key>`: the key's
  space must own the runtime.

Query options (seed 003): `recording=true|false|1|0` sets Runtime.recording_enabled,
`keep_alive=<ms>` sets Runtime.keep_alive_ms; the runtime host reads both.

Every refusal happens before the handshake is accepted, so no CDP message reaches the
browser. Each one stands for an HTTP status (`REFUSALS`): 422 bad connect options, 401
a missing, invalid or revoked API key, 403 an invalid or revoked connect token (the end
of its run revokes it), 404 a runtime that is not in the key's space (or does not
exist), 409 a runtime that is not running or a token of an earlier run, 410 an expired
token, 502 a browser that cannot be reached. Where the server offers ASGI's websocket denial
response extension (`websocket.http.response`, as bctrl's daphne does, see
bctrl_site/webserver.py) the handshake is answered with that status and the API's error
body, `{"error": {"code", "message"}}`; elsewhere (Channels' WebsocketCommunicator, a
plain daphne, which answers 403 to any refusal) the consumer closes with 4000 + the
status. An open connection that must end closes with the same codes (4410 also when
its run has ended).

An accepted client gets its own upstream websocket to the browser's DevTools endpoint
(Chromium takes several clients); messages are forwarded as they came, both ways, and
peeked at by runs.cdp.CommandRecorder, whose commands are written in batches off the
event loop. The credential is checked again every few seconds and on a `lease.revoked`
notice of the run, so ending the run closes its clients.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse, urlsplit

import orjson
import websockets
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from runs import selectors
from runs.api.auth import api_key_from_meta
from runs.cdp import CommandRecorder, json_object
from runs.confinement import DOWNLOAD_METHODS, command_refusal, download_behaviour
from runs.control import AUTOMATION_INPUT_METHODS, BUSY_CODE, control_holder
from runs.errors import ApiError, Conflict
from runs.ids import new_id
from runs.live import run_group
from runs.models import ApiKey, Run, Runtime
from runs.services import commands_record, event_emit
from runtimes import services as runtime_services
from runtimes.browser_run import (
    DEFAULT_KEEP_ALIVE_MS,
    SESSION_RUNTIME_NAME,
    TARGET_ID,
    cloudflare_error,
    session_of,
)
from runtimes.handshake import refuse_handshake
from runtimes.hostlink import layer_call, send_to_host
from runtimes.launch import launch
from viewers.leases import LeaseRefused, lease_check
from viewers.models import ViewerLease

logger = logging.getLogger(__name__)

BLOCKED_CODE = "runtime.blocked"
FLUSH_INTERVAL_S = 0.5
FLUSH_BATCH = 200
MAX_KEEP_ALIVE_MS = 24 * 60 * 60 * 1000
RECORDING_SWITCH_TIMEOUT_S = 3.0

# Close codes of a refused or ended connection (4000 + the HTTP status it stands for),
# with the error code of the HTTP answer to a refused handshake.
REFUSALS = {
    4422: "invalid_parameter",  # bad connect options (a query parameter: README's rule)
    4401: "unauthenticated",  # missing, invalid or revoked API key
    4403: "forbidden",  # invalid or revoked connect token
    4404: "not_found",  # no such runtime in the key's space
    4409: "runtime.not_running",  # not running, or the token belongs to an earlier run
    4410: "connect.expired",  # expired connect token, or the run has ended
    4502: "runtime.unreachable",  # the browser cannot be reached
}


class ProxyRefused(Exception):
    def __init__(self, code: int, reason: str, error: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.error = error or REFUSALS.get(code, "refused")


@dataclass(frozen=True)
class ConnectOptions:
    recording: bool | None = None
    keep_alive_ms: int | None = None


def connect_options(query_string: bytes) -> ConnectOptions:
    """`recording` and `keep_alive` of the connect URL's query; anything else is ignored."""
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    recording: bool | None = None
    keep_alive_ms: int | None = None
    if "recording" in query:
        value = query["recording"].strip().lower()
        if value not in ("true", "1", "false", "0"):
            raise ProxyRefused(4422, "recording must be true or false.")
        recording = value in ("true", "1")
    if "keep_alive" in query:
        value = query["keep_alive"].strip()
        if not value.isdigit() or len(value) > 10 or int(value) > MAX_KEEP_ALIVE_MS:
            raise ProxyRefused(
                4422, f"keep_alive must be milliseconds from 0 to {MAX_KEEP_ALIVE_MS}."
            )
        keep_alive_ms = int(value)
    return ConnectOptions(recording=recording, keep_alive_ms=keep_alive_ms)


@dataclass(frozen=True)
class ProxyGrant:
    """What a client may reach: one runtime's browser (or one page of it), for one run."""

    runtime_id: str
    run: Run
    cdp_endpoint: str
    files_dir: str = ""
    token: str | None = None
    api_key_id: str | None = None
    client: str = "api_key"  # how it connected: connect_token, api_key, browser_run
    target_id: str = ""

    @property
    def upstream_url(self) -> str:
        if not self.target_id:
            return self.cdp_endpoint
        return f"ws://{urlsplit(self.cdp_endpoint).netloc}/devtools/page/{self.target_id}"


_LEASE_CLOSE = {
    "expired": (4410, "The connect URL has expired."),
    "revoked": (4403, "The connect URL was revoked: its run has ended."),
}


def grant_for_token(token: str) -> ProxyGrant:

    try:
        lease = lease_check(token, kind=ViewerLease.Kind.CDP)
    except LeaseRefused as refused:
        raise ProxyRefused(
            *_LEASE_CLOSE.get(refused.reason, (4403, "The connect URL is not valid."))
        ) from refused
    if lease.run.runtime_id is None:
        raise ProxyRefused(4409, "The run of this connect URL has no runtime.")
    return _grant(lease.run.runtime_id, lease.run, token=token, client="connect_token")


def _api_key(authorization: str) -> ApiKey:
    api_key = api_key_from_meta({"HTTP_AUTHORIZATION": authorization})
    if api_key is None:
        raise ProxyRefused(4401, "Send an API key as `Authorization: Bearer bctrl_sk_…`.")
    return api_key


def grant_for_api_key(authorization: str, runtime_id: str) -> ProxyGrant:
    api_key = _api_key(authorization)
    try:
        runtime = selectors.runtime_of(api_key.space, runtime_id)
    except selectors.ObjectNotFound as exc:
        raise ProxyRefused(4404, f"No runtime {runtime_id!r}.") from exc
    run = selectors.active_run_of(runtime)
    if run is None:
        raise ProxyRefused(4409, f"Runtime {runtime.id} is {runtime.status}, not running.")
    return _grant(runtime.id, run, api_key_id=api_key.id)


def browser_run_account(authorization: str, account_id: str) -> ApiKey:
    """The API key of a Browser Run route, whose space must be the route's account."""
    api_key = _api_key(authorization)
    if api_key.space_id != account_id:
        raise ProxyRefused(4404, f"No account {account_id!r}.")
    return api_key


def grant_for_session(api_key: ApiKey, session_id: str, target_id: str = "") -> ProxyGrant:
    try:
        run = session_of(api_key.space, session_id)
    except selectors.ObjectNotFound as exc:
        raise ProxyRefused(4404, f"No session {session_id!r}.") from exc
    if target_id and not TARGET_ID.fullmatch(target_id):
        raise ProxyRefused(4404, f"No target {target_id!r}.")
    if run.status != Run.Status.RUNNING:
        raise ProxyRefused(4410, f"Session {run.id} has closed.", "session.closed")
    assert run.runtime_id is not None
    return _grant(
        run.runtime_id, run, api_key_id=api_key.id, client="browser_run", target_id=target_id
    )


def _grant(
    runtime_id: str,
    run: Run,
    *,
    token: str | None = None,
    api_key_id: str | None = None,
    client: str = "api_key",
    target_id: str = "",
) -> ProxyGrant:
    runtime = Runtime.objects.get(pk=runtime_id)
    if runtime.status != Runtime.Status.RUNNING or not runtime.cdp_endpoint:
        raise ProxyRefused(4409, f"Runtime {runtime.id} is {runtime.status}, not running.")
    active = selectors.active_run_of(runtime)
    if active is None or active.pk != run.pk:
        raise ProxyRefused(4409, "This connect URL belongs to an earlier run of the runtime.")
    return ProxyGrant(
        runtime_id=runtime.id,
        run=run,
        cdp_endpoint=runtime.cdp_endpoint,
        files_dir=runtime.files_dir,
        token=token,
        api_key_id=api_key_id,
        client=client,
        target_id=target_id,
    )


def grant_recheck(grant: ProxyGrant) -> ProxyRefused | bool:
    """Why an open connection must end now (revoked, expired, run over), else whether a
    person controls the browser (runs.control)."""

    if grant.token is not None:
        try:
            lease_check(grant.token, kind=ViewerLease.Kind.CDP, record_use=False)
        except LeaseRefused as refused:
            return ProxyRefused(
                *_LEASE_CLOSE.get(refused.reason, (4403, "The connect URL is not valid."))
            )
    elif not ApiKey.objects.filter(pk=grant.api_key_id, revoked_at__isnull=True).exists():
        return ProxyRefused(4401, "The API key was revoked.")
    if not Run.objects.filter(pk=grant.run.pk, status=Run.Status.RUNNING).exists():
        return ProxyRefused(4410, "The run has ended.")
    return control_holder(grant.runtime_id) is not None


def client_joined(grant: ProxyGrant, options: ConnectOptions) -> None:
    changes: dict[str, Any] = {
        "client_count": F("client_count") + 1,
        "last_client_at": timezone.now(),
    }
    if options.recording is not None:
        changes["recording_enabled"] = options.recording
    if options.keep_alive_ms is not None:
        changes["keep_alive_ms"] = options.keep_alive_ms
    Runtime.objects.filter(pk=grant.runtime_id).update(**changes)


def client_left(grant: ProxyGrant) -> None:
    # Only while the run is still the runtime's: runtime_finished resets the count, and a
    # later start must not be counted down by a client of an earlier run.
    if not Run.objects.filter(pk=grant.run.pk, status=Run.Status.RUNNING).exists():
        return
    now = timezone.now()
    left = Runtime.objects.filter(pk=grant.runtime_id, client_count__gt=0).update(
        client_count=F("client_count") - 1, last_client_at=now
    )
    if not left:
        Runtime.objects.filter(pk=grant.runtime_id).update(last_client_at=now)


def commands_store(run: Run, commands: list[dict[str, Any]]) -> bool:
    """Writes a batch; False once the run has ended (nothing more will be recorded)."""
    try:
        commands_record(run=run, commands=commands)
    except Conflict:
        return False
    return True


class CdpProxyConsumer(AsyncWebsocketConsumer):
    grant: ProxyGrant | None = None
    upstream: Any = None

    async def connect(self) -> None:
        self.recorder = CommandRecorder()
        self.recording = True
        self.tasks: list[asyncio.Task[None]] = []
        self.flush_wanted = asyncio.Event()
        self.recheck_wanted = asyncio.Event()
        self.flush_lock = asyncio.Lock()
        self.counted = False
        self.controlled = False
        self.active_target = ""
        self.connection_id = ""
        self.connected_at = 0.0
        try:
            options = connect_options(self.scope.get("query_string", b""))
            self.grant, options = await self._authorize(options)
        except ProxyRefused as refused:
            logger.info("CDP connection refused (%s): %s", refused.code, refused.reason)
            await self.refuse(refused)
            return
        try:
            self.upstream = await websockets.connect(
                self.grant.upstream_url,
                max_size=None,
                compression=None,
                ping_interval=None,
                open_timeout=10,
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            logger.warning("CDP upstream of runtime %s failed: %s", self.grant.runtime_id, exc)
            await self.refuse(ProxyRefused(4502, "The browser cannot be reached."))
            return
        await database_sync_to_async(client_joined)(self.grant, options)
        if options.recording is not None:
            await self._apply_recording(options.recording)
        holder = await database_sync_to_async(control_holder)(self.grant.runtime_id)
        self.controlled = holder is not None
        self.counted = True
        if self.channel_layer is not None:
            # Without the layer (Redis down) the client still works: its credential is
            # re-checked every few seconds, only the instant notices are missed.
            group = run_group(self.grant.run.pk)
            if await layer_call(self.channel_layer, "group_add", group, self.channel_name):
                self.groups.append(group)
        await self.accept()
        await self._connection_event("connection.opened")
        for job in (self._pump_upstream(), self._flush_loop(), self._recheck_loop()):
            self.tasks.append(asyncio.create_task(job))

    async def _connection_event(self, type: str, **extra: Any) -> None:
        """`connection.opened` / `.closed` of this client, in the run's events (seed 002)."""
        assert self.grant is not None
        now = time.monotonic()
        if type == "connection.opened":
            self.connection_id, self.connected_at = new_id("conn"), now
        client = self.scope.get("client") or [None]
        data = {"connectionId": self.connection_id, "client": self.grant.client, **extra}
        if client[0]:
            data["remoteAddress"] = client[0]
        if type == "connection.closed":
            data["durationMs"] = int((now - self.connected_at) * 1000)
        with contextlib.suppress(Conflict):  # the run has ended: nothing more is recorded
            await database_sync_to_async(event_emit)(run=self.grant.run, type=type, data=data)

    async def _apply_recording(self, enabled: bool) -> None:
        """`recording=` of the connect URL takes effect before the client is let in: the
        runtime host switches its recorders and says so (or, without a live link, within
        RECORDING_SWITCH_TIMEOUT_S it reads the switch from the database itself)."""
        layer = self.channel_layer
        if layer is None or self.grant is None:
            return
        try:
            reply = await layer.new_channel()
        except Exception as exc:  # the layer is down: the host reads the switch itself
            logger.warning("No channel layer to switch recording (%r)", exc)
            return
        body = {"type": "recording", "enabled": enabled, "reply": reply}
        if not await send_to_host(layer, self.grant.runtime_id, body):
            return
        try:
            await asyncio.wait_for(layer.receive(reply), RECORDING_SWITCH_TIMEOUT_S)
        except TimeoutError:
            logger.warning(
                "Runtime %s did not confirm recording=%s in time", self.grant.runtime_id, enabled
            )

    async def refuse(self, refused: ProxyRefused) -> None:
        body = None
        if "account_id" in self.scope["url_route"]["kwargs"]:
            body = cloudflare_error(refused.code - 4000, refused.reason, refused.error)
        await refuse_handshake(self, refused.code, refused.error, refused.reason, body)

    async def _authorize(self, options: ConnectOptions) -> tuple[ProxyGrant, ConnectOptions]:
        """The grant of this connection, and the connect options still to apply."""
        kwargs = self.scope["url_route"]["kwargs"]
        run_sync = database_sync_to_async
        if "token" in kwargs:
            return await run_sync(grant_for_token)(kwargs["token"]), options
        headers = dict(self.scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if "account_id" not in kwargs:
            grant = await run_sync(grant_for_api_key)(authorization, kwargs["runtime_id"])
            return grant, options
        api_key = await run_sync(browser_run_account)(authorization, kwargs["account_id"])
        if "session_id" in kwargs:
            grant = await run_sync(grant_for_session)(
                api_key, kwargs["session_id"], kwargs.get("target_id", "")
            )
            return grant, options
        # Acquire and connect in one step (seed 003): recording only when asked for.
        runtime = await run_sync(runtime_services.runtime_create)(
            space=api_key.space, name=SESSION_RUNTIME_NAME, config={"browserRun": True}
        )
        keep_alive = options.keep_alive_ms
        try:
            started = await launch(
                runtime,
                recording=bool(options.recording),
                keep_alive_ms=DEFAULT_KEEP_ALIVE_MS if keep_alive is None else keep_alive,
                api_key=api_key,
            )
        except ApiError as exc:
            raise ProxyRefused(4000 + exc.status_code, str(exc.detail), exc.code) from exc
        grant = await run_sync(grant_for_session)(api_key, started.run.id)
        return grant, ConnectOptions()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = text_data if text_data is not None else bytes_data
        if message is None or self.upstream is None:
            return
        if self.recording:
            self.recorder.from_client(message)
            if self.recorder.last_target and self.recorder.last_target != self.active_target:
                await self._tell_active(self.recorder.last_target)
        parsed = json_object(message)
        if parsed is not None:
            if await self._answered_here(parsed):
                return
            if parsed.get("method") in DOWNLOAD_METHODS and self.grant is not None:
                params = parsed.get("params")
                parsed["params"] = download_behaviour(
                    params if isinstance(params, dict) else {}, files_dir=self.grant.files_dir
                )
                message = orjson.dumps(parsed).decode()
        try:
            await self.upstream.send(message)
        except websockets.exceptions.ConnectionClosed:
            await self.close(code=1011)

    async def _tell_active(self, target_id: str) -> None:
        """The tab the automation works in is the one live viewers follow."""
        self.active_target = target_id
        if self.channel_layer is not None and self.grant is not None:
            body = {"type": "active", "target": target_id}
            await send_to_host(self.channel_layer, self.grant.runtime_id, body)

    async def _answered_here(self, command: dict[str, Any]) -> bool:
        """Commands the proxy answers itself instead of passing them to the browser:
        - what runs.confinement refuses (a file: navigation, a context with its own proxy,
          a file outside the runtime's uploads), answered with a CDP error and recorded
          as a `network.blocked` event;
        - a download behaviour where the runtime has no folder of its own (acknowledged,
          not applied: runs.confinement.download_behaviour keeps downloads there);
        - while a person controls the browser, the automation's input, answered with
          runtime.controller_busy (everything else goes through)."""
        method = command.get("method")
        if not isinstance(method, str) or self.grant is None:
            return False
        params = command.get("params")
        params = params if isinstance(params, dict) else {}
        refusal = command_refusal(method, params, files_dir=self.grant.files_dir)
        if refusal is not None:
            await self._answer(command, error=f"{BLOCKED_CODE}: {refusal}.")
            url = params.get("url") if isinstance(params.get("url"), str) else ""
            data = {"url": url, "reason": refusal, "method": method}
            await database_sync_to_async(event_emit)(
                run=self.grant.run, type="network.blocked", data=data
            )
            return True
        if method in DOWNLOAD_METHODS and not self.grant.files_dir:
            await self._answer(command, result={})
            return True
        if self.controlled and method in AUTOMATION_INPUT_METHODS:
            await self._answer(
                command,
                error=f"{BUSY_CODE}: a person is controlling this browser through the "
                "live view; input is accepted again once they hand back control.",
            )
            return True
        return False

    async def _answer(
        self, command: dict[str, Any], *, result: Any = None, error: str | None = None
    ) -> None:
        answer: dict[str, Any] = {"id": command.get("id")}
        if error is not None:
            answer["error"] = {"code": -32000, "message": error}
        else:
            answer["result"] = result
        if isinstance(command.get("sessionId"), str):
            answer["sessionId"] = command["sessionId"]
        text = orjson.dumps(answer).decode()
        if self.recording:
            self.recorder.from_browser(text)
        await self.send(text_data=text)

    async def _pump_upstream(self) -> None:
        code = 1000
        try:
            async for message in self.upstream:
                if self.recording:
                    self.recorder.from_browser(message)
                    if len(self.recorder.ready) >= FLUSH_BATCH:
                        self.flush_wanted.set()
                if isinstance(message, str):
                    await self.send(text_data=message)
                else:
                    await self.send(bytes_data=message)
        except websockets.exceptions.ConnectionClosedError:
            code = 1011
        await self.close(code=code)

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush_wanted.wait(), FLUSH_INTERVAL_S)
            self.flush_wanted.clear()
            await self._flush()

    async def _flush(self, *, final: bool = False) -> None:
        async with self.flush_lock:
            batch = self.recorder.take(final=final)
            if batch and self.recording and self.grant is not None:
                self.recording = await database_sync_to_async(commands_store)(self.grant.run, batch)

    async def _recheck_loop(self) -> None:
        interval = float(settings.BCTRL_CDP_RECHECK_SECONDS)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recheck_wanted.wait(), interval)
            self.recheck_wanted.clear()
            assert self.grant is not None
            state = await database_sync_to_async(grant_recheck)(self.grant)
            if isinstance(state, ProxyRefused):
                logger.info("CDP connection closed (%s): %s", state.code, state.reason)
                await self.close(code=state.code, reason=state.reason)
                return
            self.controlled = state

    async def run_changed(self, message: dict[str, Any]) -> None:
        """A notice of runs.live: a revoked lease or a run that ended is checked at once."""
        if message.get("kind") in ("lease.revoked", "status"):
            self.recheck_wanted.set()
        elif message.get("kind") == "control":
            self.controlled = message.get("holder") is not None

    async def disconnect(self, code: int) -> None:
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        for task in getattr(self, "tasks", []):
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self.upstream.close()
        if self.grant is not None and self.counted:
            self.counted = False
            try:
                await self._flush(final=True)
                await self._connection_event("connection.closed", code=code)
            finally:
                await database_sync_to_async(client_left)(self.grant)


class _MissingOrAllowedOriginValidator(OriginValidator):
    """Lets in a client that sends no Origin (Playwright, Puppeteer, CDP libraries) and
    still refuses a web page of another site (a browser always sends its Origin), with a
    403 and the JSON error instead of Channels' bare 403."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or bool(super().valid_origin(parsed_origin))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
        parsed = urlparse(origins[-1].decode("latin1")) if origins else None
        if self.valid_origin(parsed):
            return await self.application(scope, receive, send)
        return await _OriginRefused.as_asgi()(scope, receive, send)


class _OriginRefused(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await refuse_handshake(
            self,
            4403,
            REFUSALS[4403],
            "This websocket does not take connections from web pages of other sites "
            "(the Origin header is not one of ALLOWED_HOSTS).",
        )


def CdpOriginValidator(application: Any) -> _MissingOrAllowedOriginValidator:
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return _MissingOrAllowedOriginValidator(application, allowed_hosts)
