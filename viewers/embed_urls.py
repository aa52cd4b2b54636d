"""Viewer embeds (viewers/embeds.py): one opaque URL per lease, no session."""

from django.urls import path

from viewers import embeds

app_name = "embed"

urlpatterns = [
    path("embed/replay/<str:token>", embeds.replay_page, name="replay"),
    path("embed/replay/<str:token>/manifest", embeds.replay_manifest, name="replay-manifest"),
    path(
        "embed/replay/<str:token>/chunks/<str:target>",
        embeds.replay_chunks,
        name="replay-chunks",
    ),
    path("embed/replay/<str:token>/inspector", embeds.replay_inspector, name="replay-inspector"),
    path("embed/replay/<str:token>/live/<str:target>", embeds.replay_live, name="replay-live"),
    path("embed/replay/<str:token>/video/<str:target>", embeds.replay_video, name="replay-video"),
    path(
        "embed/replay/<str:token>/replay.html",
        embeds.replay_file_download,
        name="replay-file",
    ),
    path("embed/replay/<str:token>/network.har", embeds.replay_har, name="replay-har"),
    path("embed/replay/<str:token>/trace.zip", embeds.replay_trace, name="replay-trace"),
    path("embed/activity/<str:token>", embeds.activity_page, name="activity"),
    path("embed/activity/<str:token>/stream", embeds.activity_stream, name="activity-stream"),
    path("embed/live/<str:token>", embeds.live_page, name="live"),
    path("embed/live/<str:token>/replay", embeds.live_replay, name="live-replay"),
]
