"""The demo shop (/demo/) and `manage.py demo` end to end: a live daphne (`asgi_server`),
a runtime host in a thread (`host_thread`), Playwright through the real connectUrl proxy."""

from typing import Any

import pytest
from bctrl import Bctrl
from django.core.management import CommandError, call_command
from django.test import Client

from demo.management.commands.demo import (
    DEMO_CARD,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    redacted_connect_url,
    run_demo,
)
from runs.models import ApiKey, Artifact, Command, Event, Run, Runtime
from runtime_host.host import RuntimeHost
from runtimes.services import runtime_create
from tests.conftest import Tenant

PAGES = [
    "/demo/",
    "/demo/products",
    "/demo/products/summit-pack",
    "/demo/signin",
    "/demo/checkout?product=camp-mug",
    "/demo/help?order=BC-1",
    "/demo/chat",
    "/demo/status",
    "/demo/stress",
]
CHECKOUT = {
    "product": "camp-mug",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "address": "12 Analytical Row",
    "card": "4242 4242 4242 4242",
    "expiry": "12/29",
    "quantity": "2",
}


# The demo shop ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_demo_pages_render_without_login_and_inline_script(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ridgeline Outfitters" in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "<script>" not in html and " onclick=" not in html and " style=" not in html


def test_unknown_product_is_404(client: Client) -> None:
    assert client.get("/demo/products/nope").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["demo/demo.css", "demo/demo.js", "demo/checkout.js", "demo/status.js", "demo/stress.js"],
)
def test_demo_static_files_are_served(client: Client, path: str) -> None:
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    body = response.getvalue()
    assert len(body) > 200


def test_checkout_validates_then_confirms_and_the_receipt_downloads(client: Client) -> None:
    refused = client.post("/demo/checkout", {**CHECKOUT, "card": "4111 1111", "email": "nope"})
    assert refused.status_code == 400
    assert b"A card number has 16 digits." in refused.content
    assert b"Enter an email address" in refused.content
    assert b"4111 1111" not in refused.content  # a card number is never echoed

    placed = client.post("/demo/checkout", CHECKOUT)
    assert placed.status_code == 302 and placed["Location"].startswith("/demo/orders/")
    confirmation = client.get(placed["Location"])
    assert confirmation.status_code == 200
    assert b"Thank you, Ada Lovelace!" in confirmation.content
    assert b'target="_blank"' in confirmation.content

    receipt = client.get(placed["Location"] + "/receipt.csv")
    assert receipt.status_code == 200
    assert receipt["Content-Type"].startswith("text/csv")
    assert receipt["Content-Disposition"].startswith('attachment; filename="receipt-BC-')
    rows = receipt.content.decode().splitlines()
    assert rows[0].startswith("order,placed,item")
    assert "Titanium Camp Mug,2,24.90,49.80" in rows[1]
    assert rows[-1].endswith("Total,,,56.70")


def test_a_tampered_order_is_404(client: Client) -> None:
    placed = client.post("/demo/checkout", CHECKOUT)
    assert client.get(placed["Location"] + "x").status_code == 404


def test_sign_in_sets_the_user_and_refuses_a_short_password(client: Client) -> None:
    refused = client.post("/demo/signin", {"email": DEMO_EMAIL, "password": "123"})
    assert refused.status_code == 400
    signed_in = client.post("/demo/signin", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/demo/products"
    assert DEMO_EMAIL in client.get("/demo/").content.decode()
    # `next` may only lead back into the demo.
    away = client.post(
        "/demo/signin", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "next": "https://x.io/"}
    )
    assert away["Location"] == "/demo/products"


def test_status_page_fails_on_purpose(client: Client) -> None:
    html = client.get("/demo/status").content.decode()
    assert "/static/demo/status.js" in html and "/demo/missing/banner.png" in html
    assert client.get("/demo/missing/banner.png").status_code == 404
    assert client.get("/demo/api/delivery-estimate").status_code == 404


def test_redacted_connect_url_hides_the_token() -> None:
    url = "ws://127.0.0.1:8000/cdp/abc.def-secret?recording=false"
    assert redacted_connect_url(url) == "ws://127.0.0.1:8000/cdp/…?recording=false"


def test_demo_command_says_when_the_server_is_not_running(tenant: Tenant) -> None:
    with pytest.raises(CommandError, match="make run"):
        call_command("demo", "--base-url", "http://127.0.0.1:9", "--space", tenant.space.slug)
    runtime = Runtime.objects.get(space=tenant.space, name="Demo")
    assert runtime.status == Runtime.Status.IDLE  # nothing was started
    # The key it issued for itself is revoked again.
    assert not ApiKey.objects.filter(space=tenant.space, revoked_at__isnull=True).exclude(
        pk=tenant.api_key.pk
    )


# End to end -------------------------------------------------------------------------------


def events_of(run: Run, type: str) -> list[Event]:
    return list(Event.objects.filter(run=run, type=type).order_by("seq"))


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_the_demo_records_a_complete_run(
    asgi_server: str,
    host_thread: RuntimeHost,
    tenant: Tenant,
    member: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop, see conftest
    runtime = runtime_create(space=tenant.space, name="Demo")
    said: list[str] = []
    outcome = run_demo(
        base_url=asgi_server,
        api_key=tenant.raw_key,
        runtime_id=runtime.id,
        say=said.append,
        run_timeout_s=60,
        recording_timeout_s=90,
    )
    assert outcome.recording_status == "ready"
    assert outcome.flow.order_number.startswith("BC-")
    assert outcome.flow.receipt_name == f"receipt-{outcome.flow.order_number}.csv"
    assert outcome.dashboard_url == f"{asgi_server}/runs/{outcome.run_id}"
    assert any("screenshot" in line for line in said)

    run = Run.objects.get(pk=outcome.run_id)
    assert run.status == Run.Status.COMPLETED and run.runtime_id == runtime.id
    shop = asgi_server + "/demo"

    # Events: navigation, the console error, the 404s, the download, the second tab.
    navigations = {e.data["url"] for e in events_of(run, "navigation")}
    for path in ("/", "/products", "/signin", "/status"):
        assert shop + path in navigations, (path, navigations)
    assert any(url.startswith(shop + "/orders/") for url in navigations)
    assert shop + "/chat" in navigations
    console = events_of(run, "console.message")
    assert any(
        e.data["level"] == "error" and "delivery estimates failed" in e.data["text"]
        for e in console
    )
    responses = events_of(run, "network.response")
    missing = [e for e in responses if e.data["status"] == 404]
    assert {e.data["url"].split("?")[0] for e in missing} >= {
        shop + "/api/delivery-estimate",
        shop + "/missing/banner.png",
    }
    downloads = events_of(run, "download")
    assert len(downloads) == 1
    assert downloads[0].data["suggestedFilename"] == outcome.flow.receipt_name
    receipt = Artifact.objects.get(pk=downloads[0].data["artifactId"])
    assert receipt.kind == Artifact.Kind.DOWNLOAD
    assert receipt.file.open("rb").read().startswith(b"order,placed,item")
    pages = {e.data["targetId"] for e in events_of(run, "target.created")}
    assert len(pages) >= 3  # the shop's tab, the help center's new tab, the chat pop-up

    # Commands through the proxy: navigations and typing, with the typed text redacted.
    commands = list(Command.objects.filter(run=run))
    methods = {c.method for c in commands}
    assert "Page.navigate" in methods
    typed = [c for c in commands if c.method.startswith("Input.")]
    assert typed
    stored = " ".join(str(c.params) for c in typed)
    for secret in (DEMO_PASSWORD, DEMO_EMAIL, DEMO_CARD.replace(" ", "")):
        assert secret not in stored
    keys = [c for c in typed if c.method == "Input.dispatchKeyEvent" and "text" in c.params]
    assert keys
    # Printable keys are redacted; Enter ("\r") and the like are kept.
    assert all(c.params["text"] == "[redacted]" or not c.params["text"].isprintable() for c in keys)
    assert sum(c.params["text"] == "[redacted]" for c in keys) >= len(DEMO_PASSWORD)
    assert any(c.method == "Page.captureScreenshot" and c.source == "platform" for c in commands)

    # Activity, artifacts, recording.
    client = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    activity = client.runs.activity.list(run.id).data
    assert activity
    assert any(item["type"] == "browser.type" for item in activity), {
        item["type"] for item in activity
    }
    # Activity in the words of the page: protocol plumbing is no step of its own, and
    # every click, typing and choice names the element it touched.
    said = [item["message"] for item in activity]
    listing = "\n".join(said)
    raw = [item for item in activity if item["type"] in ("command", "automation")]
    assert len(raw) <= len(activity) // 10, listing
    steps = [
        item
        for item in activity
        if item["type"] in ("browser.click", "browser.type", "browser.select", "browser.check")
    ]
    assert len(steps) >= 15, listing
    assert all(item["name"] for item in steps), [i["message"] for i in steps if not i["name"]]
    assert 'Clicked button "Place order"' in said, listing
    assert 'Typed 19 characters into "Card number"' in said, listing
    assert any(m.startswith("Downloaded receipt-") for m in said), listing
    assert any(m.startswith("Navigated to ") and " — /demo/checkout" in m for m in said), listing
    assert not any("failed: Cannot find context" in m for m in said), listing
    kinds = [a.kind for a in Artifact.objects.filter(run=run)]
    assert kinds.count(Artifact.Kind.SCREENSHOT) >= 1 and Artifact.Kind.DOWNLOAD in kinds

    from recordings.models import RecordingBatch

    recorded = set(
        RecordingBatch.objects.filter(recording__run=run).values_list("target", flat=True)
    )
    assert len(recorded) >= 2
    assert recorded <= pages

    detail = client.runs.retrieve(run.id)
    assert detail.recording_summary is not None and detail.recording_summary.status == "ready"
    viewer = Client()
    viewer.force_login(member)
    manifest = viewer.get(f"/runs/{run.id}/replay/manifest").json()
    assert manifest["mode"] == "chunks"
    playable = [t for t in manifest["targets"] if t["playable"]]
    assert len(playable) >= 2, manifest["targets"]
