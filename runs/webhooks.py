"""A space's webhook: notices (a handoff asks for a person, and how it ended) POSTed as
JSON to the URL the space set, signed, retried with backoff, each delivery logged.

Every notice is first a `WebhookDelivery` row, written in the transaction of what it tells
(an outbox): nothing is sent for a change that rolled back, and a notice survives a lost
task. Its first attempt is a Celery task queued once that transaction commits, so no
request and no run waits on the receiver; a failed attempt sets `next_attempt_at` from
BCTRL_WEBHOOK_RETRY_DELAYS_S and the beat's `webhooks_send_due` queues it again then.
After the last delay the delivery is `failed`. A 2xx answer is `delivered`; any other
answer, a timeout or a refused connection is a failed attempt.

The receiver checks `Bctrl-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 with
the space's secret of `<t>.<body>`, and refuses a `t` far from its clock (replays).
Where it may point: as the upstream account of a sync (runs.fetch), never link-local
addresses nor the platform's database, Redis or broker, checked at connect time.
"""

import hashlib
import hmac
import http.client
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runs.confinement import never_reachable, parse_address
from runs.errors import Invalid
from runs.fetch import FetchRefused, checked_connection, failure_reason
from runs.models import Space, WebhookDelivery
from runs.timestamps import iso

logger = logging.getLogger(__name__)

URL_MAX = 500
SIGNATURE_HEADER = "Bctrl-Signature"
USER_AGENT = "bctrl-webhooks/1"
# Bytes of a receiver's answer that are read (and dropped): enough to finish its request.
ANSWER_READ_MAX = 64 * 1024


def url_problem(value: str) -> str | None:
    """Why `value` cannot be a webhook URL, or None."""
    if not value or len(value) > URL_MAX:
        return f"Give the webhook's URL, at most {URL_MAX} characters."
    if any(ord(char) <= 32 or ord(char) == 127 for char in value):
        return "The URL cannot contain spaces or control characters."
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "The URL is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with https:// (or http://)."
    if not parts.hostname or port == 0:
        return "The URL has no host or a port that is not valid."
    if parts.username is not None or parts.password is not None:
        return "The URL cannot carry credentials; check the signature instead."
    address = parse_address(parts.hostname)
    if address is not None and never_reachable(address):
        return "The URL cannot be a link-local, multicast or unspecified address."
    return None


def webhook_set(*, space: Space, url: str) -> Space:
    """Sets the space's webhook URL (a new secret when it had none); "" turns it off."""
    problem = url_problem(url) if url else None
    if problem:
        raise Invalid(f"webhookUrl: {problem}", details={"field": "webhookUrl"})
    space.webhook_url = url
    if url and not space.webhook_secret:
        space.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    space.save(update_fields=["webhook_url", "webhook_secret"])
    return space


def webhook_secret_roll(*, space: Space) -> Space:
    space.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    space.save(update_fields=["webhook_secret"])
    return space


def deliveries_of(space: Space, limit: int = 20) -> list[WebhookDelivery]:
    return list(space.webhook_deliveries.all()[:limit])


def webhook_json(space: Space) -> dict[str, Any]:
    """The space's webhook as its members and keys see it: the secret too, which they need
    to check signatures, and the latest deliveries."""
    return {
        "url": space.webhook_url or None,
        "secret": space.webhook_secret or None,
        "signatureHeader": SIGNATURE_HEADER,
        "deliveries": [
            {
                "id": delivery.id,
                "event": delivery.event,
                "status": delivery.status,
                "attempts": delivery.attempts,
                "lastStatusCode": delivery.last_status_code,
                "lastError": delivery.last_error or None,
                "createdAt": iso(delivery.created_at),
                "deliveredAt": iso(delivery.delivered_at),
                "nextAttemptAt": iso(delivery.next_attempt_at),
            }
            for delivery in deliveries_of(space)
        ],
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Bctrl-Signature` header of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_enqueue(*, space: Space, event: str, data: dict[str, Any]) -> WebhookDelivery | None:
    """Logs a notice for the space's webhook and queues its first attempt once the
    caller's transaction commits; None when the space has no webhook."""
    if not space.webhook_url:
        return None
    delivery = WebhookDelivery(space=space, event=event, url=space.webhook_url)
    delivery.payload = {
        "id": delivery.id,
        "type": event,
        "createdAt": iso(delivery.created_at),
        "spaceId": space.id,
        "data": data,
    }
    delivery.save()
    transaction.on_commit(lambda: deliver_webhook.delay(delivery.id))
    return delivery


def _claim(delivery_id: str, now: datetime) -> WebhookDelivery | None:
    """Takes a due delivery for one attempt: pushes its next attempt past this one's end,
    so a second task (the beat's, a redelivery) does not send it at the same time."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("space")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
            .first()
        )
        if delivery is None:
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None
        hold = timedelta(seconds=settings.BCTRL_WEBHOOK_TIMEOUT_S * 2 + 30)
        delivery.attempts += 1
        delivery.next_attempt_at = now + hold
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        return delivery


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """One POST of the delivery: the answer's status, or None and why it failed."""
    body = orjson.dumps(delivery.payload)
    timeout = settings.BCTRL_WEBHOOK_TIMEOUT_S
    parts = urlsplit(delivery.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Bctrl-Webhook-Id": delivery.id,
        "Bctrl-Webhook-Event": delivery.event,
        SIGNATURE_HEADER: signature(delivery.space.webhook_secret, int(time.time()), body),
    }
    connection = checked_connection(parts, timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(ANSWER_READ_MAX)
        return response.status, ""
    except (OSError, http.client.HTTPException, FetchRefused) as exc:
        return None, failure_reason(exc, timeout)
    finally:
        connection.close()


def webhook_attempt(delivery_id: str, *, now: datetime | None = None) -> WebhookDelivery | None:
    """Sends a due delivery once and records how it went; None when it is not due."""
    delivery = _claim(delivery_id, now or timezone.now())
    if delivery is None:
        return None
    status, error = _post(delivery)
    delivery.last_status_code = status
    delivery.last_error = error[:300] if error else (f"HTTP {status}" if status else "")
    finished = timezone.now()
    delays = settings.BCTRL_WEBHOOK_RETRY_DELAYS_S
    if status is not None and 200 <= status < 300:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = finished
        delivery.next_attempt_at = None
        delivery.last_error = ""
    elif delivery.attempts > len(delays):
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        logger.warning(
            "Webhook %s of space %s failed after %d attempts: %s",
            delivery.id,
            delivery.space_id,
            delivery.attempts,
            delivery.last_error,
        )
    else:
        delay = delays[delivery.attempts - 1]
        delivery.next_attempt_at = (now or finished) + timedelta(seconds=delay)
    delivery.save(
        update_fields=[
            "status",
            "delivered_at",
            "next_attempt_at",
            "last_status_code",
            "last_error",
        ]
    )
    return delivery


def webhooks_send_due(*, now: datetime | None = None) -> int:
    """Queues every pending delivery whose next attempt is due (the beat's, every few
    seconds): retries, and first attempts whose task was lost."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        ).values_list("id", flat=True)[:500]
    )
    stale = now - timedelta(minutes=1)
    due += list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__isnull=True,
            created_at__lte=stale,
        ).values_list("id", flat=True)[:500]
    )
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@shared_task(acks_late=True)
def deliver_webhook(delivery_id: str) -> None:
    webhook_attempt(delivery_id)


@shared_task
def send_due_webhooks() -> int:
    return webhooks_send_due()
