"""The replay inspector's data (recordings/inspector.py) through the replay page's endpoint
and the replay embed's, the redaction of recorded headers (runs.cdp.redact_headers) and
the page names that processing reads out of full snapshots (the replay's tab names)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client
from django.urls import reverse

from recordings.chunking import snapshot_page, target_pages
from runs import services
from runs.cdp import REDACTED, redact_headers
from runs.models import Command, Run
from tests.conftest import Tenant
from tests.test_replay import STARTED_AT, T0, Nodes, StoredTarget, page_chunk

# The replay tests' fixtures: a run of `tenant`, a member signed in, a processed target.
from tests.test_replay import processed as processed
from tests.test_replay import run as run
from tests.test_replay import signed_in as signed_in
from viewers.leases import lease_mint


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def record_traffic(run: Run) -> None:
    """What the runtime host writes for a page: a document, a fetch that carried a
    token and a cookie (as a client posting its own events might send them unredacted),
    a redirect, a failed request, console messages, a page error and two commands."""
    events: list[dict[str, Any]] = [
        {
            "type": "network.request",
            "time": at(T0 + 100),
            "page_id": "page-1",
            "data": {
                "requestId": "r1",
                "method": "GET",
                "url": "https://shop.example/",
                "resourceType": "Document",
                "headers": {"Accept": "text/html"},
            },
        },
        {
            "type": "network.request",
            "time": at(T0 + 1500),
            "page_id": "page-1",
            "data": {
                "requestId": "r2",
                "method": "POST",
                "url": "https://shop.example/api/cart?x=1",
                "resourceType": "Fetch",
                "headers": {"Authorization": "Bearer sk-live-123", "Content-Type": "text/json"},
            },
        },
        {
            "type": "network.response",
            "time": at(T0 + 300),
            "page_id": "page-1",
            "data": {
                "requestId": "r1",
                "url": "https://shop.example/",
                "status": 200,
                "mimeType": "text/html",
                "encodedDataLength": 5120,
                "durationMs": 180,
                "headers": {"Content-Type": "text/html", "Set-Cookie": "sid=abc; HttpOnly"},
            },
        },
        {
            "type": "network.response",
            "time": at(T0 + 1600),
            "page_id": "page-1",
            "data": {
                "requestId": "r2",
                "url": "https://shop.example/api/cart?x=1",
                "status": 500,
                "mimeType": "application/json",
                "encodedDataLength": 90,
                "requestHeaders": {"cookie": "sid=abc", "authorization": "Bearer sk-live-123"},
                "headers": {"content-type": "application/json"},
            },
        },
        {
            "type": "network.request",
            "time": at(T0 + 2000),
            "page_id": "page-1",
            "data": {"requestId": "r3", "method": "GET", "url": "https://cdn.example/app.js"},
        },
        {
            "type": "network.failed",
            "time": at(T0 + 2100),
            "page_id": "page-1",
            "data": {"requestId": "r3", "url": "https://cdn.example/app.js", "errorText": "net::X"},
        },
        {
            "type": "console.message",
            "time": at(T0 + 2200),
            "page_id": "page-1",
            "data": {"level": "warning", "text": "Slow network"},
        },
        {
            "type": "page.error",
            "time": at(T0 + 2300),
            "page_id": "page-1",
            "data": {
                "message": "TypeError: x is undefined",
                "stack": "TypeError: x is undefined\n    at checkout (app.js:3:9)",
            },
        },
        {"type": "navigation", "time": at(T0 + 50), "page_id": "page-1", "data": {"url": "x"}},
    ]
    services.events_append(run=run, events=events)
    for offset, method, status in (
        (900, "Page.navigate", Command.Status.SUCCEEDED),
        (2400, "Runtime.evaluate", Command.Status.FAILED),
    ):
        Command.objects.create(
            run=run,
            method=method,
            params={"url": "https://shop.example/"} if method == "Page.navigate" else {},
            status=status,
            page_id="page-1",
            started_at=at(T0 + offset),
            duration_ms=12,
            error={"message": "Cannot find context"} if status == "failed" else None,
        )


def inspector_url(run: Run) -> str:
    return reverse("replay:inspector", args=[run.id])


def test_the_inspector_lists_requests_console_and_commands_on_the_replay_clock(
    signed_in: Client,
    run: Run,
    processed: StoredTarget,
) -> None:
    record_traffic(run)
    response = signed_in.get(inspector_url(run))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    body = response.json()

    document, fetch, script = body["network"]
    assert document["timeMs"] == T0 + 100
    assert (document["method"], document["status"], document["resourceType"]) == (
        "GET",
        200,
        "Document",
    )
    assert (document["sizeBytes"], document["durationMs"]) == (5120, 180)
    assert document["responseHeaders"] == {"Content-Type": "text/html", "Set-Cookie": REDACTED}
    # The wire headers of the response event replace what the request knew.
    assert fetch["status"] == 500 and fetch["durationMs"] == 100
    assert fetch["requestHeaders"] == {"cookie": REDACTED, "authorization": REDACTED}
    assert script["failed"] is True and script["errorText"] == "net::X"
    assert script["status"] is None
    assert "sk-live-123" not in response.content.decode()
    assert "sid=abc" not in response.content.decode()

    warning, error = body["console"]
    assert (warning["level"], warning["text"], warning["pageError"]) == (
        "warning",
        "Slow network",
        False,
    )
    assert error["level"] == "error" and error["pageError"] is True
    assert "at checkout (app.js:3:9)" in error["stack"]

    navigate, evaluate = body["commands"]
    assert navigate["method"] == "Page.navigate" and navigate["timeMs"] == T0 + 900
    assert navigate["params"] == {"url": "https://shop.example/"}
    assert evaluate["status"] == "failed" and evaluate["error"] == "Cannot find context"
    assert body["truncated"] == {"network": False, "console": False, "commands": False}


def test_the_inspector_reads_a_fixed_number_of_queries(
    signed_in: Client,
    run: Run,
    django_assert_max_num_queries: Any,
) -> None:
    record_traffic(run)
    # session, user, the run (in the user's spaces), events, commands
    with django_assert_max_num_queries(5):
        assert signed_in.get(inspector_url(run)).status_code == 200


def test_another_spaces_inspector_is_404_and_anonymous_is_401(
    client: Client,
    signed_in: Client,
    other_tenant: Tenant,
) -> None:
    theirs = Run.objects.create(space=other_tenant.space, name="theirs", started_at=STARTED_AT)
    record_traffic(theirs)
    assert signed_in.get(inspector_url(theirs)).status_code == 404
    client.logout()
    answer = client.get(inspector_url(theirs))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"


def test_the_replay_page_offers_the_four_tabs(
    signed_in: Client,
    run: Run,
    processed: StoredTarget,
) -> None:
    body = signed_in.get(reverse("replay:page", args=[run.id])).content.decode()
    for tab in ("activity", "network", "console", "commands"):
        assert f'data-inspector-tab="{tab}"' in body
    assert f'data-inspector-url="{inspector_url(run)}"' in body
    assert "0:00 / 0:00" not in body


# The embed ----------------------------------------------------------------------------


def embed_inspector(token: str) -> str:
    return reverse("embed:replay-inspector", args=[token])


def test_the_embed_shows_the_tabs_its_lease_names(
    client: Client,
    run: Run,
    processed: StoredTarget,
) -> None:
    record_traffic(run)
    plain = lease_mint(run=run, kind="replay").token
    body = client.get(f"/embed/replay/{plain}").content.decode()
    assert "data-inspector-tab=" not in body and 'aria-labelledby="timeline-title" hidden' in body
    refused = client.get(embed_inspector(plain))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "lease.wrong_kind"

    token = lease_mint(run=run, kind="replay", components=["network", "console"]).token
    body = client.get(f"/embed/replay/{token}").content.decode()
    assert 'data-inspector-tab="network"' in body and 'data-inspector-tab="console"' in body
    assert 'data-inspector-tab="activity"' not in body
    assert 'data-inspector-tab="commands"' not in body
    data = client.get(embed_inspector(token)).json()
    assert set(data) == {"network", "console", "truncated"}
    assert len(data["network"]) == 3
    assert "sk-live-123" not in str(data)
    # The manifest keeps its activity to the "activity" component.
    assert client.get(f"/embed/replay/{token}/manifest").json()["activity"] == []

    everything = lease_mint(
        run=run, kind="replay", components=["activity", "network", "console", "commands"]
    ).token
    data = client.get(embed_inspector(everything)).json()
    assert set(data) == {"network", "console", "commands", "truncated"}


def test_the_embed_inspector_refuses_a_revoked_or_expired_lease(
    client: Client,
    run: Run,
) -> None:
    minted = lease_mint(run=run, kind="replay", components=["network"])
    type(minted.lease).objects.filter(pk=minted.lease.pk).update(
        expires_at=minted.lease.expires_at - timedelta(days=2)
    )
    answer = client.get(embed_inspector(minted.token))
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "lease.expired"


def test_the_recording_api_mints_a_viewer_with_inspector_components(
    tenant: Tenant,
    run: Run,
) -> None:
    answer = tenant.client.post(
        f"/v1/runs/{run.id}/recording",
        {"components": ["network", "commands"]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    token = answer.json()["iframeUrl"].rstrip("/").rsplit("/", 1)[-1]
    assert Client().get(embed_inspector(token)).json().keys() == {
        "network",
        "commands",
        "truncated",
    }
    wrong = tenant.client.post(
        f"/v1/runs/{run.id}/recording", {"components": ["headers"]}, format="json"
    )
    assert wrong.status_code == 422


# Headers --------------------------------------------------------------------------------


def test_secret_headers_keep_their_name_and_lose_their_value() -> None:
    headers = {
        "Authorization": "Bearer x",
        "Cookie": "a=b",
        "set-cookie": "c=d",
        "Proxy-Authorization": "Basic y",
        "X-Api-Key": "k",
        "Accept": "*/*",
        "X-Long": "v" * 5000,
    }
    redacted = redact_headers(headers)
    assert redacted["Authorization"] == redacted["Cookie"] == REDACTED
    assert redacted["set-cookie"] == redacted["Proxy-Authorization"] == REDACTED
    assert redacted["X-Api-Key"] == REDACTED
    assert redacted["Accept"] == "*/*"
    assert len(redacted["X-Long"]) == 2000
    assert redact_headers("not headers") == {}
    assert len(redact_headers({f"h{i}": "v" for i in range(500)})) == 100


# Page names -----------------------------------------------------------------------------


def test_processing_names_the_pages_of_a_tab_by_title_and_favicon() -> None:
    nodes = Nodes()
    icon = nodes.el("link", {"rel": "shortcut icon", "href": "/static/logo.svg"})
    document = nodes.document("  Checkout \n · Shop ", [], head=[icon])
    assert snapshot_page(document) == ("Checkout · Shop", "/static/logo.svg")
    assert snapshot_page({"type": 0, "childNodes": []}) == ("", "")

    first = page_chunk(T0, "Welcome", "hello")
    same = page_chunk(T0 + 5000, "Welcome", "hello again")
    other = page_chunk(T0 + 9000, "Cart", "cart", site="cart.example")
    pages = target_pages([*first, *same, *other])
    assert pages == [
        {"time": T0 + 5, "url": "https://shop.example/", "title": "Welcome", "icon": ""},
        {"time": T0 + 9005, "url": "https://cart.example/", "title": "Cart", "icon": ""},
    ]


def test_the_manifest_carries_the_pages_of_each_tab(
    signed_in: Client,
    run: Run,
    processed: StoredTarget,
) -> None:
    [target] = signed_in.get(reverse("replay:manifest", args=[run.id])).json()["targets"]
    assert [page["title"] for page in target["index"]["pages"]] == ["Hello", "Late"]


def test_a_tab_processed_before_pages_were_kept_is_named_by_its_navigations(
    signed_in: Client,
    run: Run,
    processed: StoredTarget,
) -> None:
    row = processed.target
    row.index = {key: value for key, value in row.index.items() if key != "pages"}
    row.save()
    services.events_append(
        run=run,
        events=[
            {
                "type": "navigation",
                "time": at(T0 + 10),
                "page_id": "page-1",
                "data": {"url": "https://shop.example/cart"},
            },
            {
                "type": "navigation",
                "time": at(T0 + 20),
                "page_id": "another-page",
                "data": {"url": "https://elsewhere.example/"},
            },
        ],
    )
    [target] = signed_in.get(reverse("replay:manifest", args=[run.id])).json()["targets"]
    assert target["index"]["pages"] == [
        {"time": T0 + 10, "url": "https://shop.example/cart", "title": "", "icon": ""}
    ]
