"""Websocket routes of every app, and the largest message a peer may send on each.

`websocket_urlpatterns` serve web pages and sit behind the browser Origin check of
asgi.py. The others check origins themselves:

- `cdp_urlpatterns` serve automation clients, which send no Origin: their credential is
  the connect token or an API key, and a foreign web page (which always sends its
  Origin) is still refused. The runtime host's link has the same rule.
- `live_urlpatterns` serve the live view, whose pages may sit in a space's embed
  origins as well as on ALLOWED_HOSTS (runtimes.liveview checks both, after the lease).
"""

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.urls import URLPattern, path

from runtimes.cdp_proxy import CdpOriginValidator, CdpProxyConsumer
from runtimes.hostlink import HostLinkConsumer, HostStartsConsumer
from runtimes.liveview import LiveViewConsumer

websocket_urlpatterns: list[URLPattern] = []

cdp_urlpatterns: list[URLPattern] = [
    path("cdp/<str:token>", CdpOriginValidator(CdpProxyConsumer.as_asgi()), name="cdp-proxy"),
    path(
        "v1/runtimes/<str:runtime_id>/cdp",
        CdpOriginValidator(CdpProxyConsumer.as_asgi()),
        name="runtime-cdp-proxy",
    ),
    # Browser Run's devtools websockets (runtimes/browser_run.py): acquire and connect, connect
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
    path(
        "ws/host/hosts/<str:host_id>",
        CdpOriginValidator(HostStartsConsumer.as_asgi()),
        name="host-starts",
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

# The largest message a peer may send, per route name: the setting that holds it. CDP
# clients send scripts and files (large); the runtime host sends screencast frames (a few
# hundred KB); a live viewer sends input (small). bctrl's daphne (bctrl_site.webserver)
# applies it to each connection as its handshake arrives, so a larger message is refused
# while it streams in, before it is buffered.
MESSAGE_LIMITS = {
    "cdp-proxy": "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES",
    "runtime-cdp-proxy": "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES",
    "browser-run-cdp": "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES",
    "browser-run-cdp-session": "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES",
    "browser-run-cdp-page": "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES",
    "host-link": "BCTRL_HOST_LINK_MESSAGE_MAX_BYTES",
    "host-starts": "BCTRL_LIVE_MESSAGE_MAX_BYTES",
    "live-embed-ws": "BCTRL_LIVE_MESSAGE_MAX_BYTES",
    "live-ws": "BCTRL_LIVE_MESSAGE_MAX_BYTES",
}
# Any other websocket: a web page's (none yet), or a path no route serves.
PAGE_MESSAGE_MAX_BYTES = 64 * 1024


def message_limit(scope_path: str) -> int:
    """The largest message a peer may send on the websocket at `scope_path` (an ASGI
    scope's `path`), matched as Channels' URLRouter matches it."""
    relative = scope_path.lstrip("/")
    for route in (*cdp_urlpatterns, *live_urlpatterns):
        if route.pattern.match(relative):
            limit: int = getattr(settings, MESSAGE_LIMITS[str(route.name)])
            return limit
    return PAGE_MESSAGE_MAX_BYTES
