"""Routes of the recordings API of seed 004 (`/api/v1/…`) and the Browser Run read (seed 003).

Included at the site root by bctrl_site/urls.py, so each pattern carries its full prefix.
"""

from django.urls import path

from recordings import seed_api as views

app_name = "seed_api"

urlpatterns = [
    path(
        "api/v1/rooms/<str:room_id>/recordings/start",
        views.RoomRecordingStartView.as_view(),
        name="room-recordings-start",
    ),
    path(
        "api/v1/rooms/<str:room_id>/recordings/stop",
        views.RoomRecordingStopView.as_view(),
        name="room-recordings-stop",
    ),
    path(
        "api/v1/rooms/<str:room_id>/recordings/sync",
        views.RoomRecordingSyncView.as_view(),
        name="room-recordings-sync",
    ),
    path(
        "api/v1/rooms/<str:room_id>/recordings/import",
        views.RoomRecordingImportView.as_view(),
        name="room-recordings-import",
    ),
    path("api/v1/recordings", views.RecordingListView.as_view(), name="recordings"),
    path(
        "api/v1/recordings/<str:recording_id>",
        views.RecordingDetailView.as_view(),
        name="recording",
    ),
    path(
        "api/v1/recordings/<str:recording_id>/download",
        views.RecordingDownloadView.as_view(),
        name="recording-download",
    ),
    path(
        "api/v1/recordings/<str:recording_id>/file",
        views.RecordingFileView.as_view(),
        name="recording-file",
    ),
    path(
        "api/v1/recordings/<str:recording_id>/archive",
        views.RecordingArchiveView.as_view(),
        name="recording-archive",
    ),
    path(
        "api/v1/recordings/<str:recording_id>/recover",
        views.RecordingRecoverView.as_view(),
        name="recording-recover",
    ),
    path(
        "client/v4/accounts/<str:space_id>/browser-rendering/recording/<str:run_id>",
        views.BrowserRunRecordingView.as_view(),
        name="browser-run-recording",
    ),
]
