"""Handoffs: an automation asks a person to do a step, and the space's webhook hears of it.

The API and the webhook against a real HTTP receiver on loopback; the person's side (the
live view in real Chromium) is in tests/test_handoffs_browser.py.
"""

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs import services, webhooks
from runs.activity import activity_items
from runs.models import Event, Handoff, Run, WebhookDelivery

from .conftest import Tenant

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on loopback that answers the statuses it is given, in turn
    (the last one for every later request), and keeps what it received."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                index = min(len(receiver.received), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bctrl?team=7"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_of() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return services.run_create(space=tenant.space, name="checkout")


def ask(tenant: Tenant, run: Run, **body: Any) -> Any:
    body.setdefault("instructions", "Type the 2FA code sent to the owner's phone")
    return tenant.client.post(f"/v1/runs/{run.id}/handoff", body, format="json")


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    code: str = response.json()["error"]["code"]
    return code


def test_a_handoff_is_asked_answered_with_a_live_url_and_completed_once(
    tenant: Tenant, run: Run
) -> None:
    response = ask(tenant, run, timeoutMs=120_000)
    assert response.status_code == 201, response.content
    handoff = response.json()
    assert handoff["status"] == "open" and handoff["runId"] == run.id
    assert handoff["instructions"] == "Type the 2FA code sent to the owner's phone"
    assert handoff["requestedBy"] == "acme key"
    assert "/embed/live/" in handoff["liveUrl"]
    # The live URL lasts as long as the handoff (at least the lease minimum).
    assert handoff["liveUrlExpiresAt"] >= handoff["expiresAt"][:19]

    # One open handoff per run.
    second = ask(tenant, run)
    assert error_of(second, 409) == "handoff.open"
    assert second.json()["error"]["details"] == {"handoffId": handoff["id"]}

    listed = tenant.client.get(f"/v1/runs/{run.id}/handoffs").json()["data"]
    assert [h["id"] for h in listed] == [handoff["id"]]

    done = tenant.client.post(
        f"/v1/runs/{run.id}/handoff/{handoff['id']}/complete",
        {"note": "Code typed; signed in"},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "completed"
    assert done.json()["completedBy"] == "acme key"
    assert done.json()["note"] == "Code typed; signed in"
    assert "liveUrl" not in done.json()  # a viewer URL is shown once
    again = tenant.client.post(
        f"/v1/runs/{run.id}/handoff/{handoff['id']}/complete", {}, format="json"
    )
    assert error_of(again, 409) == "handoff.ended"

    events = list(Event.objects.filter(run=run).order_by("seq").values_list("type", "data"))
    assert [t for t, _ in events] == ["handoff.requested", "handoff.completed"]
    assert events[1][1] == {
        "handoffId": handoff["id"],
        "who": "acme key",
        "note": "Code typed; signed in",
    }
    # The activity shows it as one span with what was asked and who did it.
    items = [item for item in activity_items(run) if item["type"] == "handoff"]
    assert len(items) == 1
    assert items[0]["message"].startswith("acme key did what was asked (")
    assert items[0]["message"].endswith(
        '): Type the 2FA code sent to the owner\'s phone — "Code typed; signed in"'
    )
    assert items[0]["status"] == "succeeded" and items[0]["durationMs"] >= 0

    # A new one may be asked once the first has ended.
    assert ask(tenant, run).status_code == 201


def test_a_handoff_of_another_space_is_not_found(
    tenant: Tenant, other_tenant: Tenant, run: Run
) -> None:
    handoff = ask(tenant, run).json()
    base = f"/v1/runs/{run.id}/handoff"
    assert (
        error_of(other_tenant.client.post(base, {"instructions": "x"}, format="json"), 404)
        == "not_found"
    )
    assert error_of(other_tenant.client.get(f"/v1/runs/{run.id}/handoffs"), 404) == "not_found"
    for action in ("complete", "cancel"):
        response = other_tenant.client.post(f"{base}/{handoff['id']}/{action}", {}, format="json")
        assert error_of(response, 404) == "not_found"
    # Another run's handoff id under this run is not found either.
    own = services.run_create(space=tenant.space)
    response = tenant.client.post(
        f"/v1/runs/{own.id}/handoff/{handoff['id']}/complete", {}, format="json"
    )
    assert error_of(response, 404) == "not_found"
    assert Handoff.objects.get(pk=handoff["id"]).status == "open"


@pytest.mark.parametrize(
    "body",
    [
        {"instructions": ""},
        {"instructions": "   "},
        {"instructions": "x" * 2001},
        {"instructions": 12},
        {"instructions": "Do it", "timeoutMs": 5},
        {"instructions": "Do it", "timeoutMs": 10**12},
        {"instructions": "Do it", "timeoutMs": "600000"},
        {"instructions": "Do it", "notify": "maybe"},
        {"instructions": "Do it", "colour": "red"},
        {},
    ],
)
def test_a_bad_request_is_a_422_and_opens_nothing(
    tenant: Tenant, run: Run, body: dict[str, Any]
) -> None:
    response = tenant.client.post(f"/v1/runs/{run.id}/handoff", body, format="json")
    assert error_of(response, 422) == "validation_error"
    assert not Handoff.objects.exists() and not Event.objects.exists()


def test_an_ended_run_cannot_ask_and_ending_a_run_cancels_its_handoff(
    tenant: Tenant, run: Run
) -> None:
    handoff = ask(tenant, run).json()
    services.run_stop(run=run)
    assert Handoff.objects.get(pk=handoff["id"]).status == "cancelled"
    types = list(Event.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types == ["handoff.requested", "handoff.cancelled"]
    assert error_of(ask(tenant, run), 409) == "run.ended"
    items = [item for item in activity_items(run) if item["type"] == "handoff"]
    assert items[0]["message"].startswith("The request for a person was withdrawn after ")


def test_a_handoff_expires_at_its_timeout_and_can_then_not_be_completed(
    tenant: Tenant, run: Run
) -> None:
    handoff = ask(tenant, run, timeoutMs=10_000).json()
    assert services.handoffs_expire(now=timezone.now() + timedelta(seconds=5)) == 0
    assert services.handoffs_expire(now=timezone.now() + timedelta(seconds=11)) == 1
    shown = tenant.client.get(f"/v1/runs/{run.id}/handoff/{handoff['id']}")
    assert shown.status_code == 200 and shown.json()["status"] == "expired"
    done = tenant.client.post(
        f"/v1/runs/{run.id}/handoff/{handoff['id']}/complete", {}, format="json"
    )
    assert error_of(done, 409) == "handoff.ended"
    items = [item for item in activity_items(run) if item["type"] == "handoff"]
    assert items[0]["message"].startswith("Nobody did what was asked within ")
    assert items[0]["status"] == "failed"


def test_cancel_withdraws_an_open_handoff(tenant: Tenant, run: Run) -> None:
    handoff = ask(tenant, run).json()
    response = tenant.client.post(f"/v1/runs/{run.id}/handoff/{handoff['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["completedBy"] is None


def test_the_wait_query_is_bounded(tenant: Tenant, run: Run) -> None:
    handoff = ask(tenant, run).json()
    path = f"/v1/runs/{run.id}/handoff/{handoff['id']}"
    for value in ("-1", "abc", "60001", "9" * 400):
        assert error_of(tenant.client.get(path, {"waitMs": value}), 422) == "validation_error"
    assert error_of(tenant.client.get(f"/v1/runs/{run.id}/handoff/hof_nope"), 404) == "not_found"


# The webhook -----------------------------------------------------------------------------


def test_the_webhook_gets_a_signed_notice_and_is_retried_until_it_answers(
    tenant: Tenant,
    run: Run,
    receiver_of: Callable[[list[int]], Receiver],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = receiver_of([500, 503, 200])
    answer = tenant.client.put(
        f"/v1/spaces/{tenant.space.id}/webhook", {"url": receiver.url}, format="json"
    )
    assert answer.status_code == 200, answer.content
    secret = answer.json()["secret"]
    assert secret.startswith("whsec_")

    with django_capture_on_commit_callbacks() as queued:
        handoff = ask(tenant, run).json()
    # The answer came before any attempt: the first one is queued for a worker.
    assert receiver.received == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "handoff.requested" and delivery.status == "pending"

    for callback in queued:  # the worker's first attempt: the receiver answers 500
        callback()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at is not None
    # Not due before its delay; due after it (the beat's sweep queues it).
    assert webhooks.webhook_attempt(delivery.id) is None
    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert webhooks.webhook_attempt(delivery.id, now=later) is not None  # 503
    delivery.refresh_from_db()
    later = delivery.next_attempt_at + timedelta(seconds=1)
    webhooks.webhook_attempt(delivery.id, now=later)  # 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)

    assert len(receiver.received) == 3
    sent = receiver.received[-1]
    body = sent["body"]
    assert json.loads(body)["type"] == "handoff.requested"
    assert json.loads(body)["data"]["handoffId"] == handoff["id"]
    assert json.loads(body)["data"]["instructions"].startswith("Type the 2FA code")
    assert "liveUrl" not in body.decode()  # a viewer URL goes only to the automation
    assert sent["headers"]["Bctrl-Webhook-Event"] == "handoff.requested"
    timestamp, mac = (
        part.split("=", 1)[1] for part in sent["headers"]["Bctrl-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())

    shown = tenant.client.get(f"/v1/spaces/{tenant.space.id}/webhook").json()
    assert [(d["event"], d["status"], d["attempts"]) for d in shown["deliveries"]] == [
        ("handoff.requested", "delivered", 3)
    ]


def test_a_webhook_that_keeps_failing_is_given_up_and_blocks_nothing(
    tenant: Tenant,
    run: Run,
    receiver_of: Callable[[list[int]], Receiver],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.BCTRL_WEBHOOK_RETRY_DELAYS_S = [1.0, 2.0]
    receiver = receiver_of([500])
    webhooks.webhook_set(space=tenant.space, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        handoff = ask(tenant, run).json()
    delivery = WebhookDelivery.objects.get()
    for _ in range(5):
        if delivery.next_attempt_at is None:
            break
        webhooks.webhook_attempt(delivery.id, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error == "HTTP 500"
    assert len(receiver.received) == 3
    # Nothing waited on the receiver: the run goes on, and its handoff completes.
    done = tenant.client.post(
        f"/v1/runs/{run.id}/handoff/{handoff['id']}/complete", {}, format="json"
    )
    assert done.status_code == 200
    assert webhooks.webhooks_send_due(now=timezone.now() + timedelta(days=1)) == 1  # completed


def test_a_webhook_url_must_be_one_bctrl_may_post_to(tenant: Tenant) -> None:
    path = f"/v1/spaces/{tenant.space.id}/webhook"
    for url in ("ftp://example.com/x", "http://user:pw@example.com/", "http://169.254.169.254/"):
        response = tenant.client.put(path, {"url": url}, format="json")
        assert error_of(response, 422) == "validation_error", url
    tenant.space.refresh_from_db()
    assert tenant.space.webhook_url == ""


def test_a_webhook_on_the_platforms_own_services_is_refused_at_send_time(
    tenant: Tenant, run: Run, settings: Any, receiver_of: Callable[[list[int]], Receiver]
) -> None:
    receiver = receiver_of([200])
    # The receiver's port stands in for the platform's Redis.
    port = receiver.server.server_address[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    webhooks.webhook_set(space=tenant.space, url=receiver.url)
    services.handoff_request(
        run=run, instructions="Look", timeout_ms=60_000, notify=True, requested_by="k"
    )
    delivery = WebhookDelivery.objects.get()
    webhooks.webhook_attempt(delivery.id)
    delivery.refresh_from_db()
    assert receiver.received == []
    assert "bctrl does not fetch" in delivery.last_error


def test_the_settings_page_sets_the_webhook_and_shows_its_deliveries(
    client: Any, member: Any, tenant: Tenant, run: Run
) -> None:
    client.force_login(member)
    refused = client.post("/settings", {"action": "set-webhook", "webhook_url": "ftp://x/"})
    assert refused.status_code == 400
    assert "must start with https://" in refused.content.decode()
    saved = client.post(
        "/settings", {"action": "set-webhook", "webhook_url": "https://hooks.example.com/b"}
    )
    assert saved.status_code == 302
    tenant.space.refresh_from_db()
    assert tenant.space.webhook_url == "https://hooks.example.com/b"
    services.handoff_request(
        run=run, instructions="Look", timeout_ms=60_000, notify=True, requested_by="k"
    )
    page = client.get("/settings").content.decode()
    assert tenant.space.webhook_secret in page
    assert 'data-status="pending"' in page and "handoff.requested" in page
    # notify: false sends nothing.
    services.handoff_finish(handoff=run.handoffs.get(), status="cancelled")
    services.handoff_request(
        run=run, instructions="Again", timeout_ms=60_000, notify=False, requested_by="k"
    )
    assert WebhookDelivery.objects.count() == 2  # the request and its cancellation
