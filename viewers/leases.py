"""Viewer leases: minting, and the one check that every lease-opened page, stream and
websocket goes through.

A lease URL carries `<secret>:<signature>`: 32 random bytes, signed with Django's
signing (its own salt; SECRET_KEY_FALLBACKS keep URLs valid across a key rotation).
The signature turns away tampered tokens before the database is asked; the lease row
is found by the secret's SHA-256, so the URL holds no id and nothing parseable.
"""

import atexit
import functools
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core import signing
from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from recordings.inspector import SECTIONS
from recordings.models import Recording
from recordings.selectors import latest_recording_of
from runs.errors import Conflict, Invalid
from runs.live import notify_run_changed
from runs.models import ApiKey, Run, Space
from runs.rawsql import instance_from_row, model_columns
from runs.selectors import ObjectNotFound, spaces_of_user
from viewers.models import ViewerLease

SALT = "bctrl.viewer-lease"
DEFAULT_LIFETIME_S = 60 * 60
MIN_LIFETIME_S = 60
MAX_LIFETIME_S = 24 * 60 * 60
# Viewer add-ons of a replay lease: the activity (panel and stream) and the inspector's
# Network, Console and Commands tabs (recordings.inspector).
INSPECTOR_COMPONENTS = list(SECTIONS)
COMPONENTS = ("activity", *INSPECTOR_COMPONENTS)


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def lifetime_seconds(raw: Any) -> int:
    """`expiresInSeconds` as asked, or the default; out of bounds is a 422 (an invalid
    field), never clamped."""
    if raw is None:
        return DEFAULT_LIFETIME_S
    if type(raw) is not int:
        raise Invalid("expiresInSeconds must be an integer.", code="lease.invalid_lifetime")
    if raw < MIN_LIFETIME_S or raw > MAX_LIFETIME_S:
        raise Invalid(
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
    with_run: bool = True,
) -> ViewerLease:
    """The lease that `token` names, if it opens `kind` (or `component` of it) for
    `run_id` with `control`; LeaseRefused otherwise.

    Every page, SSE stream and websocket that a lease opens calls this, on connect and
    again while it stays open, so expiry and revocation end open viewers too. The lease
    comes with its run and space loaded; a re-check that needs neither passes
    `with_run=False` and saves the join.
    """
    try:
        secret = _signer().unsign(token)
    except signing.BadSignature as exc:
        raise LeaseRefused("invalid") from exc
    found = _lookup(_hash(secret), with_run=with_run)
    if found is None:
        raise LeaseRefused("invalid")
    lease, recording_status = found
    if run_id is not None and lease.run_id != run_id:
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
    if recording_status in (Recording.Status.DELETED, Recording.Status.EXPIRED):
        raise LeaseRefused("unavailable")
    if record_use:
        lease_uses.add(lease.pk, now)
    return lease


class LeaseUses:
    """Counts lease uses off the hot path: a check adds to a tally in memory, and a
    background thread writes the tallies every BCTRL_LEASE_USE_FLUSH_S seconds (one UPDATE
    per lease used in that window). With the setting at 0 each use is written at once.

    A use count is telemetry: a crash loses at most the last window's uses, while every
    viewer page load and connect is spared a write.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[Any]] = {}
        self._thread: threading.Thread | None = None

    def add(self, lease_id: str, now: datetime) -> None:
        interval = float(settings.BCTRL_LEASE_USE_FLUSH_S)
        if interval <= 0:
            self._write({lease_id: [1, now, now]})
            return
        with self._lock:
            tally = self._pending.setdefault(lease_id, [0, now, now])
            tally[0] += 1
            tally[2] = now
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name="lease-uses", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        self._write(pending)

    def _run(self, interval: float) -> None:
        try:
            while True:
                time.sleep(interval)
                self.flush()
        finally:
            connection.close()

    @staticmethod
    def _write(pending: dict[str, list[Any]]) -> None:
        for lease_id, (count, first, last) in pending.items():
            ViewerLease.objects.filter(pk=lease_id).update(
                use_count=F("use_count") + count,
                last_used_at=last,
                first_used_at=Coalesce(F("first_used_at"), first),
            )


lease_uses = LeaseUses()
atexit.register(lease_uses.flush)


def _lookup(secret_hash: str, *, with_run: bool) -> tuple[ViewerLease, str | None] | None:
    """The lease with this secret and its recording's status, in one indexed query, with
    its run and space joined in when `with_run`.

    Hand-written SQL: the check runs on every viewer page load, data request and stream
    re-check, and compiling the ORM's joins costs several times the query itself (see
    benchmarks/leases.py). Rows come back as model instances, as the ORM builds them.
    """
    models_read = (ViewerLease, Run, Space) if with_run else (ViewerLease,)
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(with_run), [secret_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    read = [
        instance_from_row(model, [next(values) for _ in model_columns(model)])
        for model in models_read
    ]
    lease = read[0]
    assert isinstance(lease, ViewerLease)
    if with_run:
        lease.run, lease.space = read[1], read[2]  # type: ignore[assignment]
    return lease, next(values)


@functools.cache
def _lookup_sql(with_run: bool) -> str:
    quote = connection.ops.quote_name
    tables = (("l", ViewerLease), ("u", Run), ("s", Space)) if with_run else (("l", ViewerLease),)
    selected = [
        f"{alias}.{quote(field.column)}"
        for alias, model in tables
        for field in model_columns(model)
    ]
    joins = (
        f"JOIN {quote(Run._meta.db_table)} u ON u.{quote('id')} = l.{quote('run_id')} "
        f"JOIN {quote(Space._meta.db_table)} s ON s.{quote('id')} = l.{quote('space_id')} "
        if with_run
        else ""
    )
    return (
        f"SELECT {', '.join(selected)}, r.{quote('status')} "  # noqa: S608 (names from _meta)
        f"FROM {quote(ViewerLease._meta.db_table)} l {joins}"
        f"LEFT JOIN {quote(Recording._meta.db_table)} r "
        f"ON r.{quote('id')} = l.{quote('recording_id')} "
        f"WHERE l.{quote('secret_hash')} = %s"
    )


alease_check = sync_to_async(lease_check)


def lease_revoke(*, lease: ViewerLease) -> ViewerLease:
    """Revokes a lease; open streams and sockets notice on their next check."""
    if lease.revoked_at is None:
        lease.revoked_at = timezone.now()
        lease.save(update_fields=["revoked_at"])
        notify_run_changed(lease.run_id, "lease.revoked", leaseId=lease.id)
    return lease


# Embed URLs ---------------------------------------------------------------------------

# The pages and the stream that a lease token opens (viewers.embeds serves them). The
# activity stream takes an `activity` lease, or a `replay` lease granted the "activity"
# component (POST /v1/runs/{id}/recording with components: ["activity"]), which it checks
# with lease_check(token, kind="replay", component="activity").
EMBED_PATHS = {
    "replay": "/embed/replay/{token}",
    "live": "/embed/live/{token}",
    "activity": "/embed/activity/{token}",
    "activity_stream": "/embed/activity/{token}/stream",
}


def live_ws_path(*, token: str | None = None, run_id: str | None = None) -> str:
    """The websocket path of a live view: by lease token, or a member's by run id
    (Channels routes have no `reverse`)."""
    return f"/ws/live/{token}" if token is not None else f"/ws/runs/{run_id}/live"


# What a replay lease must show for each of the run's files beyond the replay: the HAR is
# the network tab's rows; the trace holds the activity, the network and the console.
HAR_COMPONENTS = frozenset({"network"})
TRACE_COMPONENTS = frozenset({"activity", "network", "console"})
HAR_FILENAME = "network.har"
TRACE_FILENAME = "trace.zip"


def lease_shows(lease: ViewerLease, components: frozenset[str]) -> bool:
    """Whether `lease` shows all of `components` (a file holding them is its to open)."""
    return set(lease.components) >= components


def lease_files(lease: ViewerLease) -> dict[str, str]:
    """The run's files that `lease` opens, by the name of their URL on it."""
    files = {"replayFileUrl": "replay.html"}
    if lease_shows(lease, HAR_COMPONENTS):
        files["harUrl"] = HAR_FILENAME
    if lease_shows(lease, TRACE_COMPONENTS):
        files["traceUrl"] = TRACE_FILENAME
    return files


def embed_url(kind: str, token: str) -> str:
    """The absolute URL of the embed `kind` ("replay", "live", "activity" or
    "activity_stream") that `token` opens, on settings.SITE_URL."""
    return settings.SITE_URL + EMBED_PATHS[kind].format(token=token)


# Reads --------------------------------------------------------------------------------


# What people share: a runtime's CDP credential (kind "cdp") is not a viewer link, and
# is neither listed nor revoked with them; it ends with its run.
VIEWER_KINDS = (ViewerLease.Kind.REPLAY, ViewerLease.Kind.LIVE, ViewerLease.Kind.ACTIVITY)


def leases_of(space: Space) -> QuerySet[ViewerLease]:
    """A space's viewer leases with what a list shows beside them, in one query."""
    return ViewerLease.objects.filter(space=space, kind__in=VIEWER_KINDS).select_related(
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
    """A viewer lease of one of the spaces the dashboard user belongs to."""
    lease = (
        ViewerLease.objects.filter(
            pk=lease_id, space__in=spaces_of_user(user), kind__in=VIEWER_KINDS
        )
        .select_related("run")
        .first()
    )
    if lease is None:
        raise ObjectNotFound(f"No viewer lease {lease_id!r}.")
    return lease
