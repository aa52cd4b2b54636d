"""Server-sent event streams and the long-poll of a run: plain async Django views.

Wire format of both streams (text/event-stream):

    retry: 2000                         once, first: reconnect after 2 s
    id: <seq>                           events stream: one frame per event
    event: event
    data: <event json>

    id: <item id>                       activity stream: a new item, or
    event: activity | activity.updated  an item whose content changed
    data: <item json>

    : heartbeat                         a comment, when nothing was sent for a while

    event: end                          the run has ended and everything was sent
    data: {"runId": ..., "status": ...}

    retry: 5000                         the database went away: the stream closes, and
                                        reconnects get 503 + Retry-After until it is back

The events stream resumes after Last-Event-ID (or ?after=); `id:` is the event's seq.
Streams wake at once on a channel-layer notice (runs.live) and otherwise poll the
database; the database is the source of truth. Callers are an API key or a signed-in
dashboard user, and every error is the API's JSON error shape.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import (
    HttpRequest,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

from runs import selectors
from runs.activity import activity_items
from runs.api.auth import api_key_from_meta, bearer_token
from runs.api.serializers import event_json
from runs.errors import OUTAGE_ERRORS, RETRY_AFTER_S, api_error_response
from runs.live import run_change_listener
from runs.models import Event, Run

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
RETRY_MS = 2000
HEARTBEAT = ": heartbeat\n\n"
MAX_SEQ = 2**31 - 1  # seq is a PositiveIntegerField; larger numbers cannot match anything
_DIGITS = re.compile(r"[0-9]+")


class Refused(Exception):
    """A request that gets an API error instead of a stream."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JsonResponse:
        response = api_error_response(self.status, self.code, self.message)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="bctrl"'
        elif self.status == 405:
            response["Allow"] = "GET"
        return response


# ---------------------------------------------------------------- auth and parameters


async def authorized_run(request: HttpRequest, run_id: str) -> Run:
    """The run, if the caller (an API key, else a dashboard session) may read it."""
    if request.method != "GET":
        raise Refused(405, "method_not_allowed", f"Method {request.method} is not allowed.")
    try:
        if bearer_token(request.META) is not None:
            api_key = await sync_to_async(api_key_from_meta)(request.META)
            if api_key is None:
                raise Refused(401, "unauthenticated", "The API key is invalid or revoked.")
            return await sync_to_async(selectors.run_of)(api_key.space, run_id)
        user = await request.auser() if hasattr(request, "auser") else None
        if user is None or not user.is_authenticated:
            raise Refused(
                401,
                "unauthenticated",
                "Send an API key as `Authorization: Bearer bctrl_sk_…` or sign in.",
            )
        return await sync_to_async(selectors.run_of_user)(user, run_id)
    except selectors.ObjectNotFound as exc:
        raise Refused(404, "not_found", str(exc)) from exc


def bounded_int(raw: str | None, name: str, maximum: int) -> int | None:
    """A query or header value that must be an integer from 0 to `maximum`, or absent."""
    value = (raw or "").strip()
    if value == "":
        return None
    # The length check comes first: int() refuses strings of thousands of digits.
    if len(value) > len(str(maximum)) or not _DIGITS.fullmatch(value) or int(value) > maximum:
        raise Refused(422, "validation_error", f"{name} must be an integer from 0 to {maximum}.")
    return int(value)


@dataclass(frozen=True)
class EventFilters:
    types: list[str]
    page_id: str | None
    after: int | None


def event_filters(request: HttpRequest, *, last_event_id: bool) -> EventFilters:
    """type (comma list), pageId and after, as the events list reads them.

    With `last_event_id`, an SSE client's Last-Event-ID header wins over ?after=.
    """
    header = request.headers.get("Last-Event-ID") if last_event_id else None
    if header is not None and header.strip() != "":
        after = bounded_int(header, "Last-Event-ID", MAX_SEQ)
    else:
        after = bounded_int(request.GET.get("after"), "after", MAX_SEQ)
    return EventFilters(
        types=[part for part in request.GET.get("type", "").split(",") if part],
        page_id=request.GET.get("pageId") or None,
        after=after,
    )


# ---------------------------------------------------------------- SSE framing


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), cls=DjangoJSONEncoder)


def sse_frame(data: Any, *, event: str, id: str | int | None = None) -> str:
    """One SSE message; data is sent as compact JSON, which never spans lines."""
    lines = []
    if id is not None:
        lines.append("id: " + re.sub(r"[\r\n\0]", "", str(id)))
    lines.append(f"event: {event}")
    lines.append(f"data: {compact_json(data)}")
    return "\n".join(lines) + "\n\n"


# ---------------------------------------------------------------- the stream loop


@dataclass
class Batch:
    frames: list[str] = field(default_factory=list)
    more: bool = False  # another page is ready: read again without waiting
    ended: str | None = None  # the run's final status, once everything has been sent


class Feed(Protocol):
    async def read(self, woken: bool) -> Batch:
        """What to send now; `woken` is true on the first read and after a change notice."""
        ...


# A check the loop makes before every read (on connect, each wake and each poll): None to
# go on, or the data of a final `event: end` frame (e.g. {"reason": "revoked"}).
StreamCheck = Callable[[], Awaitable[dict[str, Any] | None]]


async def sse_loop(run: Run, feed: Feed, *, check: StreamCheck | None = None) -> AsyncIterator[str]:
    """Sends what the feed has, then waits for a notice or the poll timer, until the end.

    With `check` (viewer leases), the stream ends with the `end` frame it returns as soon
    as it returns one: at most a poll interval after a lease expires or is revoked.
    """
    heartbeat = float(settings.BCTRL_SSE_HEARTBEAT_SECONDS)
    poll = float(settings.BCTRL_SSE_POLL_SECONDS)
    clock = asyncio.get_running_loop().time
    yield f"retry: {RETRY_MS}\n\n"
    try:
        async with run_change_listener(run.id) as listener:
            woken = True
            quiet_since = clock()
            while True:
                if check is not None:
                    stop = await check()
                    if stop is not None:
                        yield sse_frame(stop, event="end")
                        return
                batch = await feed.read(woken)
                if batch.frames:
                    yield "".join(batch.frames)
                    quiet_since = clock()
                if batch.more:
                    woken = True
                    continue
                if batch.ended is not None:
                    yield sse_frame({"runId": run.id, "status": batch.ended}, event="end")
                    return
                if clock() - quiet_since >= heartbeat:
                    yield HEARTBEAT
                    quiet_since = clock()
                wait = min(poll, heartbeat - (clock() - quiet_since))
                woken = await listener.wait(max(wait, 0.0))
    except selectors.ObjectNotFound:
        return  # the run was deleted: close, and a reconnect gets its 404
    except OUTAGE_ERRORS as exc:
        # The database went away: close, and have the client come back when its 503
        # (until the database is back) says to.
        logger.warning("Stream of run %s closed: %r", run.id, exc)
        yield f"retry: {RETRY_AFTER_S * 1000}\n\n"
    except Exception:
        # Headers are sent: an error can only close the stream, and the client resumes.
        logger.exception("Stream of run %s failed", run.id)


def sse_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def run_state(run_id: str) -> tuple[str, int]:
    """The run's status and last seq, read before its events so that none is missed."""
    row = Run.objects.filter(pk=run_id).values_list("status", "event_count").first()
    if row is None:
        raise selectors.ObjectNotFound(f"No run {run_id!r}.")
    return row


class EventFeed:
    """The run's matching events after a seq, a page at a time."""

    def __init__(self, run: Run, filters: EventFilters) -> None:
        self.run = run
        self.filters = filters
        self.cursor = filters.after or 0  # last seq sent
        self.scanned = self.cursor  # every event up to this seq was looked at

    def fetch(self) -> tuple[str, list[Event]]:
        status, last_seq = run_state(self.run.id)
        if last_seq <= self.scanned:
            return status, []
        events = list(
            selectors.events_of(
                self.run,
                types=self.filters.types,
                page_id=self.filters.page_id,
                after_seq=self.cursor,
            )[:PAGE_SIZE]
        )
        if len(events) < PAGE_SIZE:
            self.scanned = last_seq
        return status, events

    async def read(self, woken: bool) -> Batch:
        status, events = await sync_to_async(self.fetch)()
        if events:
            self.cursor = events[-1].seq
        more = len(events) == PAGE_SIZE
        return Batch(
            frames=[sse_frame(event_json(event), event="event", id=event.seq) for event in events],
            more=more,
            ended=status if status != Run.Status.RUNNING and not more else None,
        )


class ActivityFeed:
    """The run's activity items: all of them first, then the new and the changed ones.

    Items are recomputed when a change notice came or the run's counters moved, at most
    once per poll interval (a busy run sends many notices), and at least once per
    heartbeat interval; a quiet run costs one small query per poll.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.sent: dict[str, str] = {}  # item id → its content, as last sent
        self.seen: tuple[Any, ...] | None = None  # the run's status and counters then
        self.computed_at: float | None = None

    def fetch(self, force: bool) -> tuple[str, list[dict[str, Any]] | None]:
        row = (
            Run.objects.filter(pk=self.run.id)
            .values_list("status", "event_count", "command_count", "artifact_count")
            .first()
        )
        if row is None:
            raise selectors.ObjectNotFound(f"No run {self.run.id!r}.")
        if not force and row == self.seen:
            return row[0], None
        self.seen = row
        self.run.refresh_from_db()
        return row[0], activity_items(self.run)

    async def read(self, woken: bool) -> Batch:
        now = asyncio.get_running_loop().time()
        if self.computed_at is not None:
            since = now - self.computed_at
            if since < float(settings.BCTRL_SSE_POLL_SECONDS):
                return Batch()  # the loop reads again within a poll interval
            woken = woken or since >= float(settings.BCTRL_SSE_HEARTBEAT_SECONDS)
        status, items = await sync_to_async(self.fetch)(woken or self.computed_at is None)
        frames = []
        if items is not None:
            self.computed_at = now
            for item in items:
                item_id = str(item["id"])
                content = json.dumps(item, sort_keys=True, cls=DjangoJSONEncoder)
                previous = self.sent.get(item_id)
                if previous != content:
                    kind = "activity" if previous is None else "activity.updated"
                    frames.append(sse_frame(item, event=kind, id=item_id))
                    self.sent[item_id] = content
        return Batch(frames=frames, ended=status if status != Run.Status.RUNNING else None)


# ---------------------------------------------------------------- views


@csrf_exempt
async def events_stream(request: HttpRequest, run_id: str) -> HttpResponseBase:
    """GET /v1/runs/{id}/events/stream: the run's events as SSE, resumable by seq."""
    try:
        run = await authorized_run(request, run_id)
        filters = event_filters(request, last_event_id=True)
    except Refused as refused:
        return refused.response()
    return sse_response(sse_loop(run, EventFeed(run, filters)))


@csrf_exempt
async def activity_stream(request: HttpRequest, run_id: str) -> HttpResponseBase:
    """GET /v1/runs/{id}/activity/stream: activity items as SSE, then their changes.

    Every connection starts with all items (Last-Event-ID is not used): items change
    in place, so there is no position to resume from.
    """
    try:
        run = await authorized_run(request, run_id)
    except Refused as refused:
        return refused.response()
    return sse_response(sse_loop(run, ActivityFeed(run)))


@csrf_exempt
async def events_wait(request: HttpRequest, run_id: str) -> HttpResponseBase:
    """GET /v1/runs/{id}/events/wait: the next matching event, or a timeout, or the end."""
    maximum = int(settings.BCTRL_EVENTS_WAIT_MAX_MS)
    try:
        run = await authorized_run(request, run_id)
        filters = event_filters(request, last_event_id=False)
        timeout_ms = bounded_int(request.GET.get("timeoutMs"), "timeoutMs", maximum)
    except Refused as refused:
        return refused.response()
    if timeout_ms is None:
        timeout_ms = min(30_000, maximum)
    after = filters.after if filters.after is not None else run.event_count

    def next_event() -> tuple[str, Event | None]:
        status, _ = run_state(run.id)
        event = selectors.events_of(
            run, types=filters.types, page_id=filters.page_id, after_seq=after
        ).first()
        return status, event

    clock = asyncio.get_running_loop().time
    deadline = clock() + timeout_ms / 1000
    poll = float(settings.BCTRL_SSE_POLL_SECONDS)
    body: dict[str, Any]
    try:
        async with run_change_listener(run.id) as listener:
            while True:
                status, event = await sync_to_async(next_event)()
                if event is not None:
                    body = {"event": event_json(event), "timedOut": False}
                    break
                if status != Run.Status.RUNNING:
                    body = {"event": None, "timedOut": False, "runEnded": True}
                    break
                remaining = deadline - clock()
                if remaining <= 0:
                    body = {"event": None, "timedOut": True}
                    break
                await listener.wait(min(poll, remaining))
    except selectors.ObjectNotFound:
        return api_error_response(404, "not_found", f"No run {run_id!r}.")
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response
