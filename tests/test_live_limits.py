"""Websocket size limits per route on the live daphne (`asgi_server`, bctrl_site.webserver):
a message over its route's limit is refused with close code 4413 as it streams in, and a
live viewer's refusal hands control back at once."""

import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.conf import settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from runs import control
from runs.models import Event, Run, Runtime
from runtimes.hostlink import host_link_token, pack_frame
from runtimes.routing import (
    MESSAGE_LIMITS,
    PAGE_MESSAGE_MAX_BYTES,
    cdp_urlpatterns,
    live_urlpatterns,
    message_limit,
)
from tests.conftest import Tenant
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = pytest.mark.django_db(transaction=True)

HOST_ID = "host-limits"


def make_run(tenant: Tenant) -> Run:
    runtime = Runtime.objects.create(
        space=tenant.space, name="limits", status=Runtime.Status.RUNNING, host_id=HOST_ID
    )
    return Run.objects.create(space=tenant.space, runtime=runtime)


def open_viewer(asgi_server: str, run: Run, control_: str = "none") -> ClientConnection:
    token = lease_mint(run=run, kind=ViewerLease.Kind.LIVE, control=control_).token
    url = asgi_server.replace("http://", "ws://", 1) + f"/ws/live/{token}"
    return ws_connect(url, additional_headers={"Origin": asgi_server}, max_size=None)


def receive_json(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str):
            data: dict[str, Any] = orjson.loads(message)
            if data["type"] == kind:
                return data


def close_code_after_sending(ws: ClientConnection, message: str | bytes) -> int | None:
    """The code the server closes with after `message` (its send may fail midway)."""
    try:
        ws.send(message)
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except OSError:
        ws.recv_events_thread.join(10)  # the close frame, read before the reset
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None


def eventually(check: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)
    return result


def test_a_controllers_long_message_is_refused_with_4413_and_control_is_free_at_once(
    asgi_server: str, tenant: Tenant
) -> None:
    run = make_run(tenant)
    with open_viewer(asgi_server, run, "input") as holder:
        assert receive_json(holder, "hello")["maxMessageBytes"] == 4096
        holder.send('{"type": "control", "action": "request"}')
        assert receive_json(holder, "control")["you"] is True

        pasted = orjson.dumps({"type": "text", "text": "recovery code " * 400}).decode()
        assert close_code_after_sending(holder, pasted) == 4413

    # The next person takes control at once, not after the idle timeout.
    with open_viewer(asgi_server, run, "input") as other:
        other.send('{"type": "control", "action": "request"}')
        assert receive_json(other, "control")["you"] is True
    released = Event.objects.filter(run=run, type="control.released").order_by("seq").first()
    assert released is not None and released.data["reason"] == "refused"


def start_message(ws: ClientConnection, size: int, sent: int) -> None:
    """Sends the header of one text frame of `size` bytes and its first `sent` bytes."""
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + mask
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"x" * sent))
    ws.socket.sendall(header + payload)


def test_a_view_only_viewers_200_mb_message_is_refused_before_it_arrives(
    asgi_server: str, tenant: Tenant
) -> None:
    run = make_run(tenant)
    with open_viewer(asgi_server, run) as viewer:
        receive_json(viewer, "hello")
        # The rest of the 200 MB is never sent: the refusal comes from the frame's header.
        start_message(viewer, 200 * 1024 * 1024, 64 * 1024)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                viewer.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4413
    # The live view still serves the run.
    with open_viewer(asgi_server, run) as again:
        assert receive_json(again, "hello")["mayControl"] is False


def test_the_host_link_takes_a_frame_of_a_megabyte_and_refuses_one_over_its_limit(
    asgi_server: str, tenant: Tenant
) -> None:
    run = make_run(tenant)
    url = asgi_server.replace("http://", "ws://", 1) + f"/ws/host/runtimes/{run.runtime_id}"
    token = host_link_token(str(run.runtime_id), HOST_ID)
    with ws_connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as link:
        assert receive_json(link, "linked")["runId"] == run.id
        link.send(pack_frame({"target": "T1", "w": 1280, "h": 1280}, os.urandom(1024 * 1024)))
        assert receive_json(link, "relayed")
        too_large = os.urandom(settings.BCTRL_HOST_LINK_MESSAGE_MAX_BYTES + 1)
        assert close_code_after_sending(link, pack_frame({"target": "T1"}, too_large)) == 4413


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/cdp/tok_123", "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES"),
        ("/v1/runtimes/rt_1/cdp", "BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES"),
        ("/ws/host/runtimes/rt_1", "BCTRL_HOST_LINK_MESSAGE_MAX_BYTES"),
        ("/ws/live/lease_token", "BCTRL_LIVE_MESSAGE_MAX_BYTES"),
        ("/ws/runs/run_1/live", "BCTRL_LIVE_MESSAGE_MAX_BYTES"),
        ("/ws/live/lease_token/more", None),
        ("/elsewhere", None),
    ],
)
def test_each_route_has_the_limit_of_its_purpose(path: str, setting: str | None) -> None:
    expected = getattr(settings, setting) if setting else PAGE_MESSAGE_MAX_BYTES
    assert message_limit(path) == expected


def test_every_route_has_a_limit() -> None:
    names = {route.name for route in (*cdp_urlpatterns, *live_urlpatterns)}
    assert names == set(MESSAGE_LIMITS)


def test_a_long_message_under_the_limit_still_reaches_the_live_view(
    asgi_server: str, tenant: Tenant
) -> None:
    run = make_run(tenant)
    with open_viewer(asgi_server, run, "input") as holder:
        receive_json(holder, "hello")
        holder.send('{"type": "control", "action": "request"}')
        assert receive_json(holder, "control")["you"] is True
        text = "é" * control.MAX_TEXT  # 2,000 bytes of UTF-8
        holder.send(orjson.dumps({"type": "text", "text": text}).decode())
        holder.send('{"type": "control", "action": "release"}')
        assert receive_json(holder, "control")["holder"] is None
    reasons = [
        event.data["reason"] for event in Event.objects.filter(run=run, type="control.released")
    ]
    assert reasons == ["requested"]
