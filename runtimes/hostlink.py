"""The runtime host's links to the web processes, over websockets and the channel layer.

    runtime host ──link──▶ web process A ──channel layer──▶ web process B ──▶ viewer
                 ◀─────────              ◀────────────────               ◀──

Routes (runtimes.routing):

- `ws/host/runtimes/<runtime_id>` (HostLinkConsumer): the runtime host's link, one per
  running browser, with `Authorization: Bearer <host_link_token>` (signed with the
  project's SECRET_KEY, so only a process with the settings can make one; valid for a
  minute at connect). Frames come in as binary messages, `FRAME_HEADER` bytes holding
  the length of a JSON header, the header, then the JPEG; the link publishes them
  unchanged to the run's `live.<run_id>` group (or to one viewer's channel when the
  header has `to`) and answers `relayed`, before which the host sends no other frame.
  Tab lists come in as JSON. Messages for the host (`watch`, `input`, `active`, and
  `recording`, which the host confirms with `done` to the asking channel) reach the link
  through the runtime's `host.<runtime_id>` group, from any process.
- `ws/host/hosts/<host_id>` (HostStartsConsumer): one per host, which the web processes
  wake when a start is placed on it or a stop asked of it.

The viewers' side of the live view is runtimes.liveview.
"""

import asyncio
import contextlib
import logging
import struct
import time
from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core import signing

from runs.cdp import json_object
from runs.live import host_group_of, run_group
from runs.models import Run, Runtime
from runtimes import closecodes
from runtimes.handshake import refuse_handshake

logger = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
HOST_LINK_SALT = "bctrl.host-link"
HOST_LINK_MAX_AGE_S = 60
RELAYED = '{"type":"relayed"}'


def live_group(run_id: str) -> str:
    return f"live.{run_id}"


def host_group(runtime_id: str) -> str:
    return f"host.{runtime_id}"


def host_link_token(runtime_id: str, host_id: str) -> str:
    return signing.dumps({"runtime": runtime_id, "host": host_id}, salt=HOST_LINK_SALT)


def pack_frame(header: dict[str, Any], image: bytes) -> bytes:
    encoded = orjson.dumps(header)
    return FRAME_HEADER.pack(len(encoded)) + encoded + image


def frame_header(frame: bytes) -> dict[str, Any]:
    """The JSON header of a packed frame; ValueError when it is not one."""
    if len(frame) < FRAME_HEADER.size:
        raise ValueError("short frame")
    (length,) = FRAME_HEADER.unpack_from(frame)
    end = FRAME_HEADER.size + length
    if length > 4096 or end > len(frame):
        raise ValueError("bad frame header length")
    header = orjson.loads(frame[FRAME_HEADER.size : end])
    if not isinstance(header, dict):
        raise ValueError("frame header is not an object")
    return header


# The channel layer -------------------------------------------------------------------
#
# A Redis restart must not freeze open views. Each open view (and host link) calls the
# layer at least every tick: it re-joins its groups (the core layer keeps memberships in
# Redis, which a restart without persistence empties; for pub/sub it is a no-op) and
# sends itself a probe. A call that fails twice, or a probe not back within
# LAYER_PROBE_TIMEOUT_S, closes the socket with 4503: the live page shows that it is
# reconnecting and reconnects (a handshake while the layer is down is refused with 503),
# and the host's link reconnects, each on a fresh subscription.

LAYER_PROBE_TIMEOUT_S = 5.0


async def layer_call(layer: Any, method: str, *args: Any) -> bool:
    """`layer.<method>(*args)` (send, group_send, group_add), once more if it fails
    (after a Redis restart, pooled connections fail their next command although Redis is
    back); False, logged, when the second try fails too."""
    for attempt in (1, 2):
        try:
            await getattr(layer, method)(*args)
            return True
        except Exception as exc:  # any layer's failure, redis' errors among them
            if attempt == 2:
                logger.warning("The channel layer failed %s: %r", method, exc)
    return False


class LayerWatchingConsumer(AsyncWebsocketConsumer):
    """A consumer that notices when its channel layer stops carrying its messages."""

    probe_sent_at: float | None = None

    async def join(self, *groups: str) -> bool:
        """Joins (again) `groups`; False when the layer is unavailable."""
        assert self.channel_layer is not None
        for group in groups:
            if not await layer_call(self.channel_layer, "group_add", group, self.channel_name):
                return False
            if group not in self.groups:
                self.groups.append(group)
        return True

    async def layer_alive(self) -> bool:
        """Re-joins this consumer's groups and probes its own channel: False when a call
        failed or the last probe has not come back within LAYER_PROBE_TIMEOUT_S."""
        assert self.channel_layer is not None
        if not await self.join(*self.groups):
            return False
        now = time.monotonic()
        if self.probe_sent_at is not None:
            return now - self.probe_sent_at < LAYER_PROBE_TIMEOUT_S
        self.probe_sent_at = now
        probe = {"type": "layer.probe"}
        return await layer_call(self.channel_layer, "send", self.channel_name, probe)

    async def layer_probe(self, message: dict[str, Any]) -> None:
        self.probe_sent_at = None

    async def layer_lost(self) -> None:
        logger.warning("%s lost its channel layer; closing", type(self).__name__)
        await self.close(code=closecodes.LAYER_UNAVAILABLE)


class HostLinkKeepalive(LayerWatchingConsumer):
    """A runtime host's link (one of its runtimes', or its own): checks the layer every
    BCTRL_LIVE_RECHECK_S while open and closes when it is lost, for the host to link
    again on a fresh subscription."""

    keepalive: asyncio.Task[None] | None = None

    def keep_alive(self) -> None:
        self.keepalive = asyncio.create_task(self._keepalive_loop())

    async def _keepalive_loop(self) -> None:
        while await self.layer_alive():
            await asyncio.sleep(settings.BCTRL_LIVE_RECHECK_S)
        await self.layer_lost()

    async def disconnect(self, code: int) -> None:
        if self.keepalive is not None and self.keepalive is not asyncio.current_task():
            self.keepalive.cancel()


class Refused(Exception):
    """A refusal: `code` is 4000 + the HTTP status, `error` the error code of the JSON
    body the handshake is answered with (runtimes.handshake)."""

    ERRORS = {
        4401: "unauthenticated",
        4403: "forbidden",
        4404: "not_found",
        4409: "runtime.not_running",
        4410: "lease.expired",
        4503: "live.unavailable",
    }

    def __init__(self, code: int, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.error = error or self.ERRORS[code]


# The host's link ----------------------------------------------------------------------


def _link_runtime(runtime_id: str, authorization: str) -> tuple[str, str]:
    """(runtime id, run id) that a host link may serve, or Refused."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(4401, "A host link needs its bearer token.")
    try:
        claim = signing.loads(token.strip(), salt=HOST_LINK_SALT, max_age=HOST_LINK_MAX_AGE_S)
    except signing.BadSignature as exc:
        raise Refused(4403, "Invalid or expired host link token.") from exc
    if not isinstance(claim, dict) or claim.get("runtime") != runtime_id:
        raise Refused(4403, "The host link token is for another runtime.")
    runtime = Runtime.objects.filter(pk=runtime_id, host_id=claim.get("host")).first()
    if runtime is None or runtime.status not in (Runtime.Status.STARTING, Runtime.Status.RUNNING):
        raise Refused(4409, "The runtime is not running on this host.")
    run = runtime.runs.filter(status=Run.Status.RUNNING).order_by("-started_at").first()
    if run is None:
        raise Refused(4409, "The runtime has no active run.")
    return runtime.id, run.id


class HostLinkConsumer(HostLinkKeepalive):
    """The web end of a runtime host's link: frames, tabs and file choosers out to the
    run's viewers, viewers' watch, input, chosen files and the automation's active tab in
    to the host."""

    run_id = ""

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        runtime_id = self.scope["url_route"]["kwargs"]["runtime_id"]
        try:
            self.runtime_id, self.run_id = await database_sync_to_async(_link_runtime)(
                runtime_id, authorization
            )
        except Refused as refused:
            logger.warning("Host link for %s refused: %s", runtime_id, refused.reason)
            await refuse_handshake(self, refused.code, refused.error, refused.reason)
            return
        if not await self.join(host_group(self.runtime_id)):
            unavailable = Refused(4503, "The live view is unavailable for a moment.")
            await refuse_handshake(self, unavailable.code, unavailable.error, unavailable.reason)
            return
        await self.accept()
        await self.send(text_data=orjson.dumps({"type": "linked", "runId": self.run_id}).decode())
        self.keep_alive()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        if bytes_data is not None:
            try:
                header = frame_header(bytes_data)
            except ValueError:
                logger.warning("Host link of %s sent a malformed frame", self.runtime_id)
                return
            message = {
                "type": "live.frame",
                "target": str(header.get("target", "")),
                "w": header.get("w"),
                "h": header.get("h"),
                "frame": bytes_data,
            }
            if await self._publish(header.get("to"), message):
                await self.send(text_data=RELAYED)  # the host may send its next frame
            return
        data = json_object(text_data or "")
        if data is None:
            return
        if data.get("type") == "tabs":
            message = {
                "type": "live.tabs",
                "tabs": data.get("tabs") or [],
                "active": data.get("active"),
            }
            await self._publish(data.get("to"), message)
        elif data.get("type") == "fileChooser" and isinstance(data.get("target"), str):
            message = {
                "type": "live.chooser",
                "target": data["target"],
                "open": bool(data.get("open")),
                "multiple": bool(data.get("multiple")),
            }
            await self._publish(data.get("to"), message)
        elif data.get("type") == "done" and isinstance(data.get("to"), str) and data["to"]:
            # The host carried out what a web process asked (a client's recording switch).
            await self._publish(data["to"], {"type": "host.done"})

    async def _publish(self, to: Any, message: dict[str, Any]) -> bool:
        """Sends `message` to one viewer's channel or to every viewer of the run; False
        (and the link closes, for the host to link again) when the layer is unavailable."""
        assert self.channel_layer is not None
        if isinstance(to, str) and to:
            # A viewer that has gone meanwhile is no failure of the layer.
            with contextlib.suppress(Exception):
                await self.channel_layer.send(to, message)
            return True
        if await layer_call(self.channel_layer, "group_send", live_group(self.run_id), message):
            return True
        await self.layer_lost()
        return False

    async def host_message(self, message: dict[str, Any]) -> None:
        """Something for the host (watch, input, active), from any web process."""
        await self.send(text_data=orjson.dumps(message["body"]).decode())


def host_starts_token(host_id: str) -> str:
    return signing.dumps({"starts": host_id}, salt=HOST_LINK_SALT)


def host_starts_path(host_id: str) -> str:
    return f"/ws/host/hosts/{host_id}"


class HostStartsConsumer(HostLinkKeepalive):
    """A runtime host's own link (one per host, beside its runtimes' links): a start
    placed on it or a stop asked of it is pushed (`{"type": "wake"}`), so it acts at once
    rather than at its next poll of the database; and it says when a runtime of its is running
    (`{"type": "running", "runId"}`), which wakes the start request waiting for it on
    this web process. Both are hints: the host still polls, the request still reads the
    database."""

    host_id = ""

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        host_id = self.scope["url_route"]["kwargs"]["host_id"]
        try:
            claim = signing.loads(token.strip(), salt=HOST_LINK_SALT, max_age=HOST_LINK_MAX_AGE_S)
        except signing.BadSignature:
            claim = None
        if (
            scheme.lower() != "bearer"
            or not isinstance(claim, dict)
            or claim.get("starts") != host_id
        ):
            refused = Refused(4403, "Invalid or expired host link token.")
            logger.warning("Host starts link for %s refused", host_id)
            await refuse_handshake(self, refused.code, refused.error, refused.reason)
            return
        self.host_id = host_id
        if not await self.join(host_group_of(host_id)):
            unavailable = Refused(4503, "The channel layer is unavailable for a moment.")
            await refuse_handshake(self, unavailable.code, unavailable.error, unavailable.reason)
            return
        await self.accept()
        self.keep_alive()

    async def host_wake(self, message: dict[str, Any]) -> None:
        await self.send(text_data=WAKE)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = json_object(text_data or "")
        run_id = data.get("runId") if data is not None else None
        if data is None or data.get("type") != "running" or not isinstance(run_id, str):
            return
        assert self.channel_layer is not None
        notice = {"type": "run.changed", "kind": "status"}
        await layer_call(self.channel_layer, "group_send", run_group(run_id[:100]), notice)


WAKE = orjson.dumps({"type": "wake"}).decode()


async def send_to_host(layer: Any, runtime_id: str, body: dict[str, Any]) -> bool:
    """Sends `body` to the runtime's host link, on whichever web process it is; False
    when the channel layer is unavailable (a notice to the host is lost, nothing else)."""
    message = {"type": "host.message", "body": body}
    return await layer_call(layer, "group_send", host_group(runtime_id), message)
