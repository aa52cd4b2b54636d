"""Websocket routes of every app.

`websocket_urlpatterns` serve web pages and sit behind the browser Origin check of
asgi.py. The others check origins themselves:

- `cdp_urlpatterns` serve automation clients, which send no Origin: their credential is
  the connect token or an API key, and a foreign web page (which always sends its
  Origin) is still refused. The runtime host's link has the same rule.
- `live_urlpatterns` serve the live view, whose pages may sit in a space's embed
  origins as well as on ALLOWED_HOSTS (runs.liveview checks both, after the lease).
"""

from channels.auth import AuthMiddlewareStack
from django.urls import URLPattern, path

from runs.consumers import CdpOriginValidator, CdpProxyConsumer
from runs.liveview import HostLinkConsumer, LiveViewConsumer

websocket_urlpatterns: list[URLPattern] = []

cdp_urlpatterns: list[URLPattern] = [
    path("cdp/<str:token>", CdpOriginValidator(CdpProxyConsumer.as_asgi()), name="cdp-proxy"),
    path(
        "v1/runtimes/<str:runtime_id>/cdp",
        CdpOriginValidator(CdpProxyConsumer.as_asgi()),
        name="runtime-cdp-proxy",
    ),
    # Browser Run's devtools websockets (runs/browser_run.py): acquire and connect, connect
    # to a session, connect to one page of it.
    *(
        path(
            f"client/v4/accounts/<str:account_id>/browser-rendering/devtools/browser{tail}",
            CdpOriginValidator(CdpProxyConsumer.as_asgi()),
            name=f"browser-run-cdp{name}",
        )
        for tail, name in (
            ("", ""),
            ("/<str:session_id>", "-session"),
            ("/<str:session_id>/page/<str:target_id>", "-page"),
        )
    ),
    path(
        "ws/host/runtimes/<str:runtime_id>",
        CdpOriginValidator(HostLinkConsumer.as_asgi()),
        name="host-link",
    ),
]

live_urlpatterns: list[URLPattern] = [
    path("ws/live/<str:token>", LiveViewConsumer.as_asgi(), name="live-embed-ws"),
    path(
        "ws/runs/<str:run_id>/live",
        AuthMiddlewareStack(LiveViewConsumer.as_asgi()),
        name="live-ws",
    ),
]
