"""Viewer embeds (viewers/embeds.py): lease checks, refusals, headers, streams, logs."""

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.utils import timezone

from bctrl_site.logging import LoggingAccessLog, RedactEmbedTokens, redact
from bctrl_site.middleware import frame_ancestors, with_frame_ancestors
from bctrl_site.origins import valid_origin
from recordings.models import Recording
from runs import services
from runs.models import Run
from tests.conftest import Tenant, started_at_ms
from tests.test_replay import (
    T0,
    StoredTarget,
    add_batch,
    page_chunk,
    ready_recording,
    store_target,
)
from tests.test_streams import SSE, Frame, in_own_thread
from viewers.leases import lease_mint, lease_revoke
from viewers.models import ViewerLease

ORIGIN = "https://app.example.com"


# Fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_streams(settings: Any) -> None:
    settings.BCTRL_SSE_HEARTBEAT_SECONDS = 1
    settings.BCTRL_SSE_POLL_SECONDS = 0.2


@pytest.fixture
def space_tenant(tenant: Tenant) -> Tenant:
    tenant.space.name = "Acme Secret Space"
    tenant.space.allowed_embed_origins = [ORIGIN]
    tenant.space.save()
    return tenant


@pytest.fixture
def run(space_tenant: Tenant) -> Run:
    run = services.run_create(space=space_tenant.space, name="quarterly-close internal")
    started_at_ms(run, T0 - 60_000)
    services.events_append(
        run=run, events=[{"type": "navigation", "page_id": "p1", "data": {"url": "https://x/"}}]
    )
    run.refresh_from_db()
    return run


@pytest.fixture
def processed(run: Run) -> Iterator[StoredTarget]:
    recording = ready_recording(run)
    yield store_target(
        recording,
        "page-1",
        [page_chunk(T0, "Hello", "Hello from the recording")],
        markers=[{"time": T0, "kind": "navigation", "label": "Hello"}],
    )


def mint(run: Run, kind: str = "replay", **options: Any) -> str:
    return lease_mint(run=run, kind=kind, **options).token


def lease_of(token: str) -> ViewerLease:
    """The lease that a token names (tests only: the token holds its secret)."""
    from viewers.leases import _hash, _signer

    return ViewerLease.objects.get(secret_hash=_hash(_signer().unsign(token)))


def tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def assert_leaks_nothing(body: str, run: Run) -> None:
    for secret in (run.id, run.name, run.space.name, run.space.slug, run.space_id):
        assert secret not in body, secret


def assert_embed_headers(response: Any, ancestors: str) -> None:
    policy = response["Content-Security-Policy"]
    assert policy.count("frame-ancestors") == 1
    assert f"frame-ancestors {ancestors}" in policy
    assert "X-Frame-Options" not in response
    assert response["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in response
    assert not response.cookies


# Pages that open --------------------------------------------------------------------


def test_replay_embed_opens_the_player_without_session_or_cookie(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    token = mint(run)
    response = client.get(f"/embed/replay/{token}")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-manifest-url="/embed/replay/{token}/manifest"' in body
    assert "data-post-playhead" in body
    assert "js/replay.js" in body
    assert "topbar" not in body and "csrfmiddlewaretoken" not in body
    assert_leaks_nothing(body, run)
    assert_embed_headers(response, ORIGIN)
    # The player's own policy (inline styles for rrweb's iframe), not the strict one.
    assert "style-src 'self' 'unsafe-inline'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert lease_of(token).use_count == 1


def test_activity_panel_and_data_only_with_the_component(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    plain = mint(run)
    body = client.get(f"/embed/replay/{plain}").content.decode()
    assert (
        'class="replay replay-solo"' in body and 'aria-labelledby="timeline-title" hidden' in body
    )
    manifest = client.get(f"/embed/replay/{plain}/manifest").json()
    assert manifest["activity"] == []

    with_activity = mint(run, components=["activity"])
    body = client.get(f"/embed/replay/{with_activity}").content.decode()
    assert "replay-solo" not in body and 'aria-labelledby="timeline-title" hidden' not in body
    manifest = client.get(f"/embed/replay/{with_activity}/manifest").json()
    assert manifest["activity"]
    # A panel asked for in the URL does not override the lease.
    body = client.get(f"/embed/replay/{plain}?panel=activity").content.decode()
    assert "replay-solo" in body


def test_replay_data_endpoints_use_embed_urls_and_recheck(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    token = mint(run)
    response = client.get(f"/embed/replay/{token}/manifest")
    assert response.status_code == 200
    manifest = response.json()
    assert manifest["mode"] == "chunks"
    target = manifest["targets"][0]
    assert target["chunksUrl"] == f"/embed/replay/{token}/chunks/page-1"
    assert set(manifest["run"]) == {"status", "startedAt", "endedAt"}
    assert "id" not in manifest["recording"]
    assert_leaks_nothing(response.content.decode(), run)
    assert "Set-Cookie" not in response

    chunk = client.get(target["chunksUrl"], headers={"range": "bytes=0-9"})
    assert chunk.status_code == 206 and chunk.content == processed.blob[:10]
    assert client.get(f"/embed/replay/{token}/chunks/nope").json()["error"]["code"] == "not_found"
    assert client.get(f"/embed/replay/{token}/live/page-1").status_code == 200
    # Data requests check the lease but are not uses; the page load was not made here.
    assert lease_of(token).use_count == 0
    # Data endpoints cannot be framed.
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_embed_manifest_is_gzipped_and_still_leaks_nothing(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    token = mint(run)
    plain = client.get(f"/embed/replay/{token}/manifest")
    packed = client.get(f"/embed/replay/{token}/manifest", HTTP_ACCEPT_ENCODING="gzip")
    assert packed.status_code == 200
    assert packed["Content-Encoding"] == "gzip"
    body = gzip.decompress(packed.content)
    assert orjson.loads(body) == plain.json()
    assert_leaks_nothing(body.decode(), run)
    assert packed["X-Frame-Options"] == "DENY"


def test_live_recording_is_served_through_the_embed_live_endpoint(client: Client, run: Run) -> None:
    recording = Recording.objects.create(space=run.space, run=run)
    add_batch(recording, "page-1", 0, page_chunk(T0, "Live", "Happening now"))
    token = mint(run)
    manifest = client.get(f"/embed/replay/{token}/manifest").json()
    assert manifest["mode"] == "live"
    assert manifest["targets"][0]["liveUrl"] == f"/embed/replay/{token}/live/page-1"
    live = client.get(manifest["targets"][0]["liveUrl"] + "?after=-1").json()
    assert live["seq"] == 0 and live["events"]


def test_activity_embed_page(client: Client, run: Run) -> None:
    token = mint(run, "activity")
    response = client.get(f"/embed/activity/{token}")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-stream-url="/embed/activity/{token}/stream"' in body
    assert "This run is live." in body
    assert_leaks_nothing(body, run)
    assert_embed_headers(response, ORIGIN)


def test_live_embed_page_says_live_then_ended_and_the_control(client: Client, run: Run) -> None:
    view_only = mint(run, "live")
    controller = mint(run, "live", control="input")
    body = client.get(f"/embed/live/{view_only}").content.decode()
    assert "This run is live." in body and "View only." in body
    assert f'data-stream-url="/embed/activity/{view_only}/stream"' in body
    response = client.get(f"/embed/live/{controller}?control=input")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-may-control="true"' in page and "Take control" in page
    assert f'data-ws-url="/ws/live/{controller}"' in page
    assert_embed_headers(response, ORIGIN)

    # "Watch its replay" while live leads back to the live view.
    assert client.get(f"/embed/live/{view_only}/replay")["Location"] == f"/embed/live/{view_only}"

    services.run_stop(run=run)
    body = client.get(f"/embed/live/{view_only}").content.decode()
    assert "This run has ended." in body and "This run is live." not in body
    assert f'href="/embed/live/{view_only}/replay"' in body
    assert_leaks_nothing(body, run)
    # Once ended, it mints a replay lease (with the activity) that ends with the live one.
    replay = client.get(f"/embed/live/{view_only}/replay")
    assert replay.status_code == 302 and replay["Location"].startswith("/embed/replay/")
    lease = ViewerLease.objects.filter(run=run, kind="replay").get()
    live_lease = ViewerLease.objects.filter(run=run, kind="live").order_by("created_at")[0]
    assert lease.components == ["activity"] and abs(
        lease.expires_at - live_lease.expires_at
    ) < timedelta(seconds=2)
    assert client.get(replay["Location"]).status_code == 200


# Refusals ---------------------------------------------------------------------------

NOT_VALID = "This viewer link is not valid."
EXPIRED = "This viewer link has expired. Ask for a new one."
REVOKED = "This viewer link was revoked."
WRONG_KIND = "This viewer link does not open this view."
NO_CONTROL = "This viewer link does not allow control of the browser."
GONE = "This recording is no longer available."


def refusal_case(case: str, run: Run) -> tuple[str, int, str, str]:
    """(path, status, words, reason) of one way for a lease URL not to open."""
    if case == "tampered":
        return f"/embed/replay/{tampered(mint(run))}", 403, NOT_VALID, "invalid"
    if case == "garbage":
        return "/embed/replay/not-a-token", 403, NOT_VALID, "invalid"
    if case == "revoked":
        token = mint(run)
        lease_revoke(lease=lease_of(token))
        return f"/embed/replay/{token}", 403, REVOKED, "revoked"
    if case == "wrong_kind":
        return f"/embed/live/{mint(run)}", 403, WRONG_KIND, "wrong_kind"
    if case == "activity_for_replay":
        return f"/embed/replay/{mint(run, 'activity')}", 403, WRONG_KIND, "wrong_kind"
    if case == "control":
        return f"/embed/live/{mint(run, 'live')}?control=input", 403, NO_CONTROL, "control"
    if case == "recording_deleted":
        token = mint(run)
        Recording.objects.filter(run=run).update(status=Recording.Status.DELETED)
        return f"/embed/replay/{token}", 410, GONE, "unavailable"
    if case == "run_deleted":
        token = mint(run)
        Run.objects.filter(pk=run.pk).delete()  # its leases go with it
        return f"/embed/replay/{token}", 403, NOT_VALID, "invalid"
    raise AssertionError(case)


CASES = [
    "tampered",
    "garbage",
    "revoked",
    "wrong_kind",
    "activity_for_replay",
    "control",
    "recording_deleted",
    "run_deleted",
]


@pytest.mark.parametrize("case", CASES)
def test_refused_pages_say_why_and_nothing_else(
    client: Client, run: Run, processed: StoredTarget, case: str
) -> None:
    path, status, words, _ = refusal_case(case, run)
    response = client.get(path)
    assert response.status_code == status
    body = response.content.decode()
    assert words in body
    assert "data-replay" not in body and "topbar" not in body
    assert_leaks_nothing(body, run)
    # Shown inside any embedding page (it holds nothing), never with a cookie.
    assert_embed_headers(response, "*")


def test_an_expired_link_is_410_with_a_frozen_clock(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    token = mint(run, lifetime_s=60)
    activity = mint(run, "activity", lifetime_s=60)
    later = timezone.now() + timedelta(seconds=61)
    with mock.patch("django.utils.timezone.now", return_value=later):
        page = client.get(f"/embed/replay/{token}")
        manifest = client.get(f"/embed/replay/{token}/manifest")
        activity_page = client.get(f"/embed/activity/{activity}")
        stream = client.get(f"/embed/activity/{activity}/stream")
    assert page.status_code == 410
    assert EXPIRED in page.content.decode()
    assert_leaks_nothing(page.content.decode(), run)
    assert activity_page.status_code == 410 and EXPIRED in activity_page.content.decode()
    assert manifest.status_code == 410
    assert manifest.json() == {"error": {"code": "lease.expired", "message": EXPIRED}}
    assert stream.status_code == 410 and stream.json()["error"]["code"] == "lease.expired"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("endpoint", ["manifest", "chunks/page-1", "live/page-1"])
def test_data_endpoints_refuse_in_json(
    client: Client, run: Run, processed: StoredTarget, case: str, endpoint: str
) -> None:
    path, status, words, reason = refusal_case(case, run)
    if not path.startswith("/embed/replay/"):
        return  # a page of another kind: its data endpoints do not exist
    path = path.split("?")[0] + "/" + endpoint
    response = client.get(path)
    assert response.status_code == status
    assert response.json() == {"error": {"code": f"lease.{reason}", "message": words}}
    assert_leaks_nothing(response.content.decode(), run)
    assert "Set-Cookie" not in response


# Headers ----------------------------------------------------------------------------


def test_empty_origins_mean_no_framing(client: Client, run: Run, processed: StoredTarget) -> None:
    run.space.allowed_embed_origins = []
    run.space.save()
    response = client.get(f"/embed/replay/{mint(run)}")
    assert response.status_code == 200
    assert_embed_headers(response, "'none'")


def test_several_origins_and_a_hostile_one(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    run.space.allowed_embed_origins = [
        "https://a.com; script-src *",
        "https://App.Example.com/",
        "http://localhost:8123",
        "javascript:alert(1)",
        "*",
        "https://x.com/path",
        "https://*.customers.example",
        "https://evil.com 'unsafe-inline'",
        42,
    ]
    run.space.save()
    response = client.get(f"/embed/replay/{mint(run)}")
    policy = response["Content-Security-Policy"]
    assert (
        "frame-ancestors https://app.example.com http://localhost:8123 https://*.customers.example"
        in policy
    )
    assert policy.count("script-src") == 1 and "script-src 'self';" in policy
    for hostile in ("a.com", "javascript", "x.com", "evil.com", "42"):
        assert hostile not in policy, hostile
    assert policy.endswith(
        "frame-ancestors https://app.example.com http://localhost:8123 https://*.customers.example"
    )


def test_other_routes_keep_deny(client: Client, run: Run) -> None:
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["Referrer-Policy"] == "same-origin"


def test_origin_validation() -> None:
    assert valid_origin("https://app.example.com") == "https://app.example.com"
    assert valid_origin("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert valid_origin("http://[::1]:3000") == "http://[::1]:3000"
    for bad in [
        "app.example.com",
        "ftp://a.com",
        "https://a.com:99999",
        "https://a.com/x",
        "https://a.com;",
        "https://a.com\nscript-src *",
        "https://*",
        "https://a.*.com",
        "'self'",
        "",
        None,
    ]:
        assert valid_origin(bad) is None, bad
    assert frame_ancestors([]) == "'none'"
    assert frame_ancestors(["bad", "https://a.com", "https://a.com"]) == "https://a.com"
    assert with_frame_ancestors("default-src 'self'; frame-ancestors 'none'", "https://a.com") == (
        "default-src 'self'; frame-ancestors https://a.com"
    )


# Log redaction ----------------------------------------------------------------------


def test_request_log_names_no_token(
    client: Client, run: Run, processed: StoredTarget, caplog: Any
) -> None:
    token = mint(run)
    lease_revoke(lease=lease_of(token))
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(f"/embed/replay/{token}").status_code == 403
        assert client.get(f"/embed/replay/{token}/chunks/page-1").status_code == 403
        assert client.get(f"/embed/activity/{token}/nothing/here").status_code == 404
    messages = [record.getMessage() for record in caplog.records]
    assert "Forbidden: /embed/replay/[redacted]" in messages
    assert any(message.startswith("Not Found: /embed/activity/[redacted]") for message in messages)
    assert token not in caplog.text
    secret = token.split(":")[0]
    assert secret not in caplog.text


def test_redaction_of_any_embed_path() -> None:
    assert redact('GET /embed/activity/abc:def/stream?x=1 HTTP/1.1" 200') == (
        'GET /embed/activity/[redacted] HTTP/1.1" 200'
    )
    assert redact("/embed/live/a%3Ab") == "/embed/live/[redacted]"
    assert redact("/runs/run_1/replay") == "/runs/run_1/replay"
    assert redact('"GET /cdp/s3cret:sig?keep_alive=1" 101') == '"GET /cdp/[redacted]" 101'
    assert redact("WSCONNECT /ws/live/tok:sig") == "WSCONNECT /ws/live/[redacted]"
    assert redact("/ws/runs/run_1/live") == "/ws/runs/run_1/live"
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "%s: %s", ("Gone", "/embed/replay/t:s"), None
    )
    assert RedactEmbedTokens().filter(record)
    assert record.getMessage() == "Gone: /embed/replay/[redacted]"


def test_daphne_access_log_goes_through_logging_redacted(caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="daphne.access"):
        LoggingAccessLog()(
            "http",
            "complete",
            {
                "client": "127.0.0.1:5000",
                "method": "GET",
                "path": "/embed/replay/tok:sig/manifest",
                "status": 200,
                "size": 10,
            },
        )
    assert caplog.records[0].name == "daphne.access"
    assert caplog.records[0].getMessage() == (
        '127.0.0.1:5000 "GET /embed/replay/[redacted]" 200 10'
    )


# The activity stream ----------------------------------------------------------------


@pytest.fixture
async def _close_thread_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()


async def open_stream(token: str) -> SSE:
    response = await AsyncClient().get(f"/embed/activity/{token}/stream")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    assert "Set-Cookie" not in response
    assert response["Referrer-Policy"] == "no-referrer"
    return SSE(response)


def is_end(frame: Frame) -> bool:
    return frame.event == "end"


@pytest.mark.django_db(transaction=True)
async def test_revocation_ends_an_open_stream_within_seconds(
    space_tenant: Tenant, _close_thread_connections: None
) -> None:
    run = await sync_to_async(services.run_create)(space=space_tenant.space, name="streamed")
    minted = await sync_to_async(lease_mint)(run=run, kind="activity")
    sse = await open_stream(minted.token)
    first = await sse.until(lambda frame: frame.event == "activity", timeout=10)
    assert first[-1].data["type"] == "run.started"

    await asyncio.sleep(0.5)  # the stream is waiting between reads
    clock = asyncio.get_running_loop().time
    revoked_at = clock()
    await in_own_thread(lambda: lease_revoke(lease=ViewerLease.objects.get(pk=minted.lease.pk)))
    frames = await sse.until(is_end, timeout=15)
    assert frames[-1].data == {"reason": "revoked", "message": REVOKED}
    assert clock() - revoked_at < 5
    with pytest.raises(StopAsyncIteration):
        await sse.frame(timeout=5)  # and the stream is closed
    # A reconnect is refused.
    again = await AsyncClient().get(f"/embed/activity/{minted.token}/stream")
    assert again.status_code == 403
    assert again.json()["error"]["code"] == "lease.revoked"


@pytest.mark.django_db(transaction=True)
async def test_expiry_ends_an_open_stream(
    space_tenant: Tenant, _close_thread_connections: None
) -> None:
    run = await sync_to_async(services.run_create)(space=space_tenant.space, name="streamed")
    minted = await sync_to_async(lease_mint)(run=run, kind="activity")
    soon = timezone.now() + timedelta(seconds=1.5)
    await sync_to_async(ViewerLease.objects.filter(pk=minted.lease.pk).update)(expires_at=soon)
    sse = await open_stream(minted.token)
    frames = await sse.until(is_end, timeout=15)
    assert frames[-1].data == {"reason": "expired", "message": EXPIRED}
    assert any(frame.event == "activity" for frame in frames)


@pytest.mark.django_db(transaction=True)
async def test_stream_takes_replay_leases_with_the_component_and_live_leases(
    space_tenant: Tenant, _close_thread_connections: None
) -> None:
    run = await sync_to_async(services.run_create)(space=space_tenant.space, name="streamed")
    grants: list[tuple[str, dict[str, Any]]] = [
        ("replay", {"components": ["activity"]}),
        ("live", {}),
    ]
    for kind, options in grants:
        minted = await sync_to_async(lease_mint)(run=run, kind=kind, **options)
        sse = await open_stream(minted.token)
        frames = await sse.until(lambda frame: frame.event == "activity", timeout=10)
        assert frames[-1].data["type"] == "run.started"
        await sync_to_async(lease_revoke)(lease=minted.lease)
        assert (await sse.until(is_end, timeout=10))[-1].data["reason"] == "revoked"

    plain = await sync_to_async(lease_mint)(run=run, kind="replay")
    refused = await AsyncClient().get(f"/embed/activity/{plain.token}/stream")
    assert refused.status_code == 403
    assert refused.json() == {"error": {"code": "lease.wrong_kind", "message": WRONG_KIND}}
    used = await sync_to_async(ViewerLease.objects.get)(pk=plain.lease.pk)
    assert used.use_count == 0


@pytest.mark.django_db(transaction=True)
async def test_stream_ends_when_the_run_ends(
    space_tenant: Tenant, _close_thread_connections: None
) -> None:
    run = await sync_to_async(services.run_create)(space=space_tenant.space, name="streamed")
    minted = await sync_to_async(lease_mint)(run=run, kind="activity")
    sse = await open_stream(minted.token)
    await sse.until(lambda frame: frame.event == "activity", timeout=10)
    await in_own_thread(lambda: services.run_stop(run=Run.objects.get(pk=run.pk)))
    frames = await sse.until(is_end, timeout=10)
    assert frames[-1].data["status"] == "completed"
    lease = await sync_to_async(ViewerLease.objects.get)(pk=minted.lease.pk)
    assert lease.use_count == 1  # the connect; re-checks are not uses
