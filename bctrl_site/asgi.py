import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bctrl_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from bctrl_site.bodies import RequestBodies  # noqa: E402
from bctrl_site.mcp_route import McpRoute  # noqa: E402
from recordings.ingest_route import RecordingIngestRoute  # noqa: E402
from runtimes.routing import (  # noqa: E402
    cdp_urlpatterns,
    live_urlpatterns,
    websocket_urlpatterns,
)

application = ProtocolTypeRouter(
    {
        # The rrweb ingest's POSTs on a route of their own, outside the middleware chain
        # (see recordings/ingest_route.py); the MCP server at /mcp, whose tools call the
        # API in process (bctrl_site/mcp_route.py); every other request to Django, with
        # a chunked body made readable (bctrl_site/bodies.py).
        "http": RecordingIngestRoute(McpRoute(RequestBodies(django_asgi_app))),
        # The CDP proxy and the live view first, with Origin rules of their own (see
        # runtimes/routing.py); every other websocket is for web pages and needs an
        # Origin of ALLOWED_HOSTS.
        "websocket": URLRouter(
            [
                *cdp_urlpatterns,
                *live_urlpatterns,
                re_path(r"^", AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns))),
            ]
        ),
    }
)

# Everything loaded so far (Django, the apps: ~120,000 objects) lives as long as the
# process: moved out of the cyclic garbage collector's generations, so that its full
# collections stop walking it again each time. Requests that allocate many objects trigger
# them often (an rrweb batch parses into ~10,000 dicts and lists): measured with 4 batches
# of 500 events in flight, orjson.loads took 1.7-2.1 ms a batch with the loaded project
# tracked, 0.8 ms frozen. (A larger threshold for the youngest generation saved another
# 0.25 ms, but collections then come too seldom for the database connections that sync
# views leave in reference cycles under ASGI: PostgreSQL ran out of connections.)
gc.freeze()
