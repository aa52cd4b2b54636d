"""The `/v1` API: each app's endpoints under one URL namespace (`api`), composed here, above
the apps, so that no app needs to import another's views."""

from django.urls import path

from recordings import api as recording_api
from recordings import upstream_api
from runs.api import activity as activity_views
from runs.api import profiles, spaces, streams, views
from runtimes import api as runtime_api
from viewers import handoff_api, lease_api

app_name = "api"

urlpatterns = [
    path("runtimes", runtime_api.RuntimeListView.as_view(), name="runtimes"),
    path("runtimes/<str:runtime_id>", runtime_api.RuntimeDetailView.as_view(), name="runtime"),
    path(
        "runtimes/<str:runtime_id>/start",
        runtime_api.RuntimeStartView.as_view(),
        name="runtime-start",
    ),
    path(
        "runtimes/<str:runtime_id>/stop", runtime_api.RuntimeStopView.as_view(), name="runtime-stop"
    ),
    path(
        "runtimes/<str:runtime_id>/files",
        runtime_api.RuntimeFilesView.as_view(),
        name="runtime-files",
    ),
    path(
        "runtimes/<str:runtime_id>/current-run",
        runtime_api.RuntimeCurrentRunView.as_view(),
        name="runtime-current-run",
    ),
    path("spaces/<str:space_id>", spaces.SpaceView.as_view(), name="space"),
    path("spaces/<str:space_id>/webhook", spaces.SpaceWebhookView.as_view(), name="space-webhook"),
    path("profiles", profiles.ProfileListView.as_view(), name="profiles"),
    path("profiles/<str:profile_id>", profiles.ProfileDetailView.as_view(), name="profile"),
    path(
        "spaces/<str:space_id>/upstream",
        upstream_api.SpaceUpstreamView.as_view(),
        name="space-upstream",
    ),
    path("runs", views.RunListView.as_view(), name="runs"),
    path("runs/<str:run_id>", recording_api.RunDetailView.as_view(), name="run"),
    path("runs/<str:run_id>/stop", views.RunStopView.as_view(), name="run-stop"),
    path("runs/<str:run_id>/screenshot", views.RunScreenshotView.as_view(), name="run-screenshot"),
    path("runs/<str:run_id>/events", views.RunEventsView.as_view(), name="run-events"),
    path("runs/<str:run_id>/events/stream", streams.events_stream, name="run-events-stream"),
    path("runs/<str:run_id>/events/wait", streams.events_wait, name="run-events-wait"),
    path("runs/<str:run_id>/activity", activity_views.ActivityView.as_view(), name="run-activity"),
    path("runs/<str:run_id>/activity/stream", streams.activity_stream, name="run-activity-stream"),
    path(
        "runs/<str:run_id>/recording/events",
        recording_api.RecordingEventsView.as_view(),
        name="run-recording-events",
    ),
    path(
        "runs/<str:run_id>/recording",
        lease_api.RecordingViewerView.as_view(),
        name="run-recording-viewer",
    ),
    path("runs/<str:run_id>/handoff", handoff_api.HandoffCreateView.as_view(), name="run-handoff"),
    path("runs/<str:run_id>/handoffs", handoff_api.HandoffListView.as_view(), name="run-handoffs"),
    path(
        "runs/<str:run_id>/handoff/<str:handoff_id>",
        handoff_api.handoff_detail,
        name="run-handoff-detail",
    ),
    path(
        "runs/<str:run_id>/handoff/<str:handoff_id>/complete",
        handoff_api.HandoffEndView.as_view(),
        name="run-handoff-complete",
    ),
    path(
        "runs/<str:run_id>/handoff/<str:handoff_id>/cancel",
        handoff_api.HandoffCancelView.as_view(),
        name="run-handoff-cancel",
    ),
    path("runs/<str:run_id>/live", lease_api.LiveViewerView.as_view(), name="run-live-viewer"),
    path("runs/<str:run_id>/leases", lease_api.RunLeasesView.as_view(), name="run-leases"),
    path("leases/<str:lease_id>/revoke", lease_api.LeaseRevokeView.as_view(), name="lease-revoke"),
    path(
        "runs/<str:run_id>/replay.html",
        recording_api.RunReplayFileView.as_view(),
        name="run-replay-file",
    ),
    path("runs/<str:run_id>/trace.zip", recording_api.RunTraceView.as_view(), name="run-trace"),
    path("runs/<str:run_id>/har", views.RunHarView.as_view(), name="run-har"),
    path("runs/<str:run_id>/commands", views.RunCommandsView.as_view(), name="run-commands"),
    path("runs/<str:run_id>/artifacts", views.RunArtifactsView.as_view(), name="run-artifacts"),
    path(
        "runs/<str:run_id>/artifacts/<str:artifact_id>/content",
        views.ArtifactContentView.as_view(),
        name="artifact-content",
    ),
    path("runs/<str:run_id>/files", views.RunFilesView.as_view(), name="run-files"),
    path("runs/<str:run_id>/files/export", views.RunExportView.as_view(), name="run-export-create"),
    path(
        "runs/<str:run_id>/files/exports/<str:export_id>",
        views.RunExportDetailView.as_view(),
        name="run-export",
    ),
]
