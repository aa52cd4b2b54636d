"""The live view through a channel layer outage: a web process and a runtime host on a
Redis of the test's own (either Redis layer), a viewer's live page in real Chromium, and
Redis restarted under them. (A layer that fails in process: tests/test_live_view.py.)"""

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bctrl import Bctrl
from django.conf import settings
from django.db import connections

from runs.models import Run
from tests.conftest import (
    CHROMIUM,
    RedisServer,
    Tenant,
    start_host_process,
    start_web_process,
    stop_host_process,
)
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# A page that changes ten times a second, so the screencast keeps sending frames.
TICKING_PAGE = """<!doctype html><title>Ticking</title>
<h1 id="now" style="font-size: 64px"></h1>
<script>setInterval(() => { now.textContent = String(Date.now()); }, 100);</script>"""


@pytest.fixture(
    params=[
        "channels_redis.pubsub.RedisPubSubChannelLayer",  # the default with REDIS_URL
        "channels_redis.core.RedisChannelLayer",  # BCTRL_CHANNEL_LAYER=core
    ]
)
def web_on_redis(
    request: Any, settings: Any, redis_server: RedisServer, transactional_db: None
) -> Iterator[str]:
    """A web process and a runtime host, their channel layer on `redis_server`."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": request.param,
            "CONFIG": {"hosts": [redis_server.url], "prefix": "bctrl-outage"},
        }
    }
    settings.BCTRL_LIVE_RECHECK_S = 1
    settings.BCTRL_LIVE_WATCH_TTL_S = 3  # how long the host casts after a viewer's last watch
    connections.close_all()  # each child opens its own connections
    web = start_web_process(settings)
    url = f"http://127.0.0.1:{web.port.value}"
    settings.BCTRL_HOST_LINK_URL = url.replace("http://", "ws://", 1)
    host = start_host_process()
    try:
        yield url
    finally:
        stop_host_process(host)
        web.terminate()
        web.join(10)


def frames_shown(page: Any) -> int:
    return int(page.get_attribute("[data-live-view]", "data-frames") or 0)


def frames_arrive(page: Any, more_than: int, timeout_s: float) -> None:
    page.wait_for_function(
        "(n) => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > n",
        arg=more_than,
        timeout=timeout_s * 1000,
    )


def test_an_open_live_view_resumes_by_itself_after_a_redis_restart(
    web_on_redis: str, redis_server: RedisServer, tenant: Tenant, chromium: Any
) -> None:
    client = Bctrl(api_key=tenant.raw_key, base_url=web_on_redis)
    runtime = client.runtimes.create(name="outage")
    started = client.runtimes.start(runtime.id).raw
    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    automation.new_context().new_page().set_content(TICKING_PAGE)
    run = Run.objects.get(pk=started["runId"])
    token = lease_mint(run=run, kind=ViewerLease.Kind.LIVE).token

    viewer = chromium.new_context().new_page()
    viewer.goto(f"{web_on_redis}/embed/live/{token}")
    frames_arrive(viewer, 5, 20)
    # Every state the page shows from now on.
    viewer.evaluate(
        """() => {
            const view = document.querySelector("[data-live-view]");
            window.states = [];
            new MutationObserver(() => window.states.push(view.dataset.state))
                .observe(view, {attributes: true, attributeFilter: ["data-state"]});
        }"""
    )

    redis_server.stop()
    time.sleep(3)
    redis_server.start()

    # Frames come again to the page that stayed open (no reload), within seconds, and keep
    # coming after the host's watch of the earlier connection has expired.
    frames_arrive(viewer, frames_shown(viewer) + 10, 20)
    time.sleep(settings.BCTRL_LIVE_WATCH_TTL_S + 1)
    frames_arrive(viewer, frames_shown(viewer) + 10, 10)
    assert viewer.get_attribute("[data-live-view]", "data-state") == "live"
    assert viewer.evaluate("performance.getEntriesByType('navigation').length") == 1
    # Meanwhile the page said that it was reconnecting.
    assert "connecting" in viewer.evaluate("window.states")

    client.runtimes.stop(runtime.id)
    automation.close()
    viewer.close()
