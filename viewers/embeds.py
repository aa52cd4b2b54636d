"""Viewer embeds: the pages a lease URL opens inside another product's iframe.

URLs (viewers/embed_urls.py, names in the `embed` namespace; `<token>` is a viewer
lease token, viewers.leases):

- `GET /embed/replay/<token>` (`embed:replay`): the replay player of
  recordings/views.py (same markup, static/js/replay.js and CSS) bound to the lease's
  run. The inspector beside the player shows the tabs of the lease's components
  ("activity", "network", "console", "commands"), none without one (the lease decides,
  never a query parameter; without "activity" the manifest carries no activity either).
  The player posts its playhead to the parent window (below).
- `GET /embed/replay/<token>/manifest`, `…/chunks/<target>`, `…/live/<target>`,
  `…/video/<target>` (the tab's MP4, also the `url` of each video that
  `POST /v1/runs/{id}/recording` answers): the player's data, through manifest_data /
  chunks_response / live_response / target_video_response of
  recordings/views.py with embed URLs; the lease is checked again on every request.
  `…/inspector`: recordings.inspector's rows of the sections the lease's components
  name (403 `lease.wrong_kind` when it names none).
- `GET /embed/activity/<token>` (`embed:activity`): the run's activity timeline, kept
  current by the SSE stream below (static/js/embed-activity.js). Lease kind "activity".
- `GET /embed/activity/<token>/stream` (`embed:activity-stream`): runs.api.streams'
  activity stream (`sse_loop` + `ActivityFeed`), the `activityStreamUrl` of the minting
  API. Accepts an "activity" lease, a "replay" lease with the "activity" component and
  a "live" lease (the live embed shows the activity). The lease is checked again before
  every read of the loop (each change notice, and every BCTRL_SSE_POLL_SECONDS, 1 s by
  default): once it is revoked or has expired the stream sends
  `event: end` / `data: {"reason": "revoked"|"expired"|…, "message": …}` and closes.
- `GET /embed/live/<token>` (`embed:live`): the live view of runtimes.liveview (the
  browser's picture, tabs, take-over when the lease has `control: "input"`) beside the
  activity. `?control=input` asks for input control and is refused (403) when the lease
  has none. When the run ends the page says so and links to
  `GET /embed/live/<token>/replay` (`embed:live-replay`), which mints a replay lease
  (with the activity) that lasts as long as the live lease would have, and redirects
  to its embed.

Every lease check goes through viewers.leases.lease_check: pages and a stream's
connect record a use, data requests and the stream's re-checks do not. A refused page is
a small standalone page with the words of LeaseRefused.message and its status (403, or
410 for expired and no longer available); a refused data request or stream connect is
`{"error": {"code": "lease.<reason>", "message": …}}` with that status. Neither says
anything about the run or the space.

No session and no cookie: nothing here reads `request.user` or the session, no form
and no CSRF token, so a browser that blocks third-party cookies sees the same embed,
and no `Set-Cookie` is ever sent. Responses carry `Cache-Control: no-store` (pages and
JSON) and, from bctrl_site.middleware, `Referrer-Policy: no-referrer`. Pages that open
let the space's `allowed_embed_origins` frame them (`frame-ancestors`: any site for a new
space's `["*"]`, bctrl_site.origins; no X-Frame-Options); refusal pages may be framed
by anyone, so that the viewer inside an embed reads why it does not open (they hold no
data and no control to click); data endpoints and streams cannot be framed.

Playhead messages: while the replay plays (about four times a second) and on every
seek, pause and tab change, the player sends
`window.parent.postMessage({type: "bctrl.replay.time", timeMs, playing, target,
epochMs}, "*")`: `timeMs` is the position from the start of the tab's recording,
`epochMs` the recorded page's clock, `target` the tab's id. The target origin is "*"
on purpose: the embed cannot know which of several allowed origins framed it, and the
message reveals nothing but the playhead of a recording that parent already shows; no
token, no URL and no recorded content is ever posted.
"""

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET

from bctrl_site.middleware import ANY_ANCESTOR, allow_embed_framing
from recordings.exports import CONTENT_TYPE, VIEWER_FILENAME, replay_file
from recordings.inspector import SECTIONS, inspector_data
from recordings.video import screencast_frames
from recordings.views import (
    REPLAY_POLICY,
    ReplayUrls,
    chunks_response,
    live_response,
    manifest_data,
    private_json,
    shown_to_viewer,
    target_video_response,
)
from runs.api.streams import ActivityFeed, Refused, sse_loop, sse_response
from runs.errors import ApiError
from runs.exports import streaming_response
from runs.exports.har import CONTENT_TYPE as HAR_TYPE
from runs.exports.har import har_chunks
from runs.exports.trace import CONTENT_TYPE as TRACE_TYPE
from runs.exports.trace import trace_chunks
from runs.models import Run
from viewers.leases import (
    HAR_COMPONENTS,
    HAR_FILENAME,
    MIN_LIFETIME_S,
    TRACE_COMPONENTS,
    TRACE_FILENAME,
    LeaseRefused,
    lease_check,
    lease_mint,
    lease_shows,
    live_ws_path,
)
from viewers.models import ViewerLease

P = ParamSpec("P")
ACTIVITY = "activity"
# Leases that open the activity stream, tried in this order.
_ACTIVITY_GRANTS: tuple[tuple[str, str | None], ...] = (
    (ViewerLease.Kind.ACTIVITY, None),
    (ViewerLease.Kind.REPLAY, ACTIVITY),
    (ViewerLease.Kind.LIVE, None),
)


# Answers ----------------------------------------------------------------------------


def _no_store(response: HttpResponseBase) -> HttpResponseBase:
    response["Cache-Control"] = "private, no-store"
    return response


def _error_json(status: int, code: str, message: str) -> HttpResponse:
    return private_json({"error": {"code": code, "message": message}}, status=status)


def refused_json(refused: LeaseRefused) -> HttpResponse:
    return _error_json(refused.status, f"lease.{refused.reason}", refused.message)


def refused_page(request: HttpRequest, refused: LeaseRefused) -> HttpResponse:
    response = render(
        request, "embed/refused.html", {"message": refused.message}, status=refused.status
    )
    _no_store(response)
    return allow_embed_framing(response, ANY_ANCESTOR)


def _page(
    request: HttpRequest,
    lease: ViewerLease,
    template: str,
    context: dict[str, Any],
    policy: str | None = None,
) -> HttpResponse:
    response = render(request, template, context)
    if policy is not None:
        response["Content-Security-Policy"] = policy
    _no_store(response)
    return allow_embed_framing(response, lease.space.allowed_embed_origins)


def inspector_tabs(lease: ViewerLease) -> list[str]:
    """The inspector's tabs that a replay lease shows: its components, in the page's
    order (activity, network, console, commands)."""
    return [tab for tab in (ACTIVITY, *SECTIONS) if tab in lease.components]


def _run_state(run: Run) -> str:
    return "live" if run.status == Run.Status.RUNNING else "ended"


# Replay -----------------------------------------------------------------------------


def embed_replay_urls(token: str) -> ReplayUrls:
    return ReplayUrls(
        chunks=lambda target: reverse("embed:replay-chunks", args=[token, target]),
        live=lambda target: reverse("embed:replay-live", args=[token, target]),
        video=lambda target: reverse("embed:replay-video", args=[token, target]),
    )


def _replay_data(
    view: Callable[Concatenate[HttpRequest, ViewerLease, str, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, str, P], HttpResponseBase]:
    """A data endpoint of the replay embed: the lease checked on every request (no use
    recorded), refusals and unknown targets as JSON errors."""

    @functools.wraps(view)
    def wrapped(
        request: HttpRequest, token: str, *args: P.args, **kwargs: P.kwargs
    ) -> HttpResponseBase:
        try:
            lease = lease_check(token, kind=ViewerLease.Kind.REPLAY, record_use=False)
        except LeaseRefused as refused:
            return refused_json(refused)
        try:
            return view(request, lease, token, *args, **kwargs)
        except Http404 as exc:
            return _error_json(404, "not_found", str(exc) or "Not found.")

    return csrf_exempt(require_GET(wrapped))


@require_GET
def replay_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        lease = lease_check(token, kind=ViewerLease.Kind.REPLAY)
    except LeaseRefused as refused:
        return refused_page(request, refused)
    tabs = inspector_tabs(lease)
    context = {
        "manifest_url": reverse("embed:replay-manifest", args=[token]),
        "show_activity": bool(tabs),
        "inspector_tabs": tabs,
        "inspector_url": reverse("embed:replay-inspector", args=[token])
        if set(tabs) & set(SECTIONS)
        else "",
    }
    return _page(request, lease, "embed/replay.html", context, policy=REPLAY_POLICY)


@gzip_page  # as recordings.views.replay_manifest
@_replay_data
def replay_manifest(request: HttpRequest, lease: ViewerLease, token: str) -> HttpResponse:
    data = manifest_data(lease.run, embed_replay_urls(token))
    return private_json(shown_to_viewer(data, activity=ACTIVITY in lease.components))


@gzip_page
@_replay_data
def replay_inspector(request: HttpRequest, lease: ViewerLease, token: str) -> HttpResponse:
    sections = [section for section in SECTIONS if section in lease.components]
    if not sections:
        return refused_json(LeaseRefused("wrong_kind"))
    return private_json(inspector_data(lease.run, sections))


@_replay_data
def replay_chunks(
    request: HttpRequest, lease: ViewerLease, token: str, target: str
) -> HttpResponseBase:
    return chunks_response(request, lease.run, target)


@_replay_data
def replay_video(
    request: HttpRequest, lease: ViewerLease, token: str, target: str
) -> HttpResponseBase:
    return target_video_response(request, lease.run, target)


@_replay_data
def replay_file_download(request: HttpRequest, lease: ViewerLease, token: str) -> HttpResponseBase:
    """The self-contained replay file (recordings/exports.py) of the lease's run, for a
    viewer who was given the link and no API key: the lease's own reach, no more (its
    inspector tabs only, and no name or id of the space's records, as in the embed)."""
    try:
        file = replay_file(lease.run, tabs=inspector_tabs(lease), for_viewer=True)
    except ApiError as exc:  # nothing processed to replay yet
        return _error_json(exc.status_code, exc.code, str(exc.detail))
    response = streaming_response(
        request, file.chunks(), content_type=CONTENT_TYPE, filename=VIEWER_FILENAME
    )
    response["Content-Length"] = str(file.size)
    return response


@_replay_data
def replay_har(request: HttpRequest, lease: ViewerLease, token: str) -> HttpResponseBase:
    """The run's network log as HAR, for a lease that shows the network tab; without the
    run's id, as in the embed."""
    if not lease_shows(lease, HAR_COMPONENTS):
        return refused_json(LeaseRefused("wrong_kind"))
    chunks = har_chunks(lease.run, named=False)
    return streaming_response(request, chunks, content_type=HAR_TYPE, filename=HAR_FILENAME)


@_replay_data
def replay_trace(request: HttpRequest, lease: ViewerLease, token: str) -> HttpResponseBase:
    """The run as a Playwright trace, for a lease that shows all a trace holds (activity,
    network, console); without the run's name and id."""
    if not lease_shows(lease, TRACE_COMPONENTS):
        return refused_json(LeaseRefused("wrong_kind"))
    chunks = trace_chunks(lease.run, screencast_frames(lease.run), named=False)
    return streaming_response(request, chunks, content_type=TRACE_TYPE, filename=TRACE_FILENAME)


@_replay_data
def replay_live(request: HttpRequest, lease: ViewerLease, token: str, target: str) -> HttpResponse:
    return live_response(request, lease.run, target)


# Activity ---------------------------------------------------------------------------


@require_GET
def activity_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        lease = lease_check(token, kind=ViewerLease.Kind.ACTIVITY)
    except LeaseRefused as refused:
        return refused_page(request, refused)
    context = {
        "stream_url": reverse("embed:activity-stream", args=[token]),
        "run_state": _run_state(lease.run),
    }
    return _page(request, lease, "embed/activity.html", context)


def activity_lease(token: str, *, record_use: bool) -> ViewerLease:
    """The lease, if it opens the activity stream (see _ACTIVITY_GRANTS). A re-check of an
    open stream (no use recorded) needs no run."""
    refusal: LeaseRefused | None = None
    for kind, component in _ACTIVITY_GRANTS:
        try:
            return lease_check(
                token, kind=kind, component=component, record_use=record_use, with_run=record_use
            )
        except LeaseRefused as refused:
            if refused.reason != "wrong_kind":
                raise  # invalid, revoked, expired…: the same for every kind
            refusal = refused
    assert refusal is not None
    raise refusal


_aactivity_lease = sync_to_async(activity_lease)


@csrf_exempt
async def activity_stream(request: HttpRequest, token: str) -> HttpResponseBase:
    if request.method != "GET":
        refused = Refused(405, "method_not_allowed", f"Method {request.method} is not allowed.")
        return refused.response()
    try:
        lease = await _aactivity_lease(token, record_use=True)
    except LeaseRefused as refused:
        return refused_json(refused)
    run = lease.run

    async def still_open() -> dict[str, Any] | None:
        try:
            await _aactivity_lease(token, record_use=False)
        except LeaseRefused as refused:
            return {"reason": refused.reason, "message": refused.message}
        return None

    response = sse_response(sse_loop(run, ActivityFeed(run), check=still_open))
    _no_store(response)
    return response


# Live -------------------------------------------------------------------------------


@require_GET
def live_page(request: HttpRequest, token: str) -> HttpResponse:
    control = request.GET.get("control") or None
    if control is not None and control not in ViewerLease.Control.values:
        control = ViewerLease.Control.INPUT  # an unknown ask is at least as much as input
    try:
        lease = lease_check(token, kind=ViewerLease.Kind.LIVE, control=control)
    except LeaseRefused as refused:
        return refused_page(request, refused)
    context = {
        "stream_url": reverse("embed:activity-stream", args=[token]),
        "ws_url": live_ws_path(token=token),
        "may_control": lease.control == ViewerLease.Control.INPUT,
        "run_state": _run_state(lease.run),
        "replay_url": reverse("embed:live-replay", args=[token]),
    }
    return _page(request, lease, "embed/live.html", context)


@require_GET
def live_replay(request: HttpRequest, token: str) -> HttpResponse:
    """The "watch its replay" link of an ended live view: a replay lease (with the
    activity, as the live view had it) until the live lease would have expired."""
    try:
        lease = lease_check(token, kind=ViewerLease.Kind.LIVE)
    except LeaseRefused as refused:
        return refused_page(request, refused)
    if lease.run.is_active:
        return redirect("embed:live", token=token)
    remaining = int((lease.expires_at - timezone.now()).total_seconds())
    minted = lease_mint(
        run=lease.run,
        kind=ViewerLease.Kind.REPLAY,
        components=[ACTIVITY],
        lifetime_s=max(MIN_LIFETIME_S, remaining),
        api_key=lease.created_by_key,
        user=lease.created_by_user,
    )
    return redirect("embed:replay", token=minted.token)
