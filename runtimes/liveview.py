"""Live view and takeover over websockets: screencast frames from the runtime host to
viewers, and a human controller's input back to the browser.

    runtime host ──link──▶ web process A ──channel layer──▶ web process B ──▶ viewer
                 ◀─────────              ◀────────────────               ◀──

Routes (runtimes.routing; the host's side of the link is runtimes.hostlink):

- `ws/live/<token>` (LiveViewConsumer, for the live embed): a `live` viewer lease.
- `ws/runs/<run_id>/live` (LiveViewConsumer, for the dashboard): the session of a
  member of the run's space, who may take control.

A viewer connection is refused before the handshake when the lease or session does not
open the run's live view, and when the browser's `Origin` is neither one of
ALLOWED_HOSTS nor one that the space's embed origins let in (bctrl_site.origins: `["*"]`
lets any page open a view-only or control socket with a valid lease; the dashboard's
route takes ALLOWED_HOSTS only): with an HTTP status and a JSON error
(`lease.invalid|expired|revoked|wrong_kind`, `forbidden`, `unauthenticated`,
`not_found`) where the server allows (runtimes.handshake), else with close code 4000 + that
status. An open view closes within BCTRL_LIVE_RECHECK_S of its lease expiring and at
once on revocation, after a `closed` message.

Viewer protocol. From the server, binary frames as above and JSON messages: `hello`
(what the viewer may do, and `maxMessageBytes` and `maxText`, the limits below), `tabs`
(`tabs`: [{id, url, title}], `active`: the tab the automation last used, `watching`),
`control` (`holder`: name or null, `you`: whether this viewer holds it), `fileChooser`
(`tabId`, `open`, `multiple`, and for a viewer that may take control `upload`: where
and with which ticket to send files for it, runtimes.live_files), `error`
(`code`, `message`), `ended` (`replayUrl`, and the run's `status`: completed or failed)
and `closed` (`reason`, `message`). From the
viewer, JSON only, at most BCTRL_LIVE_MESSAGE_MAX_BYTES: `ack` after painting a frame
(the server sends the next frame only then, keeping just the newest meanwhile, so a slow
viewer gets fewer frames and slows nobody), `tab` (`target`: a tab id to pin, or null to
follow the automation), `control` (`action`: `request` or `release`), and the input
messages of runs.control (only from the holder of control through a lease with `control:
"input"`; anything else is refused, logged and answered with an `error`, never sent to
the browser). A larger message closes the socket with 4413 (bctrl's daphne refuses it
while it streams in, before buffering it: bctrl_site.webserver), one that is not a JSON
object with a `type` with 4400 (runtimes.closecodes); either hands control back at once
(`control.released`, reason `refused`). The live page splits a long paste into `text`
messages under both limits.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import orjson
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import reverse

from bctrl_site.origins import origin_allowed
from runs import control, selectors, services
from runs.cdp import json_object
from runs.errors import Conflict
from runs.live import run_group
from runs.models import Handoff, Membership, Run
from runs.selectors import ObjectNotFound, run_of_user
from runs.timestamps import iso
from runtimes import closecodes
from runtimes.handshake import refuse_handshake
from runtimes.hostlink import (
    LayerWatchingConsumer,
    Refused,
    live_group,
    send_to_host,
)
from runtimes.live_files import chooser_ticket
from viewers.leases import LeaseRefused, lease_check
from viewers.models import ViewerLease

logger = logging.getLogger(__name__)

ACK_TIMEOUT_S = 3.0  # a viewer that never acks still gets a frame this often
TOUCH_EVERY_S = 5.0  # how often a controller's activity is written down


# Viewers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """What one live view connection may see and do."""

    run_id: str
    runtime_id: str
    may_control: bool
    name: str  # shown to other viewers while this one holds control
    viewer: str  # `lease:<id>` or `user:<id>`, for the audit events
    replay_url: str
    token: str | None = None
    user_id: int | None = None
    space_id: str = ""


def _origin_allowed(origin: str, embed_origins: list[str]) -> bool:
    if not origin:
        return False
    if origin_allowed(origin, embed_origins):
        return True
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    return bool(OriginValidator(None, allowed_hosts).valid_origin(urlparse(origin)))


def viewer_for_lease(token: str, origin: str) -> Viewer:

    try:
        lease = lease_check(token, kind=ViewerLease.Kind.LIVE)
    except LeaseRefused as refused:
        raise _lease_refused(refused) from refused
    if not _origin_allowed(origin, lease.space.allowed_embed_origins):
        raise Refused(4403, "This page may not open the live view.")
    if lease.run.runtime_id is None:
        raise Refused(4409, "This run has no browser to watch.")
    return Viewer(
        run_id=lease.run_id,
        runtime_id=lease.run.runtime_id,
        may_control=lease.control == ViewerLease.Control.INPUT,
        name=f"Viewer {lease.id[-6:]}",
        viewer=f"lease:{lease.id}",
        replay_url=reverse("embed:live-replay", args=[token]),
        token=token,
        space_id=lease.space_id,
    )


def viewer_for_user(user: Any, run_id: str, origin: str) -> Viewer:
    if user is None or not user.is_authenticated:
        raise Refused(4401, "Sign in to watch this run.")
    if not _origin_allowed(origin, []):
        raise Refused(4403, "This page may not open the live view.")
    try:
        run = run_of_user(user, run_id)
    except ObjectNotFound as exc:
        raise Refused(4404, f"No run {run_id!r} in your spaces.") from exc
    if run.runtime_id is None:
        raise Refused(4409, "This run has no browser to watch.")
    return Viewer(
        run_id=run.id,
        runtime_id=run.runtime_id,
        may_control=True,
        name=user.get_username(),
        viewer=f"user:{user.pk}",
        replay_url=reverse("replay:page", args=[run.id]),
        user_id=user.pk,
        space_id=run.space_id,
    )


def _lease_refused(refused: Any) -> Refused:
    """A viewer lease's refusal (viewers.leases.LeaseRefused) as this socket's."""
    return Refused(4000 + refused.status, refused.message, f"lease.{refused.reason}")


def viewer_recheck(viewer: Viewer) -> Refused | bool:
    """Why an open live view must close now (lease gone, membership gone), else whether
    its run is still live."""
    if viewer.token is not None:
        try:
            lease_check(viewer.token, kind=ViewerLease.Kind.LIVE, record_use=False, with_run=False)
        except LeaseRefused as refused:
            return _lease_refused(refused)
    elif not Membership.objects.filter(
        user_id=viewer.user_id or 0, space_id=viewer.space_id
    ).exists():
        return Refused(4404, "You are no longer a member of this run's space.")
    return run_is_live(viewer.run_id)


HANDOFF_NOTE_MAX = 2000


def open_handoff(run_id: str) -> dict[str, Any] | None:
    """What a live viewer shows of the run's open handoff: what is asked, by when."""
    handoff = selectors.open_handoff_of(run_id)
    if handoff is None:
        return None
    return {
        "id": handoff.id,
        "instructions": handoff.instructions,
        "expiresAt": iso(handoff.expires_at),
        "requestedBy": handoff.requested_by,
    }


def _handoff_complete(run_id: str, who: str, note: str) -> bool:
    handoff = selectors.open_handoff_of(run_id)
    if handoff is None:
        return False
    try:
        services.handoff_finish(
            handoff=handoff, status=Handoff.Status.COMPLETED, who=who, note=note
        )
    except Conflict:
        return False
    return True


def run_is_live(run_id: str) -> bool:
    return Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).exists()


def run_status(run_id: str) -> str | None:
    status: str | None = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status


class LiveViewConsumer(LayerWatchingConsumer):
    viewer: Viewer | None = None

    async def connect(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.recheck_wanted = asyncio.Event()
        self.pinned: str | None = None  # a tab the viewer picked; None follows the automation
        self.active: str | None = None  # the tab the automation last used
        self.tabs: list[dict[str, Any]] = []
        self.geometry: dict[str, control.Geometry] = {}
        self.awaiting_ack_since = 0.0
        self.pending: dict[str, Any] | None = None
        self.holding = False
        self.last_input = self.last_touch = 0.0
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            if "token" in kwargs:
                self.viewer = await database_sync_to_async(viewer_for_lease)(
                    kwargs["token"], origin
                )
            else:
                self.viewer = await database_sync_to_async(viewer_for_user)(
                    self.scope.get("user"), kwargs["run_id"], origin
                )
        except Refused as refused:
            logger.info("Live view refused (%s): %s", refused.code, refused.reason)
            await refuse_handshake(self, refused.code, refused.error, refused.reason)
            return
        if not await self.join(live_group(self.viewer.run_id), run_group(self.viewer.run_id)):
            unavailable = Refused(4503, "The live view is unavailable for a moment.")
            await refuse_handshake(self, unavailable.code, unavailable.error, unavailable.reason)
            return
        await self.accept()
        holder = await database_sync_to_async(control.control_holder)(self.viewer.runtime_id)
        await self._send_json(
            {
                "type": "hello",
                "mayControl": self.viewer.may_control,
                "name": self.viewer.name,
                "holder": holder.name if holder else None,
                "replayUrl": self.viewer.replay_url,
                "maxMessageBytes": settings.BCTRL_LIVE_MESSAGE_MAX_BYTES,
                "maxText": control.MAX_TEXT,
                "handoff": await database_sync_to_async(open_handoff)(self.viewer.run_id),
            }
        )
        if not await database_sync_to_async(run_is_live)(self.viewer.run_id):
            await self._ended()
            return
        if not await self._watch(reply=True):
            await self.layer_lost()
            return
        self.tasks.append(asyncio.create_task(self._tick_loop()))

    # Sending ------------------------------------------------------------------------

    async def _send_json(self, data: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(data).decode())

    async def _error(self, code: str, message: str) -> None:
        await self._send_json({"type": "error", "code": code, "message": message})

    def _watched(self) -> str | None:
        return self.pinned or self.active

    async def _watch(self, *, reply: bool = False) -> bool:
        """Tells the host this viewer watches; with `reply`, asks it for the tab list and
        the current picture (on connect and on a change of tab, not on every renewal).
        False when the channel layer is unavailable."""
        assert self.viewer is not None and self.channel_layer is not None
        body = {"type": "watch", "target": self.pinned}
        if reply:
            body["reply"] = self.channel_name
        return await send_to_host(self.channel_layer, self.viewer.runtime_id, body)

    async def live_frame(self, message: dict[str, Any]) -> None:
        target = message["target"]
        if isinstance(message.get("w"), (int, float)) and isinstance(
            message.get("h"), (int, float)
        ):
            self.geometry[target] = control.Geometry(float(message["w"]), float(message["h"]))
        watched = self._watched()
        if watched is not None and target != watched:
            return
        now = time.monotonic()
        if self.awaiting_ack_since and now - self.awaiting_ack_since < ACK_TIMEOUT_S:
            self.pending = message  # the newest wins; older ones are dropped for this viewer
            return
        self.awaiting_ack_since = now
        self.pending = None
        await self.send(bytes_data=message["frame"])

    async def live_tabs(self, message: dict[str, Any]) -> None:
        tabs = [t for t in message.get("tabs") or [] if isinstance(t, dict)]
        self.tabs = tabs
        self.active = message.get("active") if isinstance(message.get("active"), str) else None
        if self.pinned is not None and self.pinned not in {t.get("id") for t in tabs}:
            self.pinned = None
        await self._send_json(
            {"type": "tabs", "tabs": tabs, "active": self.active, "watching": self._watched()}
        )

    async def live_chooser(self, message: dict[str, Any]) -> None:
        """A tab opened a file chooser (or it went): a viewer that may take control gets
        the ticket to send files for it (runtimes.live_files)."""
        viewer = self.viewer
        assert viewer is not None
        tab = str(message["target"])
        chooser: dict[str, Any] = {
            "type": "fileChooser",
            "tabId": tab,
            "open": bool(message.get("open")),
            "multiple": bool(message.get("multiple")),
        }
        if chooser["open"] and viewer.may_control:
            chooser["upload"] = chooser_ticket(
                run_id=viewer.run_id, runtime_id=viewer.runtime_id, tab=tab, key=self.channel_name
            )
        await self._send_json(chooser)

    async def run_changed(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind in ("lease.revoked", "status"):
            self.recheck_wanted.set()
        elif kind == "handoff" and self.viewer is not None:
            handoff = await database_sync_to_async(open_handoff)(self.viewer.run_id)
            await self._send_json({"type": "handoff", "handoff": handoff})
        elif kind == "control":
            holder = message.get("holder")
            self.holding = self.holding and holder == (self.viewer.name if self.viewer else None)
            await self._send_json({"type": "control", "holder": holder, "you": self.holding})

    # Receiving ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.viewer is not None
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.BCTRL_LIVE_MESSAGE_MAX_BYTES:
            # bctrl's daphne refuses it before it is buffered (bctrl_site.webserver); this
            # is for a server that does not.
            await self._refuse(closecodes.MESSAGE_TOO_LARGE, f"sent {size} bytes")
            return
        message = json_object(text_data) if text_data is not None else None
        if message is None or not isinstance(message.get("type"), str):
            await self._refuse(closecodes.MESSAGE_MALFORMED, "sent a message that is not JSON")
            return
        kind = message["type"]
        if kind == "ack":
            await self._acked()
        elif kind == "tab":
            await self._pin(message.get("target"))
        elif kind == "control":
            await self._control(message.get("action"))
        elif kind in ("mouse", "wheel", "key", "text"):
            await self._input(message)
        elif kind == "handoff.done":
            await self._handoff_done(message.get("note"))
        else:
            await self._error("message.unknown", f"Unknown message type {kind[:40]!r}.")

    async def _refuse(self, code: int, why: str) -> None:
        """Closes the socket of a viewer that broke the protocol, handing control back
        first: the next person (or the automation) need not wait for the idle timeout."""
        assert self.viewer is not None
        logger.warning("Live viewer %s %s; closing with %d", self.viewer.viewer, why, code)
        await self._release("refused")
        await self.close(code=code)

    async def _acked(self) -> None:
        self.awaiting_ack_since = 0.0
        pending, self.pending = self.pending, None
        if pending is not None:
            await self.live_frame(pending)

    async def _pin(self, target: Any) -> None:
        if target is not None and target not in {t.get("id") for t in self.tabs}:
            await self._error("tab.unknown", "No such tab.")
            return
        self.pinned = target
        self.awaiting_ack_since = 0.0
        self.pending = None
        if not await self._watch(reply=True):
            await self.layer_lost()
            return
        await self._send_json(
            {"type": "tabs", "tabs": self.tabs, "active": self.active, "watching": self._watched()}
        )

    async def _control(self, action: Any) -> None:
        viewer = self.viewer
        assert viewer is not None
        if action == "request":
            if not viewer.may_control:
                logger.warning("View-only live viewer %s asked for control", viewer.viewer)
                await self._error("control.view_only", "This link is view only.")
                return
            holder = await database_sync_to_async(control.control_request)(
                run=self._run(), key=self.channel_name, name=viewer.name, viewer=viewer.viewer
            )
            if holder is None:
                await self._error("control.ended", "The run has ended.")
                return
            self.holding = holder.key == self.channel_name
            self.last_input = self.last_touch = time.monotonic()
            if not self.holding:
                # Granted, every viewer hears it from the `control` notice; refused, only
                # this one needs telling.
                await self._send_json({"type": "control", "holder": holder.name, "you": False})
                await self._error(control.BUSY_CODE, f"{holder.name} is in control.")
        elif action == "release":
            await self._release("requested")
        else:
            await self._error("message.invalid", "action must be request or release.")

    async def _handoff_done(self, note: Any) -> None:
        """The person did what the run's open handoff asked: it completes, with their
        note, and control goes back to the automation."""
        viewer = self.viewer
        assert viewer is not None
        if not viewer.may_control:
            await self._error("control.view_only", "This link is view only.")
            return
        if note is not None and (not isinstance(note, str) or len(note) > HANDOFF_NOTE_MAX):
            await self._error("message.invalid", f"note is text of {HANDOFF_NOTE_MAX} at most.")
            return
        finished = await database_sync_to_async(_handoff_complete)(
            viewer.run_id, viewer.name, (note or "").strip()
        )
        if not finished:
            await self._error("handoff.none", "Nothing is asked of you on this run now.")
            return
        await self._release("requested")

    def _run(self) -> Run:
        """The viewer's run as the control services need it (its ids; nothing loaded)."""
        assert self.viewer is not None
        return Run(pk=self.viewer.run_id, runtime_id=self.viewer.runtime_id)

    async def _release(self, reason: str) -> None:
        viewer = self.viewer
        if not self.holding or viewer is None:
            return
        self.holding = False
        await database_sync_to_async(control.control_release)(
            run=self._run(),
            key=self.channel_name,
            name=viewer.name,
            viewer=viewer.viewer,
            reason=reason,
        )

    async def _input(self, message: dict[str, Any]) -> None:
        viewer = self.viewer
        assert viewer is not None and self.channel_layer is not None
        if not viewer.may_control:
            logger.warning("View-only live viewer %s sent input; refused", viewer.viewer)
            await self._error("control.view_only", "This link is view only: input is refused.")
            return
        if not self.holding:
            await self._error("control.not_holder", "Take control before sending input.")
            return
        target = self._watched()
        try:
            method, params = control.viewer_input(message, self.geometry.get(target or ""))
        except control.InputRefused as refused:
            await self._error("input.invalid", str(refused))
            return
        body = {"type": "input", "target": target, "method": method, "params": params}
        if not await send_to_host(self.channel_layer, viewer.runtime_id, body):
            await self.layer_lost()
            return
        now = time.monotonic()
        self.last_input = now
        if now - self.last_touch >= TOUCH_EVERY_S:
            self.last_touch = now
            still = await database_sync_to_async(control.control_touch)(
                runtime_id=viewer.runtime_id, key=self.channel_name
            )
            if not still:
                self.holding = False
                await self._send_json({"type": "control", "holder": None, "you": False})

    # Upkeep -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Re-checks the lease and the run, keeps the host casting, releases idle control."""
        assert self.viewer is not None
        interval = min(settings.BCTRL_LIVE_RECHECK_S, settings.BCTRL_LIVE_WATCH_TTL_S / 3)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recheck_wanted.wait(), interval)
            self.recheck_wanted.clear()
            state = await database_sync_to_async(viewer_recheck)(self.viewer)
            if isinstance(state, Refused):
                await self._release("revoked")
                await self._send_json({"type": "closed", "reason": state.reason})
                await self.close(code=state.code)
                return
            if not state:
                await self._ended()
                return
            if self.holding and time.monotonic() - self.last_input > settings.BCTRL_CONTROL_IDLE_S:
                await self._release("idle")
                await self._send_json({"type": "control", "holder": None, "you": False})
            if not (await self._watch() and await self.layer_alive()):
                await self.layer_lost()
                return

    async def _ended(self) -> None:
        assert self.viewer is not None
        self.holding = False
        status = await database_sync_to_async(run_status)(self.viewer.run_id)
        await self._send_json(
            {"type": "ended", "replayUrl": self.viewer.replay_url, "status": status}
        )
        await self.close(code=1000)

    async def disconnect(self, code: int) -> None:
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        if getattr(self, "holding", False):
            refused = code in (closecodes.MESSAGE_TOO_LARGE, closecodes.MESSAGE_MALFORMED)
            with contextlib.suppress(Exception):
                await self._release("refused" if refused else "disconnected")
