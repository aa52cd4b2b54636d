from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

from bctrl_site.recorder_script import recorder_script
from dashboard import views as dashboard_views
from dashboard.signin import guard_sign_in

handler400 = "runs.errors.handler400"
handler404 = "runs.errors.handler404"
handler500 = "runs.errors.handler500"

urlpatterns = [
    # The in-page recorder, for the Python client's local recorder (bctrl.record).
    path("v1/recorder.js", recorder_script, name="recorder-script"),
    path("v1/", include("bctrl_site.api_urls")),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    # Recordings API of seed 004 (/api/v1/…) and Browser Run of seed 003 (/client/v4/…).
    path("", include("recordings.seed_urls")),
    # Browser Run's session API (seed 003, as the `cloudflare` package calls it).
    path("", include("runtimes.browser_run")),
    path("docs/", dashboard_views.api_docs, name="api-docs"),
    # Sign-in throttled (dashboard/signin.py): the admin's login first, before its other pages.
    path("admin/login/", guard_sign_in(admin.site.login)),
    path("admin/", admin.site.urls),
    path("login/", guard_sign_in(dashboard_views.SignInView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.replay_urls")),
    # Files a person in the live view picks for a page's file chooser (a ticket, no session).
    path("", include("runtimes.live_files")),
    # Viewer embeds opened by a lease token (/embed/…), no session.
    path("", include("viewers.embed_urls")),
    # The public demo shop that `manage.py demo` drives (demo/shop.py).
    path("demo/", include("demo.shop")),
    path("", include("dashboard.urls")),
]
