"""Websocket routes of every app.

`websocket_urlpatterns` serve web pages (live view, …) and sit behind the browser Origin
check of asgi.py. `cdp_urlpatterns` serve automation clients, which send no Origin:
their credential is the connect token or an API key, and a foreign web page (which
always sends its Origin) is still refused.
"""

from django.urls import URLPattern, path

from runs.consumers import CdpOriginValidator, CdpProxyConsumer

websocket_urlpatterns: list[URLPattern] = []

cdp_urlpatterns: list[URLPattern] = [
    path("cdp/<str:token>", CdpOriginValidator(CdpProxyConsumer.as_asgi()), name="cdp-proxy"),
    path(
        "v1/runtimes/<str:runtime_id>/cdp",
        CdpOriginValidator(CdpProxyConsumer.as_asgi()),
        name="runtime-cdp-proxy",
    ),
]
