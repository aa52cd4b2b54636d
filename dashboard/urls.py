from django.urls import path

from dashboard import space_pages, views

app_name = "dashboard"

urlpatterns = [
    path("", views.runs_list, name="runs"),
    path("spaces/switch", space_pages.switch_space, name="switch-space"),
    path("runs/<str:run_id>", views.run_detail, name="run"),
    path("runs/<str:run_id>/artifacts/<str:artifact_id>", views.artifact_file, name="artifact"),
    path("runs/<str:run_id>/share", views.run_share, name="run-share"),
    path("runs/<str:run_id>/live", views.run_live, name="run-live"),
    path("leases", space_pages.leases_list, name="leases"),
    path("settings", space_pages.space_settings, name="settings"),
    path("hosts", space_pages.hosts_list, name="hosts"),
    path("leases/<str:lease_id>/revoke", space_pages.lease_revoke, name="lease-revoke"),
]
