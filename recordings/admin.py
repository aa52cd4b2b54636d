from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from recordings.models import Recording, RecordingBatch, RecordingTarget
from runs.admin import ReadOnlyAdmin

TARGET_FIELDS = [
    "target",
    "playable",
    "problem",
    "start_timestamp",
    "end_timestamp",
    "event_count",
    "raw_bytes",
    "size_bytes",
    "path",
]


class RecordingTargetInline(admin.TabularInline):
    model = RecordingTarget
    extra = 0
    can_delete = False
    show_change_link = True
    fields = tuple(TARGET_FIELDS)
    readonly_fields = tuple(TARGET_FIELDS)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    """Recordings change through the lifecycle services and tasks, not by hand."""

    list_display = [
        "id",
        "run",
        "space",
        "status",
        "tier",
        "started_at",
        "duration_ms",
        "event_count",
        "target_count",
        "size_bytes",
        "attempts",
    ]
    list_filter = ["status", "tier", "space"]
    search_fields = ["id", "run__id"]
    list_select_related = ["run", "space"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "id",
        "space",
        "run",
        "status",
        "tier",
        "started_at",
        "stopped_at",
        "duration_ms",
        "event_count",
        "target_count",
        "raw_bytes",
        "size_bytes",
        "gaps",
        "failure_reason",
        "attempts",
        "processing_started_at",
        "ready_at",
        "archived_at",
        "deleted_at",
        "expires_at",
        "created_at",
    ]
    inlines = [RecordingTargetInline]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RecordingBatch)
class RecordingBatchAdmin(ReadOnlyAdmin):
    list_display = [
        "recording",
        "target",
        "seq",
        "event_count",
        "first_timestamp",
        "last_timestamp",
        "raw_bytes",
        "stored_bytes",
        "created_at",
    ]
    search_fields = ["recording__id", "target", "sha256"]
    list_select_related = ["recording"]
    show_full_result_count = False


@admin.register(RecordingTarget)
class RecordingTargetAdmin(ReadOnlyAdmin):
    list_display = [
        "recording",
        "target",
        "playable",
        "start_timestamp",
        "end_timestamp",
        "event_count",
        "size_bytes",
    ]
    list_filter = ["playable"]
    search_fields = ["recording__id", "target"]
    list_select_related = ["recording"]
