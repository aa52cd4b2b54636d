"""The dashboard: server-rendered pages over the selectors, for signed-in users.

Every query is scoped to the spaces the user belongs to; an id from another space
is a 404, exactly like an id that does not exist. Pages about one run live here; the
space's own pages (settings, viewer links, hosts) in dashboard.space_pages.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.views import SpectacularSwaggerSplitView

from dashboard.context import (
    base_context,
    json_pretty,
    json_preview,
    relative_time,
    run_context,
    space_context,
    time_until,
)
from recordings.inspector import SECTIONS
from recordings.views import REPLAY_POLICY, first_chunk_to_preload, session_run, session_urls
from runs import selectors
from runs.activity import activity_items, human_duration
from runs.api.views import artifact_file_response
from runs.errors import ApiError
from runs.models import (
    Command,
    Event,
    Handoff,
    Run,
)
from viewers import leases
from viewers.models import ViewerLease

RUNS_PAGE_SIZE = 25
RUNS_MAX_PAGE_SIZE = 50  # rendering dominates a list page: 50 rows keep p95 under 50 ms
EVENTS_PAGE_SIZE = 200
COMMANDS_SHOWN = 200

# Raster images are shown inline; everything else (SVG and HTML included) downloads.
INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"}

DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# Runs list --------------------------------------------------------------------------


@dataclass
class RunRow:
    """What one row of the runs list shows, computed in the view: the template only prints.

    Rendering is most of a list page's time, so URLs and dates are built here once.
    """

    run: Run
    url: str
    thumbnail_url: str
    duration: str
    started: str
    started_iso: str
    started_utc: str
    handoff: Handoff | None = None  # what it asks a person to do, while that is open

    @classmethod
    def of(cls, run: Run, now: Any, handoff: Handoff | None = None) -> "RunRow":
        url = reverse("dashboard:run", args=[run.id])
        return cls(
            run=run,
            url=url,
            thumbnail_url=f"{url}/artifacts/{run.thumbnail_id}" if run.thumbnail_id else "",
            duration=human_duration(run.current_duration_ms),
            started=relative_time(run.started_at, now),
            started_iso=run.started_at.isoformat(),
            started_utc=run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            handoff=handoff,
        )


def _page_size(raw: str | None) -> int:
    try:
        size = int(raw or RUNS_PAGE_SIZE)
    except ValueError:
        return RUNS_PAGE_SIZE
    return min(max(size, 1), RUNS_MAX_PAGE_SIZE)


@login_required
@require_GET
def runs_list(request: HttpRequest) -> HttpResponse:
    spaces = space_context(request)
    space = spaces.current
    if space is None:
        return render(request, "dashboard/no_space.html", base_context(request, spaces))

    status = request.GET.get("status", "")
    if status not in Run.Status.values:
        status = ""
    runtime_id = request.GET.get("runtime", "")
    cursor = request.GET.get("cursor", "")
    limit = _page_size(request.GET.get("limit"))

    # (id, name) pairs only: a space may have hundreds of runtimes in the filter.
    runtimes = list(selectors.runtimes_of(space).order_by("name", "-id").values_list("id", "name"))
    # runs_of selects the runtime and thumbnail: one query for the page, whatever its size.
    runs = selectors.runs_of(space)
    if status:
        runs = runs.filter(status=status)
    if runtime_id:
        runs = runs.filter(runtime_id=runtime_id)
    if cursor:
        runs = runs.filter(id__lt=cursor)  # ids sort by creation: keyset on -id
    page = list(runs.order_by("-id")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]

    filtered = bool(status or runtime_id)
    now = timezone.now()
    asking = selectors.open_handoffs_of([run.id for run in page if run.is_active])
    context = base_context(
        request,
        spaces,
        rows=[RunRow.of(run, now, asking.get(run.id)) for run in page],
        statuses=Run.Status.values,
        status=status,
        runtimes=runtimes,
        runtime_id=runtime_id,
        filtered=filtered,
        cursor=cursor,
        next_cursor=page[-1].id if has_more and page else None,
        space_is_empty=not page and not filtered and not cursor,
        site_url=settings.SITE_URL,
    )
    return render(request, "dashboard/runs.html", context)


# Run detail -------------------------------------------------------------------------


def _run_or_404(request: HttpRequest, run_id: str) -> Run:
    try:
        return selectors.run_of_user(request.user, run_id)
    except selectors.ObjectNotFound as exc:
        raise Http404(str(exc)) from exc


@dataclass
class EventRow:
    event: Event
    preview: str
    pretty: str


@dataclass
class CommandRow:
    command: Command
    duration: str
    preview: str
    pretty: str
    error: str


@dataclass
class ActivityRow:
    id: str
    time: datetime | None
    type: str
    message: str
    status: str
    severity: str
    duration: str
    children: list["ActivityRow"] = field(default_factory=list)


def _activity_rows(items: list[dict[str, Any]], depth: int = 0) -> list[ActivityRow]:
    rows = []
    for item in items:
        raw_time = item.get("time")
        when = parse_datetime(raw_time) if isinstance(raw_time, str) else None
        severity = item.get("severity") or "info"
        duration_ms = item.get("durationMs")
        rows.append(
            ActivityRow(
                id=str(item.get("id") or ""),
                time=when,
                type=str(item.get("type") or ""),
                message=str(item.get("message") or ""),
                status=str(item.get("status") or ""),
                severity=severity if severity in ("info", "warning", "error") else "info",
                duration=human_duration(int(duration_ms)) if duration_ms is not None else "",
                children=_activity_rows(item.get("children") or [], depth + 1) if depth < 5 else [],
            )
        )
    return rows


def _positive_int(raw: str | None) -> int | None:
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if value > 0 else None


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run_or_404(request, run_id)

    event_types = list(
        selectors.events_of(run).order_by("type").values_list("type", flat=True).distinct()
    )
    event_type = request.GET.get("type", "")
    before = _positive_int(request.GET.get("before"))
    events = selectors.events_of(run, types=[event_type] if event_type else None)
    if before is not None:
        events = events.filter(seq__lt=before)
    latest = list(events.order_by("-seq")[: EVENTS_PAGE_SIZE + 1])
    has_earlier = len(latest) > EVENTS_PAGE_SIZE
    shown = list(reversed(latest[:EVENTS_PAGE_SIZE]))
    matching_count = (
        run.event_count if not event_type else selectors.events_of(run, types=[event_type]).count()
    )
    last_seq = max([shown[-1].seq if shown else 0, run.event_count])

    commands = [
        CommandRow(
            command=command,
            duration=human_duration(command.duration_ms),
            preview=json_preview(command.params),
            pretty=json_pretty(command.params),
            error=json_pretty(command.error) if command.error is not None else "",
        )
        for command in selectors.commands_of(run)[:COMMANDS_SHOWN]
    ]
    artifacts = list(selectors.artifacts_of(run))

    context = run_context(
        request,
        run,
        duration=human_duration(run.current_duration_ms),
        error_text=_error_text(run.error),
        error_pretty=json_pretty(run.error) if run.error is not None else "",
        activity=_activity_rows(activity_items(run)),
        event_rows=[
            EventRow(event=event, preview=json_preview(event.data), pretty=json_pretty(event.data))
            for event in shown
        ],
        event_types=event_types,
        event_type=event_type,
        before=before,
        has_earlier=has_earlier,
        earlier_before=shown[0].seq if shown else None,
        matching_count=matching_count,
        live=run.is_active and before is None,
        stream_after=last_seq,
        command_rows=commands,
        commands_truncated=run.command_count > len(commands),
        artifacts=artifacts,
        inline_types=INLINE_IMAGE_TYPES,
        lifetimes=LEASE_LIFETIMES,
        default_lifetime=leases.DEFAULT_LIFETIME_S,
        handoff=selectors.open_handoff_of(run.id) if run.is_active else None,
    )
    return render(request, "dashboard/run.html", context)


@login_required
@require_GET
def run_live(request: HttpRequest, run_id: str) -> HttpResponse:
    """The live view of a run (runtimes.liveview): members may watch and take control."""
    run = _run_or_404(request, run_id)
    if not run.is_active or run.runtime_id is None:
        return HttpResponseRedirect(reverse("dashboard:run", args=[run.id]))
    context = run_context(
        request,
        run,
        ws_url=leases.live_ws_path(run_id=run.id),
        may_control=True,
        run_state="live",
        replay_url=reverse("replay:page", args=[run.id]),
        stream_url=reverse("api:run-activity-stream", args=[run.id]),
    )
    return render(request, "dashboard/live.html", context)


def _error_text(error: Any) -> str:
    if error is None:
        return ""
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or json_preview(error, 200))
    if isinstance(error, str):
        return error
    return json_preview(error, 200)


# Artifacts --------------------------------------------------------------------------


@login_required
@require_GET
def artifact_file(request: HttpRequest, run_id: str, artifact_id: str) -> HttpResponseBase:
    run = _run_or_404(request, run_id)
    try:
        artifact = selectors.artifact_of(run, artifact_id)
    except selectors.ObjectNotFound as exc:
        raise Http404(str(exc)) from exc
    inline = not request.GET.get("download") and artifact.content_type in INLINE_IMAGE_TYPES
    response = artifact_file_response(artifact, inline=inline)
    if response.status_code == 200:
        # Artifacts never change once stored; only the signed-in browser may keep a copy
        # (not of a redirect to a presigned URL, which expires).
        response["Cache-Control"] = "private, max-age=3600"
    return response


# Viewer links -----------------------------------------------------------------------

LEASE_LIFETIMES = [
    (15 * 60, "15 minutes"),
    (60 * 60, "1 hour"),
    (6 * 60 * 60, "6 hours"),
    (24 * 60 * 60, "24 hours"),
]


def _share_error(request: HttpRequest, run: Run, message: str, status: int) -> HttpResponse:
    context = run_context(request, run, error=message)
    return render(request, "dashboard/share_result.html", context, status=status)


@login_required
@require_POST
def run_share(request: HttpRequest, run_id: str) -> HttpResponse:
    """Mints a replay or live viewer link with the same lease_mint as the API, and shows
    its URL this once: the response is the only place the token ever appears."""
    run = _run_or_404(request, run_id)
    kind = request.POST.get("kind", "")
    if kind not in (ViewerLease.Kind.REPLAY, ViewerLease.Kind.LIVE):
        return _share_error(request, run, "Choose a replay or a live viewer link.", 422)
    control = request.POST.get("control") or ViewerLease.Control.NONE
    if control not in ViewerLease.Control.values:
        return _share_error(request, run, "Control is none or input.", 422)
    raw_lifetime = request.POST.get("lifetime", "")
    components = ["activity"] if request.POST.get("activity") else []
    if request.POST.get("inspector"):
        components += leases.INSPECTOR_COMPONENTS
    try:
        lifetime = leases.lifetime_seconds(
            int(raw_lifetime) if raw_lifetime.isdigit() else raw_lifetime or None
        )
        minted = leases.lease_mint(
            run=run,
            kind=kind,
            control=control if kind == ViewerLease.Kind.LIVE else ViewerLease.Control.NONE,
            components=components if kind == ViewerLease.Kind.REPLAY else [],
            lifetime_s=lifetime,
            user=request.user if isinstance(request.user, User) else None,
        )
    except ApiError as exc:
        return _share_error(request, run, str(exc.detail), exc.status_code)
    lease = minted.lease
    url = leases.embed_url(kind, minted.token)
    context = run_context(
        request,
        run,
        lease=lease,
        url=url,
        activity_stream_url=leases.embed_url("activity_stream", minted.token)
        if "activity" in lease.components
        else "",
        iframe_snippet=(
            f'<iframe src="{url}" style="width: 100%; height: 600px; border: none;"></iframe>'
        ),
        expires_in=time_until(lease.expires_at),
    )
    response = render(request, "dashboard/share_result.html", context)
    response["Cache-Control"] = "no-store"
    return response


# Sign in ----------------------------------------------------------------------------


class SignInView(LoginView):
    """Django's sign-in, which says until someone has signed in who the first user is and
    how to give it a new password (`make run` printed it once: bootstrap)."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        users = get_user_model().objects
        if not users.filter(last_login__isnull=False).exists():
            context["first_sign_in"] = True
            first = users.filter(is_superuser=True).order_by("date_joined", "pk").first()
            context["first_user"] = first.get_username() if first is not None else ""
        return context


# API docs ---------------------------------------------------------------------------

_swagger_view = SpectacularSwaggerSplitView.as_view(url_name="openapi", title="bctrl API")


def api_docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI, self-hosted; its init script is a second request, so no inline script."""
    response: HttpResponse = _swagger_view(request)
    # Swagger UI sets inline style attributes and draws icons from data: URLs.
    response["Content-Security-Policy"] = DOCS_POLICY
    return response


# Replay page ------------------------------------------------------------------------


@session_run
def replay_page(request: HttpRequest, run: Run) -> HttpResponse:
    context = run_context(
        request,
        run,
        manifest_url=reverse("replay:manifest", args=[run.id]),
        inspector_url=reverse("replay:inspector", args=[run.id]),
        inspector_tabs=["activity", *SECTIONS],
        first_chunk=first_chunk_to_preload(run, session_urls(run)),
    )
    response = render(request, "replay/page.html", context)
    response["Content-Security-Policy"] = REPLAY_POLICY
    return response
