from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from runs.admin import ReadOnlyAdmin
from viewers.leases import lease_revoke
from viewers.models import ViewerLease


@admin.register(ViewerLease)
class ViewerLeaseAdmin(ReadOnlyAdmin):
    """Leases are minted by the API and the dashboard, and only ever revoked by hand: the
    row holds a hash of the secret, never the URL. Kept for the record, so not deletable."""

    list_display = [
        "id",
        "kind",
        "control",
        "run",
        "space",
        "expires_at",
        "revoked_at",
        "use_count",
        "last_used_at",
        "creator",
    ]
    list_filter = ["kind", "control", "space", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "run__id"]
    list_select_related = ["run", "space"]
    date_hierarchy = "created_at"
    exclude = ["secret_hash"]
    actions = ["revoke"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected viewer leases")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ViewerLease]) -> None:
        revoked = 0
        for lease in queryset.filter(revoked_at__isnull=True):
            lease_revoke(lease=lease)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} viewer lease(s).", messages.SUCCESS)
