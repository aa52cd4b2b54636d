"""A space's upstream Browser Run account (`/v1/spaces/{id}/upstream` and the dashboard's
space settings): set, shown without its token, cleared, validated, and of one space only."""

import logging
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from recordings.models import UpstreamAccount

from .conftest import Tenant
from .test_recordings_seed_api import assert_error


def upstream_url(space_id: str) -> str:
    return f"/v1/spaces/{space_id}/upstream"


def put_upstream(tenant: Tenant, body: dict[str, Any], space_id: str | None = None) -> Any:
    return tenant.client.put(upstream_url(space_id or tenant.space.id), body, format="json")


ACCOUNT = {
    "baseUrl": "https://api.cloudflare.com/client/v4/",
    "accountId": "023e105f4ecef8ad9ca31a8372d0c353",
    "apiToken": "cf-token-0123456789abcdef-WXYZ",
}


def test_it_sets_shows_and_clears_the_upstream_account_without_the_token(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    empty = tenant.client.get(upstream_url(tenant.space.id))
    assert empty.status_code == 200
    assert empty.json()["configured"] is False
    response = put_upstream(tenant, ACCOUNT)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "spaceId": tenant.space.id,
        "configured": True,
        "baseUrl": "https://api.cloudflare.com/client/v4",
        "accountId": ACCOUNT["accountId"],
        "apiTokenSet": True,
        "apiTokenLastFour": "WXYZ",
        "updatedAt": response.json()["updatedAt"],
    }
    got = tenant.client.get(upstream_url(tenant.space.id))
    assert got.json() == response.json()
    # A new URL without the token keeps the token.
    kept = put_upstream(tenant, {"baseUrl": "http://10.0.0.5:8000/client/v4", "accountId": "spc_x"})
    assert kept.status_code == 200, kept.content
    assert UpstreamAccount.objects.get().api_token == ACCOUNT["apiToken"]
    cleared = tenant.client.delete(upstream_url(tenant.space.id))
    assert cleared.status_code == 200
    assert cleared.json()["configured"] is False
    assert not UpstreamAccount.objects.exists()
    assert tenant.client.delete(upstream_url(tenant.space.id)).status_code == 200
    for answer in (response, got, kept, cleared):
        assert ACCOUNT["apiToken"] not in answer.content.decode()
    assert ACCOUNT["apiToken"] not in caplog.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"baseUrl": "ftp://example.com/client/v4"}, "baseUrl"),
        ({"baseUrl": "https://user:secret@example.com/client/v4"}, "baseUrl"),
        ({"baseUrl": "https://example.com/client/v4?x=1"}, "baseUrl"),
        ({"baseUrl": "http://169.254.169.254/latest"}, "baseUrl"),
        ({"baseUrl": "http://[fe80::1]/client/v4"}, "baseUrl"),
        ({"baseUrl": "http://0.0.0.0:8000/client/v4"}, "baseUrl"),
        ({"baseUrl": "example.com/client/v4"}, "baseUrl"),
        ({"baseUrl": 5}, "baseUrl"),
        ({"accountId": "../other"}, "accountId"),
        ({"apiToken": "two words"}, "apiToken"),
        ({"apiToken": "line\r\nX-Injected: 1"}, "apiToken"),
        ({"extra": 1}, "extra"),
    ],
)
def test_an_invalid_upstream_account_is_422_and_changes_nothing(
    tenant: Tenant, change: dict[str, Any], field: str
) -> None:
    response = put_upstream(tenant, {**ACCOUNT, **change})
    assert_error(response, 422, "validation_error")
    assert field in response.json()["error"]["details"]
    assert not UpstreamAccount.objects.exists()


def test_the_first_upstream_account_needs_a_token(tenant: Tenant) -> None:
    response = put_upstream(tenant, {"baseUrl": ACCOUNT["baseUrl"], "accountId": "a"})
    assert_error(response, 422, "validation_error")
    assert response.json()["error"]["details"] == {"field": "apiToken"}


def test_another_spaces_upstream_account_is_404(tenant: Tenant, other_tenant: Tenant) -> None:
    put_upstream(other_tenant, ACCOUNT)
    theirs = upstream_url(other_tenant.space.id)
    assert_error(tenant.client.get(theirs), 404, "not_found")
    assert_error(put_upstream(tenant, ACCOUNT, other_tenant.space.id), 404)
    assert_error(tenant.client.delete(theirs), 404)
    assert_error(APIClient().get(theirs), 401)
    assert UpstreamAccount.objects.get().space_id == other_tenant.space.id


# --- The dashboard's space settings -------------------------------------------------------


@pytest.fixture
def signed_in(member: Any) -> Client:
    client = Client()
    client.force_login(member)
    return client


def test_the_space_settings_page_sets_and_clears_the_upstream_account(
    tenant: Tenant, signed_in: Client
) -> None:
    page = signed_in.get("/")
    assert b'href="/settings"' in page.content
    page = signed_in.get("/settings")
    assert page.status_code == 200
    assert b"Upstream Browser Run account" in page.content
    saved = signed_in.post(
        "/settings",
        {
            "action": "set-upstream",
            "base_url": ACCOUNT["baseUrl"],
            "account_id": ACCOUNT["accountId"],
            "api_token": ACCOUNT["apiToken"],
        },
    )
    assert saved.status_code == 302
    account = UpstreamAccount.objects.get(space=tenant.space)
    assert account.api_token == ACCOUNT["apiToken"]
    assert ACCOUNT["apiToken"] not in account.api_token_sealed  # encrypted at rest
    page = signed_in.get(saved["Location"])
    text = page.content.decode()
    assert "The upstream account is saved." in text
    assert 'ends in <span class="mono">…WXYZ</span>' in text
    assert ACCOUNT["apiToken"] not in text
    refused = signed_in.post(
        "/settings",
        {"action": "set-upstream", "base_url": "http://169.254.169.254/", "account_id": "a"},
    )
    assert refused.status_code == 400
    assert "link-local" in refused.content.decode()
    assert UpstreamAccount.objects.get().base_url == "https://api.cloudflare.com/client/v4"
    cleared = signed_in.post("/settings", {"action": "clear-upstream"})
    assert cleared.status_code == 302
    assert not UpstreamAccount.objects.exists()
    assert "No upstream account" in signed_in.get("/settings").content.decode()


def test_the_settings_page_is_of_the_members_space_only(
    tenant: Tenant, other_tenant: Tenant, signed_in: Client
) -> None:
    put_upstream(other_tenant, ACCOUNT)
    page = signed_in.get("/settings").content.decode()
    assert tenant.space.id in page
    assert other_tenant.space.id not in page and ACCOUNT["accountId"] not in page
    assert Client().get("/settings").status_code == 302  # to the sign-in
