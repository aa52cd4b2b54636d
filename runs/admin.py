from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from runs.models import (
    ApiKey,
    Artifact,
    Command,
    Event,
    FileExport,
    Membership,
    Run,
    Runtime,
    Space,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records: viewable and deletable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "id", "recording_retention_days", "created_at"]
    search_fields = ["name", "slug", "id"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "space", "role", "created_at"]
    list_filter = ["role", "space"]
    search_fields = ["user__username", "space__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "masked", "space", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["space", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "id", "last_four"]
    readonly_fields = ["id", "masked", "key_hash", "last_four", "created_at", "last_used_at"]
    fields = ["id", "space", "name", "masked", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Keys are issued by `manage.py create_api_key`, which shows the raw key once.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@admin.register(Runtime)
class RuntimeAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "space", "status", "created_at"]
    list_filter = ["status", "space"]
    search_fields = ["id", "name"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "space",
        "runtime",
        "status",
        "started_at",
        "ended_at",
        "event_count",
        "command_count",
        "artifact_bytes",
    ]
    list_filter = ["status", "space", "started_at"]
    search_fields = ["id", "name", "runtime__id"]
    date_hierarchy = "started_at"
    list_select_related = ["space", "runtime"]
    readonly_fields = [
        "id",
        "space",
        "runtime",
        "started_at",
        "ended_at",
        "event_count",
        "command_count",
        "artifact_count",
        "artifact_bytes",
        "duration_ms",
        "thumbnail",
    ]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "type", "page_id", "time"]
    list_filter = ["type"]
    search_fields = ["run__id", "type", "page_id"]
    list_select_related = ["run"]
    show_full_result_count = False


@admin.register(Command)
class CommandAdmin(ReadOnlyAdmin):
    list_display = ["run", "method", "status", "source", "started_at", "duration_ms"]
    list_filter = ["status", "source"]
    search_fields = ["run__id", "method"]
    list_select_related = ["run"]
    show_full_result_count = False


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "run", "content_type", "size", "created_at"]
    list_filter = ["kind", "content_type"]
    search_fields = ["name", "run__id", "sha256"]
    list_select_related = ["run"]


@admin.register(FileExport)
class FileExportAdmin(ReadOnlyAdmin):
    list_display = ["name", "run", "status", "file_count", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["name", "run__id", "idempotency_key"]
