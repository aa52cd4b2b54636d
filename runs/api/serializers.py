"""JSON shapes of the runs API (camelCase) and validation of what callers send.

Output is built by plain functions: a list page is a loop over rows already
fetched, with no per-row queries and no per-field serializer machinery.
"""

from typing import Any
from zoneinfo import available_timezones

from django.urls import reverse
from rest_framework import serializers

from runs.exports import BUILT_TYPES
from runs.models import Artifact, Command, Event, FileExport, Run, Runtime, Space
from runs.timestamps import iso

# The smallest and largest page (CSS pixels) a start may ask for.
MIN_VIEWPORT = (200, 200)
MAX_VIEWPORT = (3840, 2160)


def space_json(space: Space) -> dict[str, Any]:
    return {
        "id": space.id,
        "object": "space",
        "name": space.name,
        "slug": space.slug,
        "embedOrigins": space.allowed_embed_origins,
        "recordingRetentionDays": space.recording_retention_days,
        "createdAt": iso(space.created_at),
    }


def runtime_json(runtime: Runtime, *, active_run_id: str | None) -> dict[str, Any]:
    return {
        "id": runtime.id,
        "object": "runtime",
        "spaceId": runtime.space_id,
        "name": runtime.name,
        "status": runtime.status,
        "activeRunId": active_run_id,
        "config": runtime.config,
        "createdAt": iso(runtime.created_at),
    }


def run_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "object": "run",
        "spaceId": run.space_id,
        "runtimeId": run.runtime_id,
        "name": run.name,
        "status": run.status,
        "startedAt": iso(run.started_at),
        "endedAt": iso(run.ended_at),
        "error": run.error,
        "labels": run.labels,
        "metadata": run.metadata,
        "browser": run.browser_options,
        "usage": {
            "durationMs": run.current_duration_ms,
            "commandCount": run.command_count,
            "eventCount": run.event_count,
            "artifactCount": run.artifact_count,
            "artifactBytes": run.artifact_bytes,
            "networkBytesIn": run.network_bytes_in,
            "networkBytesOut": run.network_bytes_out,
        },
        "thumbnailArtifactId": run.thumbnail_id,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "runId": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "time": iso(event.time),
        "pageId": event.page_id or None,
        "data": event.data,
    }


def command_json(command: Command) -> dict[str, Any]:
    return {
        "id": command.id,
        "runId": command.run_id,
        "method": command.method,
        "params": command.params,
        "status": command.status,
        "source": command.source,
        "pageId": command.page_id or None,
        "startedAt": iso(command.started_at),
        "endedAt": iso(command.ended_at),
        "durationMs": command.duration_ms,
        "error": command.error,
    }


def artifact_download_path(artifact: Artifact) -> str:
    return reverse("api:artifact-content", args=[artifact.run_id, artifact.id])


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "runId": artifact.run_id,
        "kind": artifact.kind,
        "name": artifact.name,
        "contentType": artifact.content_type,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "metadata": artifact.metadata,
        "createdAt": iso(artifact.created_at),
        "downloadUrl": artifact_download_path(artifact),
    }


def export_json(export: FileExport) -> dict[str, Any]:
    ready = export.status == FileExport.Status.READY and export.artifact is not None
    return {
        "id": export.id,
        "object": "export",
        "runId": export.run_id,
        "name": export.name,
        "type": export.types,
        "status": export.status,
        "fileCount": export.file_count,
        "artifactId": export.artifact_id,
        "downloadUrl": artifact_download_path(export.artifact)
        if ready and export.artifact
        else None,
        "error": export.error or None,
        "createdAt": iso(export.created_at),
        "finishedAt": iso(export.finished_at),
        "statusUrl": reverse("api:run-export", args=[export.run_id, export.id]),
    }


# The largest count or duration the API stores: what a 32-bit integer column holds (a
# PositiveIntegerField on PostgreSQL), so a larger number is a 422, not a database error.
MAX_COUNT = 2**31 - 1


class Text(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Pattern(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than a silent no-op."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictInteger(serializers.IntegerField):
    """An integer field that refuses text, booleans and fractions instead of converting."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        value: int = super().to_internal_value(data)
        return value


class ViewportSerializer(StrictSerializer):
    width = StrictInteger(min_value=MIN_VIEWPORT[0], max_value=MAX_VIEWPORT[0])
    height = StrictInteger(min_value=MIN_VIEWPORT[1], max_value=MAX_VIEWPORT[1])


def _valid_timezone(value: str) -> None:
    if value not in available_timezones():
        raise serializers.ValidationError("Not an IANA time zone (e.g. Europe/Berlin).")


class ProxySerializer(StrictSerializer):
    """An upstream proxy for a run's traffic: `server` is `http://host:port` or
    `socks5://host:port`; credentials go in `username` and `password`, never in the URL."""

    server = Pattern(
        r"^(http|socks5)://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$|^(http|socks5)://\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$",
        error_messages={"invalid": "http://host:port or socks5://host:port, nothing else."},
    )
    username = Text(max_length=255, required=False, allow_blank=False)
    password = Text(max_length=255, required=False, allow_blank=True)

    def validate_server(self, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise serializers.ValidationError("The port is 1 to 65535.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "password" in attrs and "username" not in attrs:
            raise serializers.ValidationError({"password": ["Needs a username."]})
        return attrs


class BrowserOptionsSerializer(StrictSerializer):
    """What a start may ask of its browser; the runtime host applies it to every page of
    the run (runtime_host.browser), and the run shows it (`browser`)."""

    viewport = ViewportSerializer(required=False)
    userAgent = Pattern(
        r"^[\x20-\x7e]{1,512}$",
        required=False,
        error_messages={"invalid": "Printable ASCII, at most 512 characters."},
    )
    locale = Pattern(
        r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$",
        required=False,
        error_messages={"invalid": "A BCP 47 language tag such as en-US or de-DE."},
    )
    timezone = Text(max_length=64, required=False, validators=[_valid_timezone])
    proxy = ProxySerializer(required=False)


def browser_options_of(data: dict[str, Any]) -> dict[str, Any]:
    """The browser options among validated start fields, as the run shows them: a proxy
    by its server alone (its credentials go sealed to the host: runs.services)."""
    options: dict[str, Any] = {}
    for name in BrowserOptionsSerializer._declared_fields:
        value = data.get(name)
        if value is None:
            continue
        if name == "proxy":
            options[name] = {"server": value["server"]}
        else:
            options[name] = dict(value) if name == "viewport" else value
    return options


class RuntimeCreateSerializer(StrictSerializer):
    name = Text(max_length=200, required=False, allow_blank=True, default="")
    config = serializers.DictField(required=False, default=dict)


class RunCreateSerializer(StrictSerializer):
    runtimeId = Text(max_length=40, required=False, allow_null=True)
    name = Text(max_length=200, required=False, allow_blank=True, default="")
    labels = serializers.DictField(required=False, default=dict)
    metadata = serializers.DictField(required=False, default=dict)


class EventInSerializer(StrictSerializer):
    seq = serializers.IntegerField(
        min_value=1, max_value=MAX_COUNT, required=False, allow_null=True
    )
    type = Pattern(r"^[A-Za-z0-9_.:-]+$", max_length=100)
    time = serializers.DateTimeField(required=False, allow_null=True)
    pageId = Text(max_length=100, required=False, allow_blank=True, allow_null=True)
    # Field names that shadow Serializer attributes are fine at run time: DRF's metaclass
    # moves declared fields off the class.
    data = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]


class EventBatchSerializer(StrictSerializer):
    events = EventInSerializer(many=True, allow_empty=False)


class CommandInSerializer(StrictSerializer):
    id = Pattern(r"^cmd_[0-9a-z]{1,36}$", required=False)
    method = Text(max_length=200)
    params = serializers.DictField(required=False, default=dict)
    status = serializers.ChoiceField(choices=Command.Status.choices, required=False)
    source = Text(max_length=50, required=False)  # type: ignore[assignment]
    pageId = Text(max_length=100, required=False, allow_blank=True, allow_null=True)
    startedAt = serializers.DateTimeField(required=False)
    endedAt = serializers.DateTimeField(required=False, allow_null=True)
    durationMs = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, allow_null=True
    )
    error = serializers.JSONField(required=False, allow_null=True)


class CommandBatchSerializer(StrictSerializer):
    commands = CommandInSerializer(many=True, allow_empty=False, max_length=1000)  # type: ignore[call-arg]


class RunStopSerializer(StrictSerializer):
    status = serializers.ChoiceField(
        choices=[Run.Status.COMPLETED, Run.Status.FAILED], required=False, default="completed"
    )
    error = serializers.JSONField(required=False, allow_null=True)


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    kind = serializers.ChoiceField(
        # A file for the browser goes through POST /v1/runtimes/{id}/files.
        choices=[kind for kind in Artifact.Kind.choices if kind[0] != Artifact.Kind.UPLOAD]
    )
    name = Text(max_length=255, required=False, allow_blank=True)
    contentType = Text(max_length=200, required=False, allow_blank=True)


class RuntimeFileSerializer(serializers.Serializer):
    file = serializers.FileField()
    name = Pattern(r"^[^/\\\x00-\x1f]{1,200}$", required=False)
    contentType = Text(max_length=200, required=False, allow_blank=True)


class ExportRequestSerializer(StrictSerializer):
    name = Pattern(r"^[\w .-]{1,200}$", default="run-files")
    type = serializers.ListField(
        child=serializers.ChoiceField(
            choices=[kind for kind in Artifact.Kind.values if kind != Artifact.Kind.RECORDING]
            + list(BUILT_TYPES)
        ),
        required=False,
        default=list,
        max_length=10,
    )
