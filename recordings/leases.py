"""Viewer leases: minting, and the one check that every lease-opened page, stream and
websocket goes through.

A lease URL carries `<secret>:<signature>`: 32 random bytes, signed with Django's
signing (its own salt; SECRET_KEY_FALLBACKS keep URLs valid across a key rotation).
The signature turns away tampered tokens before the database is asked; the lease row
is found by the secret's SHA-256, so the URL holds no id and nothing parseable.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core import signing
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from recordings.models import Recording, ViewerLease
from recordings.selectors import latest_recording_of
from runs.api.errors import ApiError, Conflict
from runs.live import notify_run_changed
from runs.models import ApiKey, Run, Space
from runs.selectors import ObjectNotFound, spaces_of_user

SALT = "bctrl.viewer-lease"
DEFAULT_LIFETIME_S = 60 * 60
MIN_LIFETIME_S = 60
MAX_LIFETIME_S = 24 * 60 * 60
COMPONENTS = ("activity",)


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def lifetime_seconds(raw: Any) -> int:
    """`expiresInSeconds` as asked, or the default; out of bounds is a 400, never clamped."""
    if raw is None:
        return DEFAULT_LIFETIME_S
    if type(raw) is not int:
        raise ApiError("expiresInSeconds must be an integer.", code="lease.invalid_lifetime")
    if raw < MIN_LIFETIME_S or raw > MAX_LIFETIME_S:
        raise ApiError(
            f"expiresInSeconds must be between {MIN_LIFETIME_S} and {MAX_LIFETIME_S} "
            f"(24 hours); got {raw}.",
            code="lease.invalid_lifetime",
        )
    return raw


@dataclass(frozen=True)
class MintedLease:
    lease: ViewerLease
    token: str


def lease_mint(
    *,
    run: Run,
    kind: str,
    control: str = ViewerLease.Control.NONE,
    components: list[str] | None = None,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    api_key: ApiKey | None = None,
    user: User | None = None,
) -> MintedLease:
    """Creates a lease and its token; the token is shown once and never stored."""
    if kind == ViewerLease.Kind.LIVE and not run.is_active:
        raise Conflict(
            f"Run {run.id} has ended ({run.status}); there is nothing live to view. "
            "Mint a recording viewer instead.",
            code="run.ended",
        )
    secret = secrets.token_urlsafe(32)
    lease = ViewerLease.objects.create(
        space_id=run.space_id,
        run=run,
        recording=latest_recording_of(run)
        if kind in (ViewerLease.Kind.REPLAY, ViewerLease.Kind.ACTIVITY)
        else None,
        kind=kind,
        control=control,
        components=sorted(set(components or [])),
        secret_hash=_hash(secret),
        expires_at=timezone.now() + timedelta(seconds=lifetime_s),
        created_by_key=api_key,
        created_by_user=user if user is not None and user.is_authenticated else None,
    )
    return MintedLease(lease=lease, token=_signer().sign(secret))


class LeaseRefused(Exception):
    """Why a lease does not open what was asked. `status` is 403 or 410; `message` is
    what a viewer is told, and says nothing about the run or the space."""

    MESSAGES = {
        "invalid": "This viewer link is not valid.",
        "expired": "This viewer link has expired. Ask for a new one.",
        "revoked": "This viewer link was revoked.",
        "unavailable": "This recording is no longer available.",
        "wrong_kind": "This viewer link does not open this view.",
        "control": "This viewer link does not allow control of the browser.",
    }
    STATUSES = {"expired": 410, "unavailable": 410}

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = self.STATUSES.get(reason, 403)
        self.message = self.MESSAGES[reason]


def lease_check(
    token: str,
    *,
    kind: str,
    run_id: str | None = None,
    component: str | None = None,
    control: str | None = None,
    record_use: bool = True,
) -> ViewerLease:
    """The lease that `token` names, if it opens `kind` (or `component` of it) for
    `run_id` with `control`; LeaseRefused otherwise.

    Every page, SSE stream and websocket that a lease opens calls this, on connect and
    again while it stays open, so expiry and revocation end open viewers too.
    """
    try:
        secret = _signer().unsign(token)
    except signing.BadSignature as exc:
        raise LeaseRefused("invalid") from exc
    lease = (
        ViewerLease.objects.select_related("run", "recording", "space")
        .filter(secret_hash=_hash(secret))
        .first()
    )
    if lease is None or (run_id is not None and lease.run_id != run_id):
        raise LeaseRefused("invalid")
    now = timezone.now()
    if lease.revoked_at is not None:
        raise LeaseRefused("revoked")
    if lease.expires_at <= now:
        raise LeaseRefused("expired")
    if lease.kind != kind or (component is not None and component not in lease.components):
        raise LeaseRefused("wrong_kind")
    if control == ViewerLease.Control.INPUT and lease.control != ViewerLease.Control.INPUT:
        raise LeaseRefused("control")
    if lease.recording is not None and lease.recording.status in (
        Recording.Status.DELETED,
        Recording.Status.EXPIRED,
    ):
        raise LeaseRefused("unavailable")
    if record_use:
        ViewerLease.objects.filter(pk=lease.pk).update(
            use_count=F("use_count") + 1,
            last_used_at=now,
            first_used_at=Coalesce(F("first_used_at"), now),
        )
    return lease


alease_check = sync_to_async(lease_check)


def lease_revoke(*, lease: ViewerLease) -> ViewerLease:
    """Revokes a lease; open streams and sockets notice on their next check."""
    if lease.revoked_at is None:
        lease.revoked_at = timezone.now()
        lease.save(update_fields=["revoked_at"])
        notify_run_changed(lease.run_id, "lease.revoked", leaseId=lease.id)
    return lease


# Embed URLs ---------------------------------------------------------------------------

# The pages and the stream that a lease token opens (recordings.embeds serves them). The
# activity stream takes an `activity` lease, or a `replay` lease granted the "activity"
# component (POST /v1/runs/{id}/recording with components: ["activity"]), which it checks
# with lease_check(token, kind="replay", component="activity").
EMBED_PATHS = {
    "replay": "/embed/replay/{token}",
    "live": "/embed/live/{token}",
    "activity": "/embed/activity/{token}",
    "activity_stream": "/embed/activity/{token}/stream",
}


def embed_url(kind: str, token: str) -> str:
    """The absolute URL of the embed `kind` ("replay", "live", "activity" or
    "activity_stream") that `token` opens, on settings.SITE_URL."""
    return settings.SITE_URL + EMBED_PATHS[kind].format(token=token)


# Reads --------------------------------------------------------------------------------


def leases_of(space: Space) -> QuerySet[ViewerLease]:
    """A space's leases with what a list shows beside them, in one query."""
    return ViewerLease.objects.filter(space=space).select_related(
        "run", "created_by_key", "created_by_user"
    )


def active_leases(leases: QuerySet[ViewerLease]) -> QuerySet[ViewerLease]:
    """Those of `leases` that still open something: neither revoked nor expired."""
    return leases.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def lease_of(space: Space, lease_id: str) -> ViewerLease:
    lease = leases_of(space).filter(pk=lease_id).first()
    if lease is None:
        raise ObjectNotFound(f"No viewer lease {lease_id!r}.")
    return lease


def lease_of_user(user: AbstractBaseUser | AnonymousUser, lease_id: str) -> ViewerLease:
    """A lease of one of the spaces the dashboard user belongs to."""
    lease = (
        ViewerLease.objects.filter(pk=lease_id, space__in=spaces_of_user(user))
        .select_related("run")
        .first()
    )
    if lease is None:
        raise ObjectNotFound(f"No viewer lease {lease_id!r}.")
    return lease
