"""OpenAPI descriptions of the runs API's shapes, for /v1/openapi.json and /docs/.

The API builds its JSON with the plain functions of `serializers.py`; these classes only
describe those shapes to drf-spectacular, and a test checks that they match.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "runs.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "bctrl_sk_…"}


def _shape(name: str, fields: dict[str, serializers.Field]) -> type[serializers.Serializer]:
    """A serializer class named `name` (the component name in the schema)."""
    return type(name, (serializers.Serializer,), dict(fields))


def _any(**kwargs: Any) -> serializers.JSONField:
    return serializers.JSONField(**kwargs)


Usage = _shape(
    "Usage",
    {
        "durationMs": serializers.IntegerField(),
        "commandCount": serializers.IntegerField(),
        "eventCount": serializers.IntegerField(),
        "artifactCount": serializers.IntegerField(),
        "artifactBytes": serializers.IntegerField(),
        "networkBytesIn": serializers.IntegerField(),
        "networkBytesOut": serializers.IntegerField(),
    },
)
RunOut = _shape(
    "Run",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "spaceId": serializers.CharField(),
        "runtimeId": serializers.CharField(allow_null=True),
        "name": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["running", "completed", "failed"]),
        "startedAt": serializers.DateTimeField(),
        "endedAt": serializers.DateTimeField(allow_null=True),
        "error": _any(allow_null=True),
        "labels": serializers.DictField(),
        "metadata": serializers.DictField(),
        "browser": serializers.DictField(
            help_text="The browser options of its start: viewport, userAgent, locale, "
            "timezone, proxy {server}, profile {id, name, persist}"
        ),
        "usage": Usage(),
        "thumbnailArtifactId": serializers.CharField(allow_null=True),
    },
)
RunDetailOut = _shape(
    "RunDetail",
    {
        **RunOut().fields,
        "recording": _shape(
            "RunRecording",
            {
                "id": serializers.CharField(allow_null=True),
                "status": serializers.ChoiceField(
                    choices=["not_available", "preparing", "processing", "ready", "failed"]
                ),
                "durationMs": serializers.IntegerField(allow_null=True),
            },
        )(),
    },
)
RuntimeOut = _shape(
    "Runtime",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "spaceId": serializers.CharField(),
        "name": serializers.CharField(),
        "status": serializers.CharField(),
        "activeRunId": serializers.CharField(allow_null=True),
        "config": serializers.DictField(),
        "createdAt": serializers.DateTimeField(),
    },
)
RuntimeDetailOut = _shape(
    "RuntimeDetail",
    {
        **RuntimeOut().fields,
        "failureReason": serializers.CharField(allow_null=True),
        "recording": serializers.BooleanField(),
        "keepAliveMs": serializers.IntegerField(allow_null=True),
        "clientCount": serializers.IntegerField(),
    },
)
RuntimeStartOut = _shape(
    "RuntimeStart",
    {
        "connectUrl": serializers.CharField(
            help_text="ws[s]://<host>/cdp/<token>: pass to chromium.connect_over_cdp"
        ),
        "runId": serializers.CharField(),
        "runtimeId": serializers.CharField(),
        "status": serializers.CharField(),
    },
)
EventOut = _shape(
    "Event",
    {
        "id": serializers.CharField(),
        "runId": serializers.CharField(),
        "seq": serializers.IntegerField(),
        "type": serializers.CharField(),
        "time": serializers.DateTimeField(),
        "pageId": serializers.CharField(allow_null=True),
        "data": serializers.DictField(),
    },
)
CommandOut = _shape(
    "Command",
    {
        "id": serializers.CharField(),
        "runId": serializers.CharField(),
        "method": serializers.CharField(),
        "params": serializers.DictField(),
        "status": serializers.ChoiceField(choices=["pending", "succeeded", "failed"]),
        "source": serializers.CharField(),
        "pageId": serializers.CharField(allow_null=True),
        "startedAt": serializers.DateTimeField(),
        "endedAt": serializers.DateTimeField(allow_null=True),
        "durationMs": serializers.IntegerField(allow_null=True),
        "error": _any(allow_null=True),
    },
)
ArtifactOut = _shape(
    "Artifact",
    {
        "id": serializers.CharField(),
        "runId": serializers.CharField(),
        "kind": serializers.CharField(),
        "name": serializers.CharField(),
        "contentType": serializers.CharField(),
        "size": serializers.IntegerField(),
        "sha256": serializers.CharField(),
        "metadata": serializers.DictField(),
        "createdAt": serializers.DateTimeField(),
        "downloadUrl": serializers.CharField(),
    },
)
ExportOut = _shape(
    "Export",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "runId": serializers.CharField(),
        "name": serializers.CharField(),
        "type": serializers.ListField(child=serializers.CharField()),
        "status": serializers.ChoiceField(choices=["pending", "ready", "failed"]),
        "fileCount": serializers.IntegerField(),
        "artifactId": serializers.CharField(allow_null=True),
        "downloadUrl": serializers.CharField(allow_null=True),
        "error": serializers.CharField(allow_null=True),
        "createdAt": serializers.DateTimeField(),
        "finishedAt": serializers.DateTimeField(allow_null=True),
        "statusUrl": serializers.CharField(),
    },
)
ActivityItem = _shape(
    "ActivityItem",
    {
        "id": serializers.CharField(),
        "time": serializers.DateTimeField(),
        "type": serializers.CharField(),
        "message": serializers.CharField(),
        "status": serializers.CharField(),
        "severity": serializers.ChoiceField(choices=["info", "warning", "error"]),
        "durationMs": serializers.IntegerField(allow_null=True),
        "pageId": serializers.CharField(allow_null=True),
        "role": serializers.CharField(
            allow_null=True, help_text="The role of the element a step touched (button, textbox…)"
        ),
        "name": serializers.CharField(
            allow_null=True, help_text="The accessible name of the element a step touched"
        ),
        "children": serializers.ListField(child=serializers.DictField()),
        "source": serializers.DictField(),
    },
)
ActivityList = _shape(
    "ActivityList",
    {"data": ActivityItem(many=True), "truncated": serializers.BooleanField()},
)
AppendResult = _shape(
    "AppendResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "nextSeq": serializers.IntegerField(),
    },
)
RecordingVideoOut = _shape(
    "RecordingVideo",
    {
        "target": serializers.CharField(help_text="The tab's page target id"),
        "url": serializers.URLField(
            help_text="The MP4 (video/mp4, Range requests), good as long as the viewer URL"
        ),
        "durationMs": serializers.IntegerField(),
        "bytes": serializers.IntegerField(),
        "width": serializers.IntegerField(),
        "height": serializers.IntegerField(),
        "startMs": serializers.IntegerField(
            help_text="Where the video starts on the replay's clock (epoch ms)"
        ),
    },
)
RecordingViewerOut = _shape(
    "RecordingViewer",
    {
        "iframeUrl": serializers.URLField(),
        "url": serializers.URLField(help_text="The same URL as iframeUrl (seed 001's name)"),
        "activityStreamUrl": serializers.URLField(
            required=False, help_text='Only when components includes "activity"'
        ),
        "status": serializers.ChoiceField(
            choices=["not_available", "preparing", "processing", "ready", "failed"]
        ),
        "durationMs": serializers.IntegerField(allow_null=True),
        "videos": RecordingVideoOut(
            many=True, help_text="One MP4 per recorded tab once encoded, first tab first"
        ),
        "replayFileUrl": serializers.URLField(
            help_text="The self-contained replay file (HTML), on the same lease"
        ),
        "harUrl": serializers.URLField(
            required=False, help_text="The network log as HAR 1.2 (with `network`)"
        ),
        "traceUrl": serializers.URLField(
            required=False,
            help_text="The Playwright trace (with `activity`, `network` and `console`)",
        ),
        "expiresAt": serializers.DateTimeField(),
    },
)
LiveViewerOut = _shape(
    "LiveViewer", {"url": serializers.URLField(), "expiresAt": serializers.DateTimeField()}
)
LeaseOut = _shape(
    "ViewerLease",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "runId": serializers.CharField(),
        "kind": serializers.ChoiceField(choices=["replay", "live", "activity"]),
        "control": serializers.ChoiceField(choices=["none", "input"]),
        "components": serializers.ListField(child=serializers.CharField()),
        "status": serializers.ChoiceField(choices=["active", "expired", "revoked"]),
        "expiresAt": serializers.DateTimeField(),
        "createdAt": serializers.DateTimeField(),
        "createdBy": _shape(
            "ViewerLeaseCreator",
            {
                "type": serializers.ChoiceField(choices=["apiKey", "user"]),
                "id": serializers.CharField(),
                "name": serializers.CharField(),
            },
        )(allow_null=True),
        "revokedAt": serializers.DateTimeField(allow_null=True),
        "firstUsedAt": serializers.DateTimeField(allow_null=True),
        "lastUsedAt": serializers.DateTimeField(allow_null=True),
        "useCount": serializers.IntegerField(),
    },
)
Error = _shape(
    "Error",
    {
        "error": _shape(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": _any(required=False),
            },
        )()
    },
)


def page_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return _shape(
        f"{name}Page",
        {
            "data": item(many=True),
            "hasMore": serializers.BooleanField(),
            "nextCursor": serializers.CharField(allow_null=True),
        },
    )


def list_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return _shape(f"{name}List", {"data": item(many=True)})


ERRORS = {
    code: OpenApiResponse(Error, description=description)
    for code, description in [
        (400, "Body not acceptable JSON (malformed, not an object, too deep) or bad gzip"),
        (401, "Missing, invalid or revoked API key"),
        (404, "Unknown id, or an id of another space"),
        (409, "Conflict with the current state"),
        (413, "Body, event or upload too large"),
        (415, "Unsupported media type or content encoding"),
        (422, "Invalid fields"),
        (
            429,
            "Rate limited (rate_limited), or every runtime host full (runtime.capacity); "
            "with Retry-After",
        ),
        (502, "The browser failed (runtime.start_failed, runtime.screenshot_failed)"),
        (503, "No runtime host runs (runtime.no_host) or took the start (runtime.start_timeout)"),
    ]
}

PAGING = [
    OpenApiParameter("limit", int, description="Page size"),
    OpenApiParameter("cursor", str, description="`nextCursor` of the previous page"),
]
EVENT_FILTERS = [
    OpenApiParameter("type", str, description="Event types, comma-separated"),
    OpenApiParameter("pageId", str, description="Only events of this page target"),
    OpenApiParameter("after", int, description="Only events with a greater seq"),
]
