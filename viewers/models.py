"""Viewer leases: short-lived, signed, revocable grants to watch one run's replay, live
view or activity, and the credential of a runtime's connectUrl."""

from django.conf import settings
from django.db import models

from recordings.models import Recording
from runs.models import Run, Space, id_field


class ViewerLease(models.Model):
    """A short-lived grant to view one run's replay, live view or activity stream.

    The credential is the URL: a random secret, signed (Django's signing, with key
    rotation through SECRET_KEY_FALLBACKS); only the secret's hash is stored, so the row
    alone cannot rebuild a URL, and the URL carries no id.
    """

    class Kind(models.TextChoices):
        REPLAY = "replay"
        LIVE = "live"
        ACTIVITY = "activity"
        CDP = "cdp"  # the credential of a runtime's connectUrl, revoked when its run ends

    class Control(models.TextChoices):
        NONE = "none"
        INPUT = "input"

    id = id_field("lse")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="viewer_leases")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="viewer_leases")
    recording = models.ForeignKey(
        Recording, on_delete=models.CASCADE, null=True, blank=True, related_name="leases"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    control = models.CharField(max_length=10, choices=Control.choices, default=Control.NONE)
    components = models.JSONField(default=list, blank=True)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_key = models.ForeignKey(
        "runs.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    first_used_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)

    class Meta:
        # The table keeps the name it had while the model lived in recordings (moved by
        # state-only migrations: recordings 0008, viewers 0001).
        db_table = "recordings_viewerlease"
        ordering = ["-id"]
        indexes = [models.Index(fields=["space", "expires_at"], name="lease_space_expiry")]

    def __str__(self) -> str:
        return f"{self.kind} lease {self.id} on {self.run_id}"

    @property
    def creator(self) -> str:
        if self.created_by_key_id:
            return f"API key {self.created_by_key_id}"
        if self.created_by_user_id:
            return f"user {self.created_by_user_id}"
        return "unknown"
