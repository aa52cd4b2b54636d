"""The dashboard: server-rendered pages over the selectors, for signed-in users.

Every query is scoped to the spaces the user belongs to; an id from another space
is a 404, exactly like an id that does not exist.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from drf_spectacular.views import SpectacularSwaggerSplitView

from recordings import upstream
from runs import profiles, selectors, services, webhooks
from runs.activity import activity_items, human_duration
from runs.api.errors import ApiError
from runs.api.views import artifact_file_response
from runs.launch import queued_starts
from runs.models import (
    Command,
    Event,
    Handoff,
    Run,
    Runtime,
    RuntimeHost,
    Space,
    any_embed_origin,
)
from viewers import leases
from viewers.models import ViewerLease

SESSION_SPACE_KEY = "space_id"
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


# Formatting -------------------------------------------------------------------------


def relative_time(value: datetime, now: datetime | None = None) -> str:
    """ "just now", "4 min ago", "3 h ago", "2 days ago"."""
    seconds = int(((now or timezone.now()) - value).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    if days < 30:
        return f"{days} day{'s' if days != 1 else ''} ago"
    return f"{value:%b} {value.day}, {value.year}"


def time_until(value: datetime, now: datetime | None = None) -> str:
    """ "in 45 s", "in 12 min", "in 5 h", "expired"."""
    seconds = int((value - (now or timezone.now())).total_seconds())
    if seconds <= 0:
        return "expired"
    if seconds < 90:
        return f"in {seconds} s"
    if seconds < 5400:
        return f"in {round(seconds / 60)} min"
    if seconds < 172800:
        return f"in {round(seconds / 3600)} h"
    return f"in {seconds // 86400} days"


def json_preview(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# Spaces -----------------------------------------------------------------------------


@dataclass
class SpaceContext:
    spaces: list[Space]
    current: Space | None


def space_context(request: HttpRequest) -> SpaceContext:
    """The user's spaces (one query) and the current one: the session's, else the first."""
    spaces = list(selectors.spaces_of_user(request.user).order_by("name", "id"))
    wanted = request.session.get(SESSION_SPACE_KEY)
    current = next((space for space in spaces if space.id == wanted), None)
    if current is None and spaces:
        current = spaces[0]
    return SpaceContext(spaces=spaces, current=current)


def base_context(request: HttpRequest, spaces: SpaceContext, **extra: Any) -> dict[str, Any]:
    return {
        "spaces": spaces.spaces,
        "current_space": spaces.current,
        "docs_url": reverse("api-docs"),
        **extra,
    }


def run_context(request: HttpRequest, run: Run, **extra: Any) -> dict[str, Any]:
    """The base context of a page about one run: a run of another of the user's spaces
    is shown in its own space."""
    spaces = space_context(request)
    spaces.current = run.space
    return base_context(request, spaces, run=run, **extra)


@login_required
@require_POST
def switch_space(request: HttpRequest) -> HttpResponse:
    space_id = request.POST.get("space_id", "")
    space = selectors.spaces_of_user(request.user).filter(pk=space_id).first()
    if space is None:
        raise Http404("No such space.")
    request.session[SESSION_SPACE_KEY] = space.id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard:runs")
    return HttpResponseRedirect(target)


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
LEASES_SHOWN = 200


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


@dataclass
class LeaseRow:
    lease: ViewerLease
    run_url: str
    expires_in: str
    last_used: str
    creator: str


def _creator(lease: ViewerLease) -> str:
    if lease.created_by_user is not None:
        return lease.created_by_user.get_username()
    if lease.created_by_key is not None:
        return f"API key {lease.created_by_key.name or lease.created_by_key.masked}"
    return "—"


@login_required
@require_GET
def leases_list(request: HttpRequest) -> HttpResponse:
    """The current space's viewer links that still open something, soonest to expire first."""
    spaces = space_context(request)
    space = spaces.current
    if space is None:
        return render(request, "dashboard/no_space.html", base_context(request, spaces))
    run_id = request.GET.get("run", "")
    active = leases.active_leases(leases.leases_of(space))
    if run_id:
        active = active.filter(run_id=run_id)
    page = list(active.order_by("expires_at", "id")[: LEASES_SHOWN + 1])
    now = timezone.now()
    rows = [
        LeaseRow(
            lease=lease,
            run_url=reverse("dashboard:run", args=[lease.run_id]),
            expires_in=time_until(lease.expires_at, now),
            last_used=relative_time(lease.last_used_at, now) if lease.last_used_at else "never",
            creator=_creator(lease),
        )
        for lease in page[:LEASES_SHOWN]
    ]
    context = base_context(
        request, spaces, rows=rows, run_id=run_id, truncated=len(page) > LEASES_SHOWN
    )
    return render(request, "dashboard/leases.html", context)


@login_required
@require_POST
def lease_revoke(request: HttpRequest, lease_id: str) -> HttpResponse:
    """Revokes a lease of one of the user's spaces; any other id is a 404."""
    try:
        lease = leases.lease_of_user(request.user, lease_id)
    except selectors.ObjectNotFound as exc:
        raise Http404(str(exc)) from exc
    leases.lease_revoke(lease=lease)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard:leases")
    return HttpResponseRedirect(target)


# Space settings ---------------------------------------------------------------------


def _origins_typed(text: str) -> list[str]:
    """The origins of the settings page's box: one a line (commas and spaces also part them)."""
    return [part for part in text.replace(",", " ").split() if part]


@sensitive_post_parameters("api_token")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def space_settings(request: HttpRequest) -> HttpResponse:
    """Settings of the current space, a section each: the sites that may embed its viewer
    links, and the upstream Browser Run account that seed 004's sync imports from (the
    token is typed, never shown back). `?space=<id>` opens another of the user's spaces
    (links from a run of it) and makes it the current one."""
    wanted = request.GET.get("space", "")
    if wanted and selectors.spaces_of_user(request.user).filter(pk=wanted).exists():
        request.session[SESSION_SPACE_KEY] = wanted
    spaces = space_context(request)
    space = spaces.current
    if space is None:
        return render(request, "dashboard/no_space.html", base_context(request, spaces))
    errors: dict[str, str] = {}
    typed: dict[str, str] = {}
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "set-embedding":
            any_site = request.POST.get("embed_mode") == "any"
            typed = {
                "embedMode": "any" if any_site else "listed",
                "embedOrigins": request.POST.get("embed_origins", "").strip(),
            }
            try:
                services.space_embed_origins_set(
                    space=space,
                    origins=any_embed_origin()
                    if any_site
                    else _origins_typed(typed["embedOrigins"]),
                )
            except ApiError as exc:
                errors["embedOrigins"] = str(exc.detail).removeprefix("embedOrigins: ")
            else:
                return HttpResponseRedirect(reverse("dashboard:settings") + "?saved=embedding")
        elif action == "clear-upstream":
            upstream.upstream_account_clear(space=space)
            return HttpResponseRedirect(reverse("dashboard:settings") + "?saved=upstream-cleared")
        elif action == "set-upstream":
            typed = {
                "baseUrl": request.POST.get("base_url", "").strip(),
                "accountId": request.POST.get("account_id", "").strip(),
            }
            try:
                upstream.upstream_account_set(
                    space=space,
                    base_url=typed["baseUrl"],
                    account_id=typed["accountId"],
                    api_token=request.POST.get("api_token", "").strip() or None,
                )
            except ApiError as exc:
                field_name = (exc.details or {}).get("field", "")
                errors[field_name] = str(exc.detail).removeprefix(f"{field_name}: ")
            else:
                return HttpResponseRedirect(reverse("dashboard:settings") + "?saved=upstream")
        elif action in ("set-webhook", "clear-webhook", "roll-webhook-secret"):
            typed = {"webhookUrl": request.POST.get("webhook_url", "").strip()}
            try:
                if action == "roll-webhook-secret":
                    webhooks.webhook_secret_roll(space=space)
                else:
                    url = typed["webhookUrl"] if action == "set-webhook" else ""
                    webhooks.webhook_set(space=space, url=url)
            except ApiError as exc:
                errors["webhookUrl"] = str(exc.detail).removeprefix("webhookUrl: ")
            else:
                return HttpResponseRedirect(
                    reverse("dashboard:settings") + "?saved=webhook#webhook"
                )
        elif action == "delete-profile":
            try:
                profiles.profile_delete(
                    profile=profiles.profile_of(space, request.POST.get("profile", ""))
                )
            except ApiError as exc:
                errors["profile"] = str(exc.detail)
            else:
                return HttpResponseRedirect(
                    reverse("dashboard:settings") + "?saved=profile-deleted#profiles"
                )
        else:
            errors["action"] = "Unknown action."
    if "embedMode" in typed:
        embed_form = {"mode": typed["embedMode"], "origins": typed["embedOrigins"]}
    elif space.embeds_from_any_site:
        embed_form = {"mode": "any", "origins": ""}
    else:
        embed_form = {"mode": "listed", "origins": "\n".join(space.allowed_embed_origins)}
    context = base_context(
        request,
        spaces,
        embed_form=embed_form,
        upstream=upstream.upstream_account_json(space, upstream.upstream_account_of(space)),
        profiles=profiles.profiles_of(space),
        webhook=webhooks.webhook_json(space),
        typed=typed,
        errors=errors,
        saved=request.GET.get("saved", "") if request.method == "GET" else "",
    )
    return render(request, "dashboard/space_settings.html", context, status=400 if errors else 200)


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


@dataclass
class HostRow:
    host: RuntimeHost
    alive: bool
    room: int
    memory: str
    heartbeat: str


@login_required
@require_GET
def hosts_list(request: HttpRequest) -> HttpResponse:
    """The fleet for the people who run it (staff): each runtime host, what it holds and
    can hold, its memory and load, and the starts waiting for a place."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    spaces = space_context(request)
    now = timezone.now()
    alive = set(selectors.live_hosts().values_list("id", flat=True))
    placed = dict(
        Runtime.objects.filter(status__in=services.RUNTIME_BUSY)
        .exclude(host_id="")
        .values_list("host_id")
        .annotate(count=Count("id"))
    )
    rows = [
        HostRow(
            host=host,
            alive=host.id in alive,
            room=max(0, host.capacity - placed.get(host.id, 0)),
            memory=(
                f"{filesizeformat(host.memory_available)} free of "
                f"{filesizeformat(host.memory_total)}"
                if host.memory_total
                else "unknown"
            ),
            heartbeat=relative_time(host.heartbeat_at, now),
        )
        for host in RuntimeHost.objects.order_by("id")
    ]
    starting = Runtime.objects.filter(status=Runtime.Status.STARTING).select_related("space")
    context = base_context(
        request,
        spaces,
        rows=rows,
        starting=list(starting.order_by("updated_at")[:50]),
        waiting=queued_starts(),
    )
    return render(request, "dashboard/hosts.html", context)
