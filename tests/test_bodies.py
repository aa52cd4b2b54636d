"""Request bodies without a Content-Length (`Transfer-Encoding: chunked`), through a real
daphne (bctrl_site/bodies.py in front of Django, and the rrweb ingest's own route), and
the layer itself in-process for its limits and its spool."""

import gzip
import hashlib
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings

from bctrl_site import bodies
from recordings.models import Recording, RecordingBatch
from runs import services
from runs.models import Artifact, Run

from .conftest import Tenant, started_at_ms
from .test_recording_ingest import START, T0, rrweb_events


def pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def post_chunked(server: str, path: str, body: bytes, tenant: Tenant, **headers: str) -> Answer:
    """A POST whose body goes as chunks of 1,000 bytes and no Content-Length."""
    address = urlparse(server)
    connection = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    try:
        connection.request(
            "POST",
            path,
            body=pieces(body),
            headers={
                "Authorization": f"Bearer {tenant.raw_key}",
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
                **{name.replace("_", "-"): value for name, value in headers.items()},
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chunked_run_creation_keeps_its_name_and_labels(asgi_server: str, tenant: Tenant) -> None:
    body = orjson.dumps({"name": "nightly", "labels": {"team": "qa"}, "metadata": {"n": 1}})
    answer = post_chunked(asgi_server, "/v1/runs", body, tenant)
    assert answer.status == 201
    run = Run.objects.get(pk=answer.json()["id"])
    assert (run.name, run.labels, run.metadata) == ("nightly", {"team": "qa"}, {"n": 1})


def test_a_chunked_stop_stores_the_status_it_names(asgi_server: str, tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    answer = post_chunked(asgi_server, f"/v1/runs/{run.id}/stop", b'{"status": "failed"}', tenant)
    assert answer.status == 200
    assert answer.json()["status"] == "failed"
    run.refresh_from_db()
    assert run.status == "failed"


def test_a_chunked_rrweb_batch_is_ingested(asgi_server: str, tenant: Tenant) -> None:
    run = started_at_ms(services.run_create(space=tenant.space), START)
    path = f"/v1/runs/{run.id}/recording/events"
    plain = orjson.dumps({"target": "t", "seq": 0, "events": rrweb_events(5)})
    assert post_chunked(asgi_server, path, plain, tenant).status == 201
    zipped = gzip.compress(
        orjson.dumps({"target": "t", "seq": 1, "events": rrweb_events(5, T0 + 50)})
    )
    assert post_chunked(asgi_server, path, zipped, tenant, Content_Encoding="gzip").status == 201
    assert list(RecordingBatch.objects.order_by("seq").values_list("seq", "event_count")) == [
        (0, 5),
        (1, 5),
    ]


def test_a_chunked_artifact_upload_is_stored_whole(asgi_server: str, tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    content = bytes(range(256)) * 4000  # 1 MB: spooled to a file past the first megabyte
    boundary = "bctrl-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndownload\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="data.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = post_chunked(
        asgi_server,
        f"/v1/runs/{run.id}/artifacts",
        body,
        tenant,
        Content_Type=f"multipart/form-data; boundary={boundary}",
    )
    assert answer.status == 201
    artifact = Artifact.objects.get(pk=answer.json()["id"])
    assert (artifact.name, artifact.size) == ("data.bin", len(content))
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()


def test_a_chunked_body_over_the_limit_is_413_and_writes_nothing(
    asgi_server: str, tenant: Tenant
) -> None:
    padding = "x" * (django_settings.BCTRL_MAX_BODY_BYTES + 1)
    answer = post_chunked(asgi_server, "/v1/runs", orjson.dumps({"name": padding}), tenant)
    assert answer.status == 413
    assert answer.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"Request body exceeds {django_settings.BCTRL_MAX_BODY_BYTES} bytes.",
        }
    }
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert not Run.objects.exists()


def test_a_chunked_rrweb_batch_over_the_limit_is_413_and_writes_nothing(
    asgi_server: str, tenant: Tenant
) -> None:
    run = started_at_ms(services.run_create(space=tenant.space), START)
    events = rrweb_events(3)
    events[2]["data"]["padding"] = "x" * django_settings.BCTRL_RECORDING_MAX_BATCH_BYTES
    body = orjson.dumps({"target": "t", "seq": 0, "events": events})
    answer = post_chunked(asgi_server, f"/v1/runs/{run.id}/recording/events", body, tenant)
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert not Recording.objects.exists()
    assert not RecordingBatch.objects.exists()


# --- the layer in-process --------------------------------------------------------------


def through_layer(
    path: str, parts: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, bytes, str]:
    """Sends `parts` through RequestBodies to an app that reads the whole body: what the
    layer sent back, the scope the app saw (None: it was never called), the body it read
    and the next message it received after the body."""
    incoming = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
        for index, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"] = scope
        received = b""
        while True:
            message = await receive()
            received += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"] = received
        seen["next"] = (await receive())["type"]

    scope = {"type": "http", "method": "POST", "path": path, "scheme": "http", "headers": headers}
    async_to_sync(bodies.RequestBodies(app))(scope, receive, send)
    return sent, seen.get("scope"), seen.get("body", b""), seen.get("next", "")


CHUNKED = [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")]


def test_the_layer_gives_the_app_a_length_and_the_whole_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bodies, "SPOOL_IN_MEMORY", 1000)  # to a file after 1,000 bytes
    parts = [bytes([n]) * 700 for n in range(10)]
    sent, scope, body, _ = through_layer("/v1/runs", parts, CHUNKED)
    assert sent == []
    assert scope is not None
    assert (b"content-length", b"7000") in scope["headers"]
    assert not any(name == b"transfer-encoding" for name, _ in scope["headers"])
    assert body == b"".join(parts)


def test_the_layer_refuses_past_the_routes_limit_and_calls_no_app(settings: Any) -> None:
    settings.BCTRL_MAX_BODY_BYTES = 1000
    settings.BCTRL_RECORDING_MAX_BATCH_BYTES = 3000
    sent, scope, _, _ = through_layer("/v1/runs", [b"x" * 600, b"x" * 600], CHUNKED)
    assert scope is None
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "payload_too_large"
    # The rrweb ingest takes larger bodies than the rest of the API.
    path = "/v1/runs/run_x/recording/events"
    _, scope, body, _ = through_layer(path, [b"x" * 600, b"x" * 600], CHUNKED)
    assert scope is not None and len(body) == 1200


def test_a_request_with_a_length_passes_untouched() -> None:
    headers = [(b"host", b"testserver"), (b"content-length", b"4")]
    _, scope, body, _ = through_layer("/v1/runs", [b"abcd"], headers)
    assert scope is not None and scope["headers"] == headers
    assert body == b"abcd"


def test_the_app_hears_of_the_client_leaving_after_the_replay() -> None:
    assert through_layer("/v1/runs", [b"{}"], CHUNKED)[3] == "http.disconnect"
