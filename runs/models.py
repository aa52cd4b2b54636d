import hashlib
import secrets
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from bctrl_site.origins import (
    ANY_ORIGIN,
    InvalidEmbedOrigins,
    allows_any_origin,
    embed_origins_checked,
)
from runs.ids import new_id

API_KEY_PREFIX = "bctrl_sk_"


def id_field(prefix: str) -> models.CharField:
    return models.CharField(
        primary_key=True, max_length=40, default=partial(new_id, prefix), editable=False
    )


def any_embed_origin() -> list[str]:
    """A new space's embed origins: any site (bctrl_site.origins)."""
    return [ANY_ORIGIN]


class Space(models.Model):
    """A tenant: owns runtimes, runs, API keys, embed origins and retention."""

    id = id_field("spc")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    # ["*"], [] or origins: see bctrl_site.origins. Spaces made before ["*"] became the
    # default kept their [] (no site), which their owners may have relied on.
    allowed_embed_origins = models.JSONField(
        default=any_embed_origin,
        blank=True,
        help_text=(
            'Sites that may frame viewer embeds and open their live view: ["*"] for any '
            "site, [] for none, or origins such as https://app.example.com."
        ),
    )
    recording_retention_days = models.PositiveIntegerField(default=7)
    # Where the space's notices go (a handoff asks for a person: runs.webhooks), signed
    # with the secret; blank for none.
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="spaces"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def embeds_from_any_site(self) -> bool:
        return allows_any_origin(self.allowed_embed_origins)

    def clean(self) -> None:
        try:
            self.allowed_embed_origins = embed_origins_checked(self.allowed_embed_origins)
        except InvalidEmbedOrigins as exc:
            raise ValidationError({"allowed_embed_origins": str(exc)}) from exc


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "space"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.space}"


def hash_api_key(raw_key: str) -> str:
    # Keys carry 240 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyManager(models.Manager["ApiKey"]):
    def issue(self, *, space: Space, name: str) -> tuple["ApiKey", str]:
        """Creates a key and returns it with its raw value, which is never stored."""
        raw_key = API_KEY_PREFIX + secrets.token_urlsafe(30)
        api_key = self.create(
            space=space, name=name, key_hash=hash_api_key(raw_key), last_four=raw_key[-4:]
        )
        return api_key, raw_key

    def authenticate(self, raw_key: str) -> "ApiKey | None":
        if not raw_key.startswith(API_KEY_PREFIX):
            return None
        return (
            self.select_related("space")
            .filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True)
            .first()
        )


class ApiKey(models.Model):
    id = id_field("key")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{API_KEY_PREFIX}…{self.last_four}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def touch(self) -> None:
        """Records use, at most once a minute, so reads do not turn into writes."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class Runtime(models.Model):
    class Status(models.TextChoices):
        IDLE = "idle"
        STARTING = "starting"
        RUNNING = "running"
        STOPPING = "stopping"
        STOPPED = "stopped"
        FAILED = "failed"

    id = id_field("rt")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="runtimes")
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IDLE)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by the runtime host that runs the browser (see runtime_host/).
    host_id = models.CharField(max_length=100, blank=True, help_text="The host that claimed it")
    cdp_endpoint = models.CharField(
        max_length=300, blank=True, help_text="The browser's own DevTools websocket URL"
    )
    files_dir = models.CharField(
        max_length=500,
        blank=True,
        help_text="The browser's own folder on its host (downloads/, uploads/)",
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    # Options of the current start, from the connect URL's query (seed 003).
    recording_enabled = models.BooleanField(default=True)
    keep_alive_ms = models.PositiveIntegerField(null=True, blank=True)
    # Clients connected through connectUrl, kept by the CDP proxy of the web processes.
    client_count = models.PositiveIntegerField(default=0)
    last_client_at = models.DateTimeField(null=True, blank=True)
    # The one human controller of a live view (runs.control): an opaque holder key, who
    # it is, and when it last sent input (a holder idle past BCTRL_CONTROL_IDLE_S is gone).
    controller_key = models.CharField(max_length=200, blank=True)
    controller_name = models.CharField(max_length=200, blank=True)
    controller_since = models.DateTimeField(null=True, blank=True)
    controller_active_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "host_id"], name="runtime_status_host")]

    def __str__(self) -> str:
        return self.name or self.id


class RuntimeHost(models.Model):
    """A runtime host process, as it said in its last heartbeat: what it holds and can
    hold. A start goes to the live host with the most room (runtimes.services.runtime_place)."""

    id = models.CharField(primary_key=True, max_length=100)
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True, help_text="Its process on hostname")
    capacity = models.PositiveIntegerField(help_text="Browsers it runs at once at most")
    browsers = models.PositiveIntegerField(default=0, help_text="Browsers it runs now")
    warm = models.PositiveIntegerField(default=0, help_text="Pre-launched browsers ready")
    memory_total = models.PositiveBigIntegerField(default=0, help_text="Bytes")
    memory_available = models.PositiveBigIntegerField(default=0, help_text="Bytes")
    load = models.FloatField(default=0, help_text="1-minute load average")
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    id = id_field("run")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="runs")
    runtime = models.ForeignKey(
        Runtime, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The browser options its start asked for (viewport, userAgent, locale, timezone;
    # runs.browser_options), applied by the runtime host to every page of the run.
    browser_options = models.JSONField(default=dict, blank=True)
    # What of the start's options is secret (an upstream proxy's credentials), sealed
    # (runs.sealed) for its runtime host; never answered.
    browser_secrets = models.BinaryField(default=b"", blank=True)
    # Usage, kept current by the write services and settled when the run stops.
    # Events are numbered 1..event_count without gaps, so event_count is also the last seq.
    event_count = models.PositiveIntegerField(default=0)
    command_count = models.PositiveIntegerField(default=0)
    artifact_count = models.PositiveIntegerField(default=0)
    artifact_bytes = models.PositiveBigIntegerField(default=0)
    # Bytes the browser's traffic moved through its host's egress proxy, set at the end.
    network_bytes_in = models.PositiveBigIntegerField(default=0)
    network_bytes_out = models.PositiveBigIntegerField(default=0)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    thumbnail = models.ForeignKey(
        "Artifact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["space", "-id"], name="run_space_recent"),
            models.Index(fields=["space", "status", "-id"], name="run_space_status_recent"),
            models.Index(fields=["runtime", "-id"], name="run_runtime_recent"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def current_duration_ms(self) -> int:
        if self.duration_ms is not None:
            return self.duration_ms
        end = self.ended_at or timezone.now()
        return max(0, int((end - self.started_at).total_seconds() * 1000))


class Event(models.Model):
    id = id_field("evt")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    time = models.DateTimeField()
    type = models.CharField(max_length=100)
    page_id = models.CharField(max_length=100, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_run_seq")]
        indexes = [models.Index(fields=["run", "type", "seq"], name="event_run_type_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"

    def same_content(self, sent: dict[str, Any]) -> bool:
        """Whether `sent`, an event as its client sent it, is this stored event again. A
        `time` the client left out (None) was the server's to fill in: not compared."""
        return (
            self.type == sent["type"]
            and self.page_id == sent["page_id"]
            and (sent["time"] is None or self.time == sent["time"])
            and self.data == sent["data"]
        )


class Command(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = id_field("cmd")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="commands")
    method = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUCCEEDED)
    source = models.CharField(max_length=50, default="cdp", help_text="cdp, platform, invocation")
    page_id = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["run", "started_at", "id"]
        indexes = [models.Index(fields=["run", "started_at", "id"], name="command_run_time")]

    def __str__(self) -> str:
        return f"{self.method} ({self.status})"


def artifact_upload_to(artifact: "Artifact", filename: str) -> str:
    return f"runs/{artifact.run_id}/artifacts/{artifact.id}/{filename}"


class Artifact(models.Model):
    class Kind(models.TextChoices):
        SCREENSHOT = "screenshot"
        DOWNLOAD = "download"
        RECORDING = "recording"
        REPORT = "report"
        EXPORT = "export"
        UPLOAD = "upload"  # put into the browser's uploads folder (POST /v1/runtimes/{id}/files)

    id = id_field("art")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=200, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=artifact_upload_to, max_length=500)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "created_at", "id"]
        indexes = [models.Index(fields=["run", "kind", "created_at"], name="artifact_run_kind")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


class Profile(models.Model):
    """A space's named browser state (cookies, local storage) that a start can load and,
    with `persist`, save back when its run ends (runs.profiles). The state is stored
    encrypted; `domains` says whose it is without the values."""

    id = id_field("prof")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="profiles")
    name = models.CharField(max_length=200)
    state = models.BinaryField(default=b"", help_text="Fernet token of the JSON state")
    size = models.PositiveIntegerField(default=0, help_text="Bytes of the state, encrypted")
    domains = models.JSONField(default=list, blank=True)
    cookie_count = models.PositiveIntegerField(default=0)
    # The one run allowed to save it back (a start with persist); free once that run ended.
    writer_run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    saved_at = models.DateTimeField(null=True, blank=True)
    saved_by_run_id = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="profile_space_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def in_use(self) -> bool:
        """Whether a running run will save into it when it ends."""
        return self.writer_run is not None and self.writer_run.is_active


class FileExport(models.Model):
    """A ZIP of a run's files, built by a Celery task; the result is an `export` artifact."""

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    id = id_field("exp")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="exports")
    name = models.CharField(max_length=200)
    types = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    artifact = models.ForeignKey(
        Artifact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    file_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="export_idempotency",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Handoff(models.Model):
    """An automation's request that a person do a step of its run in the live view (type
    a 2FA code, solve a challenge), and how it ended (runs.handoffs)."""

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    id = id_field("hof")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="handoffs")
    instructions = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    notify = models.BooleanField(default=True, help_text="Sent to the space's webhook")
    requested_by = models.CharField(max_length=200, blank=True, help_text="The API key's name")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run"], condition=models.Q(status="open"), name="handoff_one_open_per_run"
            )
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="handoff_open_expiry")]

    def __str__(self) -> str:
        return self.id


class WebhookDelivery(models.Model):
    """One notice to a space's webhook and its attempts (runs.webhooks)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = id_field("whd")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["space", "-id"], name="webhook_space_recent"),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_due"),
        ]

    def __str__(self) -> str:
        return self.id
