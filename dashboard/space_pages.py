"""The space's own pages: switching space, its settings, its viewer links and its runtime
hosts. Scoped like every dashboard page (dashboard.views)."""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.context import (
    SESSION_SPACE_KEY,
    base_context,
    relative_time,
    space_context,
    time_until,
)
from recordings import upstream
from runs import profiles, selectors, services, webhooks
from runs.errors import ApiError
from runs.models import (
    Runtime,
    RuntimeHost,
    any_embed_origin,
)
from runtimes import services as runtime_services
from runtimes.launch import queued_starts
from viewers import leases
from viewers.models import ViewerLease

LEASES_SHOWN = 200


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
        Runtime.objects.filter(status__in=runtime_services.RUNTIME_BUSY)
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


# Viewer links of the space ---------------------------------------------------------


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
