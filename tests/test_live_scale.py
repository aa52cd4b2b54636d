"""Live view scaled out on Redis: two web processes and a runtime host, each its own
process. The host's link (and so every frame) enters through web process B; a viewer on
web process A receives the frames and takes over the browser through A."""

import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from bctrl import Bctrl
from django.db import connections
from websockets.sync.client import connect as ws_connect

from runs.models import Event, Run
from runtimes.hostlink import frame_header
from tests.conftest import (
    CHROMIUM,
    Tenant,
    start_host_process,
    start_web_process,
    stop_host_process,
)
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = pytest.mark.django_db(transaction=True)

INPUT_PAGE = """<!doctype html><title>Sign-in code</title>
<input id="code" style="position:absolute; left:0; top:0; width:600px; height:100px">"""


@pytest.fixture
def two_webs_and_a_host(
    settings: Any, redis_url: str, transactional_db: None
) -> Iterator[tuple[str, str]]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"bctrl-scale-{os.getpid()}"},
        }
    }
    connections.close_all()  # each child opens its own connections
    web_a, web_b = start_web_process(settings), start_web_process(settings)
    url_a = f"http://127.0.0.1:{web_a.port.value}"
    url_b = f"http://127.0.0.1:{web_b.port.value}"
    settings.BCTRL_HOST_LINK_URL = url_b.replace("http://", "ws://", 1)
    host = start_host_process()
    try:
        yield url_a, url_b
    finally:
        stop_host_process(host)
        for web in (web_a, web_b):
            web.terminate()
            web.join(10)


def receive_json(ws: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str):
            data: dict[str, Any] = orjson.loads(message)
            if data["type"] == kind:
                return data


def receive_frame(ws: Any, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            ws.send('{"type": "ack"}')
            return frame_header(message)


def test_a_viewer_on_one_process_sees_and_drives_a_browser_linked_to_the_other(
    two_webs_and_a_host: tuple[str, str], tenant: Tenant
) -> None:
    url_a, url_b = two_webs_and_a_host
    client = Bctrl(api_key=tenant.raw_key, base_url=url_b)
    runtime = client.runtimes.create(name="scaled")
    started = client.runtimes.start(runtime.id).raw
    run = Run.objects.get(pk=started["runId"])
    token = lease_mint(run=run, kind=ViewerLease.Kind.LIVE, control="input").token

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        automation = playwright.chromium.connect_over_cdp(started["connectUrl"])
        page = automation.new_context(viewport={"width": 1000, "height": 500}).new_page()
        page.set_content(INPUT_PAGE)
        target_id = page.context.new_cdp_session(page).send("Target.getTargetInfo")["targetInfo"][
            "targetId"
        ]

        viewer_url = url_a.replace("http://", "ws://", 1) + f"/ws/live/{token}"
        with ws_connect(viewer_url, additional_headers={"Origin": url_a}) as viewer:
            assert receive_json(viewer, "hello")["mayControl"] is True
            header = receive_frame(viewer)  # entered through B, delivered by A
            assert header["target"] == target_id and header["w"] == 1000

            viewer.send('{"type": "control", "action": "request"}')
            assert receive_json(viewer, "control")["you"] is True
            for action in ("down", "up"):
                viewer.send(
                    orjson.dumps(
                        {"type": "mouse", "action": action, "x": 0.1, "y": 0.05, "button": "left"}
                    ).decode()
                )
            viewer.send('{"type": "text", "text": "731904"}')
            page.wait_for_function("document.getElementById('code').value === '731904'")
            viewer.send('{"type": "control", "action": "release"}')
            assert receive_json(viewer, "control")["holder"] is None
        automation.close()

    client.runtimes.stop(runtime.id)
    kinds = list(
        Event.objects.filter(run=run, type__startswith="control.")
        .order_by("seq")
        .values_list("type", flat=True)
    )
    assert kinds == ["control.requested", "control.granted", "control.released"]
