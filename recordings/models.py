"""rrweb recordings of a run: batches taken in while it happens, chunks for replay after.

Lifecycle: recording → preparing → processing → ready → archived, and → failed from
preparing/processing; deleted (soft) and expired (retention passed) hide a recording.
"""

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from runs.models import Run, Space, id_field
from runs.sealed import InvalidToken, seal, unseal

MIN_PLAYABLE_MS = 1000
MAX_CAPTURE_MS = 2 * 60 * 60 * 1000


class Recording(models.Model):
    class Status(models.TextChoices):
        RECORDING = "recording"
        PREPARING = "preparing"
        PROCESSING = "processing"
        READY = "ready"
        ARCHIVED = "archived"
        FAILED = "failed"
        DELETED = "deleted"
        EXPIRED = "expired"

    class Tier(models.TextChoices):
        HOT = "hot"
        COLD = "cold"

    id = id_field("rec")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="recordings")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="recordings")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECORDING)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.HOT)
    started_at = models.DateTimeField(default=timezone.now)
    # The earliest rrweb timestamp taken in (ms since the epoch), kept by the ingest for
    # the 2 hour capture limit: the minimum over the batches, without querying them.
    first_timestamp = models.BigIntegerField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Filled by processing.
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    target_count = models.PositiveIntegerField(default=0)
    raw_bytes = models.PositiveBigIntegerField(default=0, help_text="rrweb JSON as received")
    size_bytes = models.PositiveBigIntegerField(default=0, help_text="Stored, compressed")
    gaps = models.JSONField(default=list, blank=True, help_text="Missing batch seqs per target")
    failure_reason = models.TextField(blank=True)
    # The session id on the space's upstream Browser Run account that this recording was
    # imported from by a sync (recordings.imports); blank for every other recording.
    upstream_session_id = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # The Celery task that took it last: the same task delivered again (its worker died
    # mid-way) takes it back at once instead of waiting out the processing timeout.
    processing_task_id = models.CharField(max_length=64, blank=True, default="")
    ready_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["space", "-id"], name="recording_space_recent"),
            models.Index(fields=["run", "-id"], name="recording_run_recent"),
            models.Index(fields=["status", "processing_started_at"], name="recording_status"),
            models.Index(fields=["expires_at"], name="recording_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run"],
                condition=models.Q(status="recording"),
                name="one_active_recording_per_run",
            ),
            # A sync imports each upstream session once per space.
            models.UniqueConstraint(
                fields=["space", "upstream_session_id"],
                condition=~models.Q(upstream_session_id=""),
                name="one_import_per_upstream_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_visible(self) -> bool:
        return self.status not in (self.Status.DELETED, self.Status.EXPIRED)

    def retention_deadline(self) -> datetime | None:
        ended = self.stopped_at or self.run.ended_at
        if ended is None:
            return None
        return ended + timedelta(days=self.space.recording_retention_days)


class RecordingBatch(models.Model):
    """One batch of rrweb events as a recorder sent it: one row and one file per batch."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="batches")
    target = models.CharField(max_length=100)
    seq = models.PositiveIntegerField()
    event_count = models.PositiveIntegerField()
    first_timestamp = models.BigIntegerField(help_text="ms since the epoch, rrweb's clock")
    last_timestamp = models.BigIntegerField()
    raw_bytes = models.PositiveIntegerField()
    stored_bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=300, help_text="Name in the default storage")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording", "target", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "target", "seq"], name="recording_batch_seq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.recording_id}/{self.target}#{self.seq}"


class RecordingTarget(models.Model):
    """The processed replay of one page target: gzip chunks in one file, and their index.

    `index` is a `recordings.rrweb.ChunkIndex` (`{}` for an unplayable target); each
    chunk begins with a Meta and a FullSnapshot, so a player can start at any chunk.
    """

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="targets")
    target = models.CharField(max_length=100)
    playable = models.BooleanField(default=True)
    problem = models.TextField(blank=True, help_text="Why this target cannot be played")
    start_timestamp = models.BigIntegerField(null=True, blank=True)
    end_timestamp = models.BigIntegerField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    raw_bytes = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    path = models.CharField(max_length=300, blank=True)
    index = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["recording", "start_timestamp", "target"]
        constraints = [
            models.UniqueConstraint(fields=["recording", "target"], name="recording_target")
        ]

    def __str__(self) -> str:
        return f"{self.recording_id}/{self.target}"

    @property
    def duration_ms(self) -> int:
        if self.start_timestamp is None or self.end_timestamp is None:
            return 0
        return self.end_timestamp - self.start_timestamp


class UpstreamAccount(models.Model):
    """The upstream Browser Run-compatible account a space syncs recordings from (seed 004):
    Cloudflare's API (`https://api.cloudflare.com/client/v4`) or another bctrl's
    `/client/v4`. One per space.

    The API token is kept encrypted (runs.sealed), since every sync sends it upstream and
    so must open it; it is never shown back (answers and pages say only that it is set and
    its last four characters), never put in a URL, a log line or an error message, and
    `__str__`/`repr` leave it out.
    """

    space = models.OneToOneField(
        Space, on_delete=models.CASCADE, primary_key=True, related_name="upstream_account"
    )
    base_url = models.CharField(max_length=500)
    account_id = models.CharField(max_length=100)
    api_token_sealed = models.TextField(editable=False, default="")  # see api_token
    token_last_four = models.CharField(max_length=4, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account_id} at {self.base_url}"

    @property
    def api_token(self) -> str:
        """The token, opened; "" when it is not set or no key of this deployment opens it
        (SECRET_KEY changed without a fallback: the settings page asks for it again)."""
        if not self.api_token_sealed:
            return ""
        try:
            return str(unseal(self.api_token_sealed.encode()))
        except InvalidToken:
            return ""

    @api_token.setter
    def api_token(self, value: str) -> None:
        self.api_token_sealed = seal(value).decode()


class UpstreamSessionSkip(models.Model):
    """An upstream session that still had no viewable recording well after it closed
    (recording is opt-in on Browser Run: most sessions never have one), so that a sync
    does not ask for it again. Cleared when the space links another upstream account."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=100)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "session_id"], name="one_skip_per_session")
        ]

    def __str__(self) -> str:
        return f"{self.session_id} (no recording)"


class RecordingFrames(models.Model):
    """One batch of a page target's screencast frames as the runtime host sent it: JPEG
    pictures with the time each was shown, in one file (recordings.video's format), kept
    until the target's video is encoded."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="frames")
    target = models.CharField(max_length=100)
    seq = models.PositiveIntegerField()
    frame_count = models.PositiveIntegerField()
    first_ms = models.BigIntegerField(help_text="ms since the epoch of the first frame")
    last_ms = models.BigIntegerField()
    size_bytes = models.PositiveIntegerField()
    path = models.CharField(max_length=300, help_text="Name in the default storage")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording", "target", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "target", "seq"], name="recording_frames_seq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.recording_id}/{self.target} frames #{self.seq}"


class RecordingVideo(models.Model):
    """The H.264 MP4 of one page target, encoded from its frames once the recording is
    ready (recordings.video). It spans `start_ms` to `end_ms` (epoch ms, the replay's
    clock): second s of the video is what the tab showed at start_ms + 1000 s."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ENCODING = "encoding"
        READY = "ready"
        FAILED = "failed"

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="videos")
    target = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    start_ms = models.BigIntegerField(null=True, blank=True)
    end_ms = models.BigIntegerField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(default=0, help_text="Frames the host captured")
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    path = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    encoding_started_at = models.DateTimeField(null=True, blank=True)
    encoded_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording", "start_ms", "target"]
        constraints = [
            models.UniqueConstraint(fields=["recording", "target"], name="recording_video")
        ]

    def __str__(self) -> str:
        return f"{self.recording_id}/{self.target} video ({self.status})"

    @property
    def duration_ms(self) -> int:
        if self.start_ms is None or self.end_ms is None:
            return 0
        return self.end_ms - self.start_ms
