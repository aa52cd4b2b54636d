"""Which sites may embed a space's viewer links: `GET/PATCH /v1/spaces/{id}`, the Embedding
card of the space settings, what the Share tab says, the framing headers and the live
view's Origin rule that follow the list (bctrl_site.origins)."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from bctrl_site.origins import origin_allowed
from runs import services
from runs.models import Run, Space
from viewers.leases import lease_mint
from viewers.models import ViewerLease

from .conftest import Tenant
from .test_recordings_seed_api import assert_error


def space_url(space_id: str) -> str:
    return f"/v1/spaces/{space_id}"


def patch_space(tenant: Tenant, body: Any, space_id: str | None = None) -> Any:
    return tenant.client.patch(space_url(space_id or tenant.space.id), body, format="json")


@pytest.fixture
def signed_in(member: Any) -> Client:
    client = Client()
    client.force_login(member)
    return client


# The API ------------------------------------------------------------------------------


def test_a_new_space_lets_any_site_embed_and_answers_so(tenant: Tenant) -> None:
    response = tenant.client.get(space_url(tenant.space.id))
    assert response.status_code == 200
    assert response.json() == {
        "id": tenant.space.id,
        "object": "space",
        "name": "Acme",
        "slug": "acme",
        "embedOrigins": ["*"],
        "recordingRetentionDays": 7,
        "createdAt": response.json()["createdAt"],
    }


def test_it_restricts_embedding_to_origins_normalized_and_back_to_any(tenant: Tenant) -> None:
    response = patch_space(
        tenant,
        {
            "embedOrigins": [
                "https://App.Example.com/",
                "http://localhost:3000",
                "https://app.example.com",
            ]
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["embedOrigins"] == ["https://app.example.com", "http://localhost:3000"]
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == [
        "https://app.example.com",
        "http://localhost:3000",
    ]
    assert tenant.client.get(space_url(tenant.space.id)).json() == response.json()

    none = patch_space(tenant, {"embedOrigins": []})
    assert none.json()["embedOrigins"] == []
    anyone = patch_space(tenant, {"embedOrigins": ["*"]})
    assert anyone.json()["embedOrigins"] == ["*"]
    unchanged = patch_space(tenant, {})
    assert unchanged.status_code == 200 and unchanged.json()["embedOrigins"] == ["*"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"embedOrigins": ["https://a.com/path"]}, "is not an origin"),
        ({"embedOrigins": ["https://a.com; script-src *"]}, "is not an origin"),
        ({"embedOrigins": ["app.example.com"]}, "is not an origin"),
        ({"embedOrigins": ["ftp://a.com"]}, "is not an origin"),
        ({"embedOrigins": ["https://a.com:70000"]}, "is not an origin"),
        ({"embedOrigins": ["*", "https://a.com"]}, "stands alone"),
        ({"embedOrigins": [f"https://a{n}.example" for n in range(21)]}, "At most 20"),
        ({"embedOrigins": "*"}, "list"),
        ({"embedOrigins": None}, "null"),
        ({"embedOrigins": [5]}, "string"),
        ({"embedOrigin": ["*"]}, "Unknown field"),
        ({"name": "Renamed"}, "Unknown field"),
    ],
)
def test_invalid_embed_origins_are_422_and_change_nothing(
    tenant: Tenant, body: Any, words: str
) -> None:
    tenant.space.allowed_embed_origins = ["https://kept.example"]
    tenant.space.save()
    response = patch_space(tenant, body)
    assert_error(response, 422, "validation_error")
    assert words in response.json()["error"]["message"]
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == ["https://kept.example"]
    assert tenant.space.name == "Acme"


def test_a_body_that_is_not_an_object_is_400(tenant: Tenant) -> None:
    assert_error(patch_space(tenant, ["*"]), 400, "invalid_json")
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == ["*"]


def test_the_bad_entry_is_named_by_its_index(tenant: Tenant) -> None:
    response = patch_space(tenant, {"embedOrigins": ["https://ok.example", "nope"]})
    assert response.json()["error"]["details"] == {"field": "embedOrigins", "index": 1}
    assert response.json()["error"]["message"] == (
        'embedOrigins: "nope" is not an origin: write scheme://host[:port], such as '
        "https://app.example.com or http://localhost:3000 (no path)."
    )


def test_another_spaces_settings_are_404_and_a_key_is_needed(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = space_url(other_tenant.space.id)
    assert_error(tenant.client.get(theirs), 404, "not_found")
    assert_error(patch_space(tenant, {"embedOrigins": []}, other_tenant.space.id), 404)
    assert_error(tenant.client.get(space_url("spc_unknown")), 404)
    assert_error(APIClient().get(space_url(tenant.space.id)), 401)
    assert_error(APIClient().patch(theirs, {"embedOrigins": []}, format="json"), 401)
    other_tenant.space.refresh_from_db()
    assert other_tenant.space.allowed_embed_origins == ["*"]


def test_a_revoked_key_cannot_change_them(tenant: Tenant) -> None:
    from django.utils import timezone

    tenant.api_key.revoked_at = timezone.now()
    tenant.api_key.save()
    assert_error(patch_space(tenant, {"embedOrigins": []}), 401)
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == ["*"]


def test_the_admin_form_checks_them_too(tenant: Tenant) -> None:
    tenant.space.allowed_embed_origins = ["https://A.example/", "javascript:alert(1)"]
    with pytest.raises(ValidationError, match="is not an origin"):
        tenant.space.full_clean()
    tenant.space.allowed_embed_origins = ["https://A.example/"]
    tenant.space.full_clean()
    assert tenant.space.allowed_embed_origins == ["https://a.example"]


# Framing follows the list -------------------------------------------------------------


def frame_ancestors_of(client: Client, run: Run, kind: str) -> str:
    token = lease_mint(run=run, kind=kind).token
    response = client.get(f"/embed/{kind}/{token}")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    directive = response["Content-Security-Policy"].split("; ")[-1]
    assert directive.startswith("frame-ancestors ")
    return directive.removeprefix("frame-ancestors ")


@pytest.mark.parametrize("kind", [ViewerLease.Kind.ACTIVITY, ViewerLease.Kind.LIVE])
def test_embeds_may_be_framed_by_any_site_until_the_space_restricts_it(
    client: Client, tenant: Tenant, kind: str
) -> None:
    run = services.run_create(space=tenant.space, name="shared")
    assert frame_ancestors_of(client, run, kind) == "*"
    services.space_embed_origins_set(space=tenant.space, origins=["https://app.example.com"])
    assert frame_ancestors_of(client, run, kind) == "https://app.example.com"
    services.space_embed_origins_set(space=tenant.space, origins=[])
    assert frame_ancestors_of(client, run, kind) == "'none'"


@pytest.mark.parametrize(
    ("origin", "origins", "allowed"),
    [
        ("https://anyone.example", ["*"], True),
        ("http://localhost:3000", ["*"], True),
        ("null", ["*"], False),  # an opaque origin (a sandboxed or file:// page)
        ("", ["*"], False),
        ("https://app.example.com", ["https://app.example.com"], True),
        ("https://app.example.com:443", ["https://app.example.com"], True),
        ("https://APP.example.com", ["https://app.example.com"], True),
        ("https://app.example.com:8443", ["https://app.example.com"], False),
        ("http://app.example.com", ["https://app.example.com"], False),
        ("https://app.example.com", ["http://app.example.com"], True),  # CSP's upgrade
        ("https://eu.customers.example", ["https://*.customers.example"], True),
        ("https://customers.example", ["https://*.customers.example"], False),
        ("https://evilcustomers.example", ["https://*.customers.example"], False),
        ("https://a.com", [], False),
        ("https://a.com", ["*", "https://b.com"], False),  # "*" counts only alone
    ],
)
def test_origins_match_as_frame_ancestors_would(
    origin: str, origins: list[str], allowed: bool
) -> None:
    assert origin_allowed(origin, origins) is allowed


# The dashboard ------------------------------------------------------------------------


def test_the_settings_page_restricts_embedding_and_opens_it_again(
    tenant: Tenant, signed_in: Client
) -> None:
    page = signed_in.get("/settings").content.decode()
    assert 'data-embed-reach="any"' in page
    assert 'value="any" checked' in page

    saved = signed_in.post(
        "/settings",
        {
            "action": "set-embedding",
            "embed_mode": "listed",
            "embed_origins": "https://App.example.com\nhttp://localhost:3000\n",
        },
    )
    assert saved.status_code == 302
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == [
        "https://app.example.com",
        "http://localhost:3000",
    ]
    page = signed_in.get(saved["Location"]).content.decode()
    assert "Embedding is saved." in page
    assert 'value="listed" checked' in page
    assert "https://app.example.com\nhttp://localhost:3000</textarea>" in page

    refused = signed_in.post(
        "/settings",
        {"action": "set-embedding", "embed_mode": "listed", "embed_origins": "https://a.com/x"},
    )
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "is not an origin" in text and ">https://a.com/x</textarea>" in text
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == [
        "https://app.example.com",
        "http://localhost:3000",
    ]

    signed_in.post("/settings", {"action": "set-embedding", "embed_mode": "any"})
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == ["*"]


def test_the_settings_link_of_a_run_opens_the_runs_space(
    tenant: Tenant, other_tenant: Tenant, signed_in: Client, member: Any
) -> None:
    from runs.models import Membership

    Membership.objects.create(user=member, space=other_tenant.space)
    page = signed_in.get(f"/settings?space={other_tenant.space.id}").content.decode()
    assert f'<span class="mono small">{other_tenant.space.id}</span>' in page
    # Not a member: the current space stays.
    stranger = Space.objects.create(name="Stranger", slug="stranger")
    page = signed_in.get(f"/settings?space={stranger.id}").content.decode()
    assert stranger.id not in page


@pytest.mark.parametrize(
    ("origins", "words"),
    [
        (["*"], "Viewer links open in an <code>&lt;iframe&gt;</code> on any site."),
        (
            ["https://app.example.com", "http://localhost:3000"],
            "only on <code>https://app.example.com</code>, <code>http://localhost:3000</code>;",
        ),
        ([], "only as a page of their own."),
    ],
)
def test_the_share_tab_says_where_links_open(
    tenant: Tenant, signed_in: Client, origins: list[str], words: str
) -> None:
    services.space_embed_origins_set(space=tenant.space, origins=origins)
    run = services.run_create(space=tenant.space, name="shared")
    page = signed_in.get(f"/runs/{run.id}").content.decode()
    assert words in page
    assert "in any page" not in page
    created = signed_in.post(f"/runs/{run.id}/share", {"kind": "replay", "lifetime": "900"})
    assert words in created.content.decode()


def test_create_space_lets_any_site_embed_unless_told_and_checks_origins(db: None) -> None:
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("create_space", "Open", stdout=out)
    assert Space.objects.get(pk=out.getvalue().strip()).allowed_embed_origins == ["*"]
    with pytest.raises(CommandError, match="is not an origin"):
        call_command("create_space", "Closed", "--embed-origin", "qa.example/x")
    assert not Space.objects.filter(slug="closed").exists()
