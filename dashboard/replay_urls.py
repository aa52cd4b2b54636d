from django.urls import path

from dashboard import views as pages
from recordings import views

app_name = "replay"

urlpatterns = [
    path("runs/<str:run_id>/replay", pages.replay_page, name="page"),
    path("runs/<str:run_id>/replay/manifest", views.replay_manifest, name="manifest"),
    path("runs/<str:run_id>/replay/inspector", views.replay_inspector, name="inspector"),
    path("runs/<str:run_id>/replay/<str:target>/chunks", views.replay_chunks, name="chunks"),
    path("runs/<str:run_id>/replay/<str:target>/live", views.replay_live, name="live"),
    path("runs/<str:run_id>/replay/<str:target>/video", views.replay_video, name="video"),
]
