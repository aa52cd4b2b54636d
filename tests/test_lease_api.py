"""Viewer URLs and leases through the runs API, the dashboard's Share panel and Viewer
links page, and the admin."""

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recordings.models import Recording
from runs import services
from runs.models import Membership, Run
from tests.conftest import Tenant, make_tenant, started_at_ms
from tests.test_recording_ingest import START, rrweb_events
from viewers.leases import lease_check, lease_mint, lease_revoke
from viewers.models import ViewerLease

# seed 000's keys, seed 001's `url` (the same URL as iframeUrl), and each tab's video
RECORDING_KEYS = {
    "iframeUrl",
    "url",
    "status",
    "durationMs",
    "expiresAt",
    "videos",
    "replayFileUrl",
}
LEASE_KEYS = {
    "id",
    "object",
    "runId",
    "kind",
    "control",
    "components",
    "status",
    "expiresAt",
    "createdAt",
    "createdBy",
    "revokedAt",
    "firstUsedAt",
    "lastUsedAt",
    "useCount",
}


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return started_at_ms(services.run_create(space=tenant.space, name="checkout flow"), START)


def post(tenant: Tenant, path: str, body: Any = None) -> Any:
    return tenant.client.post(path, body, format="json")


def mint_recording(tenant: Tenant, run: Run, body: Any = None) -> Any:
    return post(tenant, f"/v1/runs/{run.id}/recording", body)


def token_of(url: str) -> str:
    return url.rstrip("/").removesuffix("/stream").rsplit("/", 1)[1]


def seconds_until(iso: str) -> float:
    expires = parse_datetime(iso)
    assert expires is not None
    return (expires - timezone.now()).total_seconds()


def ready_recording(run: Run, duration_ms: int = 12_345) -> Recording:
    return Recording.objects.create(
        space_id=run.space_id, run=run, status=Recording.Status.READY, duration_ms=duration_ms
    )


# POST /v1/runs/{id}/recording -------------------------------------------------------


def test_recording_viewer_has_exactly_the_keys_of_the_seed(tenant: Tenant, run: Run) -> None:
    response = mint_recording(tenant, run)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == RECORDING_KEYS
    assert body["iframeUrl"].startswith(f"{django_settings.SITE_URL}/embed/replay/")
    assert body["url"] == body["iframeUrl"]
    assert body["status"] == "not_available"
    assert body["durationMs"] is None


def test_recording_viewer_with_activity_adds_the_stream_url(tenant: Tenant, run: Run) -> None:
    body = mint_recording(tenant, run, {"components": ["activity"]}).json()
    assert set(body) == RECORDING_KEYS | {"activityStreamUrl"}
    token = token_of(body["iframeUrl"])
    assert body["activityStreamUrl"] == (
        f"{django_settings.SITE_URL}/embed/activity/{token}/stream"
    )
    lease = lease_check(token, kind="replay", run_id=run.id, component="activity")
    assert lease.components == ["activity"]
    assert lease.created_by_key_id == tenant.api_key.id


@pytest.mark.parametrize("body", [None, {}, {"components": []}, {"components": None}])
def test_recording_viewer_without_activity_has_no_stream_url(
    tenant: Tenant, run: Run, body: Any
) -> None:
    response = mint_recording(tenant, run, body)
    assert response.status_code == 200
    assert "activityStreamUrl" not in response.json()


def test_the_iframe_url_opens_a_replay_lease_of_the_run(tenant: Tenant, run: Run) -> None:
    url = mint_recording(tenant, run).json()["iframeUrl"]
    lease = lease_check(token_of(url), kind="replay", run_id=run.id)
    assert lease.space_id == tenant.space.id
    assert lease.kind == "replay"


def test_status_is_processing_while_recording(tenant: Tenant, run: Run) -> None:
    ingest = post(
        tenant,
        f"/v1/runs/{run.id}/recording/events",
        {"target": "p1", "seq": 0, "events": rrweb_events()},
    )
    assert ingest.status_code == 201
    body = mint_recording(tenant, run).json()
    assert body["status"] == "processing"


def test_status_and_duration_of_a_ready_recording(tenant: Tenant, run: Run) -> None:
    ready_recording(run, duration_ms=12_345)
    body = mint_recording(tenant, run).json()
    assert (body["status"], body["durationMs"]) == ("ready", 12_345)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Recording.Status.PREPARING, "preparing"),
        (Recording.Status.FAILED, "failed"),
        (Recording.Status.ARCHIVED, "ready"),
        (Recording.Status.DELETED, "not_available"),
    ],
)
def test_status_names_the_lifecycle_in_the_runs_api_words(
    tenant: Tenant, run: Run, status: str, expected: str
) -> None:
    Recording.objects.create(space_id=run.space_id, run=run, status=status, duration_ms=5000)
    assert mint_recording(tenant, run).json()["status"] == expected


def test_default_expiry_is_an_hour(tenant: Tenant, run: Run) -> None:
    body = mint_recording(tenant, run).json()
    assert 3590 < seconds_until(body["expiresAt"]) <= 3600
    assert body["expiresAt"].endswith("Z")


@pytest.mark.parametrize("seconds", [60, 86400])
def test_lifetime_bounds_are_accepted(tenant: Tenant, run: Run, seconds: int) -> None:
    body = mint_recording(tenant, run, {"expiresInSeconds": seconds}).json()
    assert seconds - 10 < seconds_until(body["expiresAt"]) <= seconds


@pytest.mark.parametrize("seconds", [59, 86401, 0, -1, "3600", 3600.5, True, [3600]])
def test_a_lifetime_out_of_bounds_or_not_an_integer_is_a_422(
    tenant: Tenant, run: Run, seconds: Any
) -> None:
    response = mint_recording(tenant, run, {"expiresInSeconds": seconds})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "lease.invalid_lifetime"
    assert "expiresInSeconds" in error["message"]
    assert not ViewerLease.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"components": ["video"]},
        {"components": "activity"},
        {"component": ["activity"]},
        {"expiresIn": 3600},
    ],
)
def test_unknown_components_and_fields_are_422(tenant: Tenant, run: Run, body: Any) -> None:
    response = mint_recording(tenant, run, body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert not ViewerLease.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(tenant: Tenant, run: Run) -> None:
    response = mint_recording(tenant, run, ["activity"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_another_spaces_run_is_a_404(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = services.run_create(space=other_tenant.space)
    response = mint_recording(tenant, theirs)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert post(tenant, f"/v1/runs/{theirs.id}/live", {}).status_code == 404
    assert not ViewerLease.objects.exists()


def test_minting_needs_an_api_key(run: Run) -> None:
    response = Client().post(f"/v1/runs/{run.id}/recording", {}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_an_ended_run_still_gets_a_recording_viewer(tenant: Tenant, run: Run) -> None:
    services.run_stop(run=run)
    assert mint_recording(tenant, run).status_code == 200


# POST /v1/runs/{id}/live ------------------------------------------------------------


def test_live_viewer_of_an_active_run(tenant: Tenant, run: Run) -> None:
    response = post(tenant, f"/v1/runs/{run.id}/live", {"control": "input"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "expiresAt"}
    assert body["url"].startswith(f"{django_settings.SITE_URL}/embed/live/")
    lease = lease_check(token_of(body["url"]), kind="live", run_id=run.id, control="input")
    assert lease.control == "input"
    assert 3590 < seconds_until(body["expiresAt"]) <= 3600


def test_live_control_defaults_to_none(tenant: Tenant, run: Run) -> None:
    url = post(tenant, f"/v1/runs/{run.id}/live", {}).json()["url"]
    assert lease_check(token_of(url), kind="live").control == "none"


@pytest.mark.parametrize(
    "body", [{"control": "full"}, {"control": None}, {"control": 1}, {"mode": "none"}]
)
def test_live_invalid_body_is_422(tenant: Tenant, run: Run, body: Any) -> None:
    assert post(tenant, f"/v1/runs/{run.id}/live", body).status_code == 422


def test_live_lifetime_out_of_bounds_is_422(tenant: Tenant, run: Run) -> None:
    response = post(tenant, f"/v1/runs/{run.id}/live", {"expiresInSeconds": 86401})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "lease.invalid_lifetime"
    assert not ViewerLease.objects.exists()


def test_live_viewer_of_an_ended_run_is_a_409(tenant: Tenant, run: Run) -> None:
    services.run_stop(run=run)
    response = post(tenant, f"/v1/runs/{run.id}/live", {"control": "none"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "run.ended"
    assert "ended" in error["message"]
    assert not ViewerLease.objects.exists()


# GET /v1/runs/{id}/leases and POST /v1/leases/{id}/revoke --------------------------


def test_leases_list_shows_active_leases_without_tokens(tenant: Tenant, run: Run) -> None:
    replay = mint_recording(tenant, run, {"components": ["activity"]}).json()
    live = post(tenant, f"/v1/runs/{run.id}/live", {"control": "input"}).json()
    revoked = lease_mint(run=run, kind="replay")
    lease_revoke(lease=revoked.lease)
    response = tenant.client.get(f"/v1/runs/{run.id}/leases")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"data", "hasMore", "nextCursor"}
    assert [item["kind"] for item in page["data"]] == ["live", "replay"]
    for item in page["data"]:
        assert set(item) == LEASE_KEYS
        assert item["status"] == "active"
        assert item["createdBy"] == {
            "type": "apiKey",
            "id": tenant.api_key.id,
            "name": tenant.api_key.name,
        }
    assert page["data"][0]["control"] == "input"
    assert page["data"][1]["components"] == ["activity"]
    text = response.content.decode()
    for url in (replay["iframeUrl"], live["url"]):
        assert token_of(url) not in text
        assert token_of(url).split(":")[0] not in text
    assert revoked.token.split(":")[0] not in text


def test_leases_list_state_all_includes_revoked_and_expired(tenant: Tenant, run: Run) -> None:
    lease_revoke(lease=lease_mint(run=run, kind="replay").lease)
    expired = lease_mint(run=run, kind="replay").lease
    ViewerLease.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tenant.client.get(f"/v1/runs/{run.id}/leases").json()["data"] == []
    items = tenant.client.get(f"/v1/runs/{run.id}/leases?state=all").json()["data"]
    assert sorted(item["status"] for item in items) == ["expired", "revoked"]
    assert tenant.client.get(f"/v1/runs/{run.id}/leases?state=old").status_code == 422


def test_leases_list_shows_usage(tenant: Tenant, run: Run) -> None:
    url = mint_recording(tenant, run).json()["iframeUrl"]
    lease_check(token_of(url), kind="replay")
    (item,) = tenant.client.get(f"/v1/runs/{run.id}/leases").json()["data"]
    assert item["useCount"] == 1
    assert item["firstUsedAt"] is not None
    assert item["lastUsedAt"] is not None


def test_leases_list_query_count_does_not_grow_with_the_page(
    tenant: Tenant, run: Run, django_assert_num_queries: Any
) -> None:
    for _ in range(12):
        lease_mint(run=run, kind="replay", api_key=tenant.api_key)
    tenant.client.get(f"/v1/runs/{run.id}")  # the key's last use is then recent: no write
    # 1. the API key, 2. the run, 3. the page of leases with run, key and user joined
    for limit in (2, 12):
        with django_assert_num_queries(3):
            data = tenant.client.get(f"/v1/runs/{run.id}/leases?limit={limit}").json()["data"]
        assert len(data) == limit


def test_revoke_ends_the_lease_and_is_idempotent(tenant: Tenant, run: Run) -> None:
    url = mint_recording(tenant, run).json()["iframeUrl"]
    (item,) = tenant.client.get(f"/v1/runs/{run.id}/leases").json()["data"]
    first = post(tenant, f"/v1/leases/{item['id']}/revoke")
    assert first.status_code == 200
    assert set(first.json()) == LEASE_KEYS
    assert first.json()["status"] == "revoked"
    assert first.json()["revokedAt"] is not None
    with pytest.raises(Exception, match="revoked"):
        lease_check(token_of(url), kind="replay")
    second = post(tenant, f"/v1/leases/{item['id']}/revoke")
    assert second.status_code == 200
    assert second.json()["revokedAt"] == first.json()["revokedAt"]
    assert tenant.client.get(f"/v1/runs/{run.id}/leases").json()["data"] == []


def test_tenancy_of_the_lease_endpoints(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = services.run_create(space=other_tenant.space)
    their_lease = lease_mint(run=theirs, kind="replay").lease
    listed = tenant.client.get(f"/v1/runs/{theirs.id}/leases")
    assert listed.status_code == 404
    revoked = post(tenant, f"/v1/leases/{their_lease.id}/revoke")
    assert revoked.status_code == 404
    assert revoked.json()["error"]["code"] == "not_found"
    their_lease.refresh_from_db()
    assert their_lease.revoked_at is None
    assert post(tenant, "/v1/leases/lse_nope/revoke").status_code == 404


def test_a_runtime_cdp_credential_is_not_a_viewer_link(
    tenant: Tenant, run: Run, client_in: Client
) -> None:
    cdp = lease_mint(run=run, kind=ViewerLease.Kind.CDP, api_key=tenant.api_key).lease
    assert tenant.client.get(f"/v1/runs/{run.id}/leases?state=all").json()["data"] == []
    assert post(tenant, f"/v1/leases/{cdp.id}/revoke").status_code == 404
    assert cdp.id not in client_in.get("/leases").content.decode()
    assert csrf_post(client_in, "/leases", f"/leases/{cdp.id}/revoke", {}).status_code == 404
    cdp.refresh_from_db()
    assert cdp.revoked_at is None


def test_the_minted_urls_open_their_embed_pages(tenant: Tenant, run: Run) -> None:
    ready_recording(run)
    replay = mint_recording(tenant, run, {"components": ["activity"]}).json()
    live = post(tenant, f"/v1/runs/{run.id}/live", {}).json()
    viewer = Client()  # a third-party page: no session, no API key
    for url in (replay["iframeUrl"], live["url"]):
        response = viewer.get(url.removeprefix(django_settings.SITE_URL))
        assert response.status_code == 200, url
    lease_revoke(lease=ViewerLease.objects.get(kind="replay"))
    revoked = viewer.get(replay["iframeUrl"].removeprefix(django_settings.SITE_URL))
    assert revoked.status_code == 403


def test_the_documented_shapes_match_what_the_api_sends(tenant: Tenant, run: Run) -> None:
    from runs.api import schema

    # Every component, so every optional key is in the answer.
    everything = {"components": ["activity", "network", "console", "commands"]}
    recording = mint_recording(tenant, run, everything).json()
    live = post(tenant, f"/v1/runs/{run.id}/live", {}).json()
    (lease,) = tenant.client.get(f"/v1/runs/{run.id}/leases?limit=1").json()["data"]
    assert set(schema.RecordingViewerOut().fields) == set(recording)
    assert set(schema.LiveViewerOut().fields) == set(live)
    assert set(schema.LeaseOut().fields) == set(lease)
    paths = tenant.client.get("/v1/openapi.json").json()["paths"]
    for path in (
        "/v1/runs/{run_id}/recording",
        "/v1/runs/{run_id}/live",
        "/v1/runs/{run_id}/leases",
        "/v1/leases/{lease_id}/revoke",
    ):
        assert path in paths


# Dashboard: Share panel -------------------------------------------------------------


@pytest.fixture
def client_in(member: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    return client


def csrf_post(client: Client, page: str, path: str, data: dict[str, Any]) -> Any:
    """Loads `page` (as a browser would) for the CSRF cookie, then posts the form."""
    assert client.get(page).status_code == 200
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    return client.post(path, {**data, "csrfmiddlewaretoken": token})


def test_run_page_has_a_share_panel(client_in: Client, run: Run) -> None:
    body = client_in.get(f"/runs/{run.id}").content.decode()
    assert 'id="share"' in body
    assert f'action="/runs/{run.id}/share"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert 'value="input"' in body  # live control, while the run is active
    assert "Create live link" in body


def test_share_panel_offers_no_live_link_once_the_run_ended(client_in: Client, run: Run) -> None:
    services.run_stop(run=run)
    body = client_in.get(f"/runs/{run.id}").content.decode()
    assert "Create replay link" in body
    assert "Create live link" not in body
    assert "data-live-share-ended" in body


def test_sharing_a_replay_shows_the_url_once(client_in: Client, run: Run, member: Any) -> None:
    response = csrf_post(
        client_in,
        f"/runs/{run.id}",
        f"/runs/{run.id}/share",
        {"kind": "replay", "activity": "1", "lifetime": "900"},
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    url = response.context["url"]
    assert url.startswith(f"{django_settings.SITE_URL}/embed/replay/")
    body = response.content.decode()
    assert url in body
    assert "&lt;iframe src=" in body  # the embed snippet, shown as text
    assert "data-copy" in body
    assert response.context["activity_stream_url"].endswith("/stream")
    lease = lease_check(token_of(url), kind="replay", run_id=run.id, component="activity")
    assert lease.created_by_user_id == member.pk
    assert lease.created_by_key_id is None
    assert 890 < (lease.expires_at - timezone.now()).total_seconds() <= 900
    # The token is never shown again: not on the run page, not on the leases page.
    token = token_of(url)
    assert token not in client_in.get(f"/runs/{run.id}").content.decode()
    assert token not in client_in.get("/leases").content.decode()


def test_sharing_a_replay_with_the_inspector(client_in: Client, run: Run) -> None:
    response = csrf_post(
        client_in,
        f"/runs/{run.id}",
        f"/runs/{run.id}/share",
        {"kind": "replay", "inspector": "1", "lifetime": "900"},
    )
    assert response.status_code == 200
    assert "with the network requests, console and commands" in response.content.decode()
    assert response.context["activity_stream_url"] == ""
    lease = lease_check(token_of(response.context["url"]), kind="replay", run_id=run.id)
    assert lease.components == ["commands", "console", "network"]


def test_sharing_a_live_view_with_control(client_in: Client, run: Run) -> None:
    response = csrf_post(
        client_in,
        f"/runs/{run.id}",
        f"/runs/{run.id}/share",
        {"kind": "live", "control": "input", "lifetime": "3600"},
    )
    assert response.status_code == 200
    url = response.context["url"]
    assert url.startswith(f"{django_settings.SITE_URL}/embed/live/")
    assert lease_check(token_of(url), kind="live", control="input").control == "input"


def test_sharing_a_live_view_of_an_ended_run_is_refused(client_in: Client, run: Run) -> None:
    services.run_stop(run=run)
    response = csrf_post(
        client_in, f"/runs/{run.id}", f"/runs/{run.id}/share", {"kind": "live", "lifetime": "900"}
    )
    assert response.status_code == 409
    assert "has ended" in response.content.decode()
    assert not ViewerLease.objects.exists()


@pytest.mark.parametrize(
    "form",
    [
        {"kind": "replay", "lifetime": "59"},
        {"kind": "replay", "lifetime": "86401"},
        {"kind": "replay", "lifetime": "soon"},
        {"kind": "activity", "lifetime": "900"},
        {"kind": "live", "control": "all", "lifetime": "900"},
    ],
)
def test_sharing_with_a_bad_form_is_a_422(
    client_in: Client, run: Run, form: dict[str, str]
) -> None:
    response = csrf_post(client_in, f"/runs/{run.id}", f"/runs/{run.id}/share", form)
    assert response.status_code == 422
    assert "data-share-error" in response.content.decode()
    assert not ViewerLease.objects.exists()


def test_sharing_needs_csrf_and_post(client_in: Client, run: Run) -> None:
    assert client_in.post(f"/runs/{run.id}/share", {"kind": "replay"}).status_code == 403
    assert client_in.get(f"/runs/{run.id}/share").status_code == 405
    assert not ViewerLease.objects.exists()


def test_sharing_another_spaces_run_is_a_404(client_in: Client, other_tenant: Tenant) -> None:
    theirs = services.run_create(space=other_tenant.space)
    response = csrf_post(client_in, "/", f"/runs/{theirs.id}/share", {"kind": "replay"})
    assert response.status_code == 404
    assert not ViewerLease.objects.exists()


# Dashboard: Viewer links page and revoke --------------------------------------------


def test_the_top_bar_links_to_viewer_links(client_in: Client) -> None:
    assert 'href="/leases"' in client_in.get("/").content.decode()


def test_leases_page_lists_active_leases_of_the_current_space(
    client_in: Client, tenant: Tenant, other_tenant: Tenant, run: Run, member: Any
) -> None:
    mine = lease_mint(run=run, kind="replay", components=["activity"], user=member).lease
    by_key = lease_mint(run=run, kind="live", control="input", api_key=tenant.api_key).lease
    revoked = lease_mint(run=run, kind="replay").lease
    lease_revoke(lease=revoked)
    expired = lease_mint(run=run, kind="replay").lease
    ViewerLease.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    theirs = lease_mint(run=services.run_create(space=other_tenant.space), kind="replay").lease

    response = client_in.get("/leases")
    assert response.status_code == 200
    shown = [row.lease.id for row in response.context["rows"]]
    assert sorted(shown) == sorted([mine.id, by_key.id])
    body = response.content.decode()
    for hidden in (revoked.id, expired.id, theirs.id):
        assert hidden not in body
    assert f'href="/runs/{run.id}"' in body
    assert "checkout flow" in body
    assert "ada" in body  # the creator of `mine`
    assert f"API key {tenant.api_key.name}" in body
    assert "in 60 min" in body
    assert f'action="/leases/{mine.id}/revoke"' in body


def test_leases_page_filters_by_run(client_in: Client, tenant: Tenant, run: Run) -> None:
    other = services.run_create(space=tenant.space)
    lease_mint(run=run, kind="replay")
    lease_mint(run=other, kind="replay")
    rows = client_in.get(f"/leases?run={run.id}").context["rows"]
    assert [row.lease.run_id for row in rows] == [run.id]


def test_leases_page_shows_use_count_and_last_use(client_in: Client, run: Run) -> None:
    minted = lease_mint(run=run, kind="replay")
    before = client_in.get("/leases").context["rows"][0]
    assert (before.lease.use_count, before.last_used) == (0, "never")
    lease_check(minted.token, kind="replay")
    after = client_in.get("/leases").context["rows"][0]
    assert (after.lease.use_count, after.last_used) == (1, "just now")


@pytest.mark.parametrize("count", [1, 15])
def test_leases_page_query_count_is_pinned(
    client_in: Client,
    tenant: Tenant,
    run: Run,
    member: Any,
    count: int,
    django_assert_num_queries: Any,
) -> None:
    for index in range(count):
        lease_mint(
            run=run,
            kind="replay",
            user=member if index % 2 else None,
            api_key=None if index % 2 else tenant.api_key,
        )
    # 1. the session
    # 2. the user
    # 3. the user's spaces
    # 4. the page of active leases, with run, API key and user joined
    with django_assert_num_queries(4):
        response = client_in.get("/leases")
    assert len(response.context["rows"]) == count


def test_revoking_from_the_dashboard(client_in: Client, run: Run) -> None:
    minted = lease_mint(run=run, kind="replay")
    with mock.patch("viewers.leases.notify_run_changed") as notify:
        response = csrf_post(
            client_in, "/leases", f"/leases/{minted.lease.id}/revoke", {"next": "/leases"}
        )
    assert response.status_code == 302
    assert response["Location"] == "/leases"
    notify.assert_called_once()
    minted.lease.refresh_from_db()
    assert minted.lease.revoked_at is not None
    assert minted.lease.id not in client_in.get("/leases").content.decode()
    # Again: harmless.
    again = csrf_post(client_in, "/leases", f"/leases/{minted.lease.id}/revoke", {})
    assert again.status_code == 302


def test_revoke_redirects_only_to_this_site(client_in: Client, run: Run) -> None:
    minted = lease_mint(run=run, kind="replay")
    response = csrf_post(
        client_in, "/leases", f"/leases/{minted.lease.id}/revoke", {"next": "https://evil.test/"}
    )
    assert response["Location"] == "/leases"


def test_revoking_needs_csrf(client_in: Client, run: Run) -> None:
    minted = lease_mint(run=run, kind="replay")
    assert client_in.post(f"/leases/{minted.lease.id}/revoke").status_code == 403
    minted.lease.refresh_from_db()
    assert minted.lease.revoked_at is None


def test_a_member_cannot_revoke_another_spaces_lease(
    client_in: Client, other_tenant: Tenant
) -> None:
    theirs = lease_mint(run=services.run_create(space=other_tenant.space), kind="replay").lease
    response = csrf_post(client_in, "/leases", f"/leases/{theirs.id}/revoke", {})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_a_member_of_two_spaces_revokes_in_either(
    client_in: Client, member: Any, django_user_model: Any
) -> None:
    second = make_tenant("initech")
    Membership.objects.create(user=member, space=second.space)
    lease = lease_mint(run=services.run_create(space=second.space), kind="replay").lease
    response = csrf_post(client_in, "/leases", f"/leases/{lease.id}/revoke", {})
    assert response.status_code == 302
    lease.refresh_from_db()
    assert lease.revoked_at is not None


@pytest.mark.parametrize("path", ["/leases"])
def test_leases_page_requires_login(db: None, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


# Admin ------------------------------------------------------------------------------


@pytest.fixture
def admin_client_in(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_lists_leases_read_only_and_searches_by_run(
    admin_client_in: Client, run: Run
) -> None:
    lease = lease_mint(run=run, kind="replay").lease
    listing = admin_client_in.get(f"/admin/viewers/viewerlease/?q={run.id}")
    assert listing.status_code == 200
    assert lease.id in listing.content.decode()
    assert admin_client_in.get("/admin/viewers/viewerlease/?kind__exact=live").status_code == 200
    detail = admin_client_in.get(f"/admin/viewers/viewerlease/{lease.id}/change/")
    assert detail.status_code == 200
    assert lease.secret_hash not in detail.content.decode()
    assert admin_client_in.get("/admin/viewers/viewerlease/add/").status_code == 403


def test_admin_revoke_action(admin_client_in: Client, run: Run) -> None:
    leases = [lease_mint(run=run, kind="replay").lease for _ in range(2)]
    response = admin_client_in.post(
        "/admin/viewers/viewerlease/",
        {"action": "revoke", "_selected_action": [lease.pk for lease in leases]},
    )
    assert response.status_code == 302
    assert ViewerLease.objects.filter(revoked_at__isnull=False).count() == 2
