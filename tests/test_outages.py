"""The database or Redis down: 503 with Retry-After and the API's JSON error, never a 500
and never a 2xx for what was not saved; back to normal with the service, no restart.

Each test runs bctrl's web server (daphne, as `make run` starts it) in a process of its
own on the test database, and takes a real service away from that process alone:

- the database: with SQLite, the server's database path (a link to the test database)
  points at a missing folder, as when its volume is gone; with PostgreSQL, the test
  database stops taking connections and the server's are terminated, as in a restart;
- Redis: the server's REDIS_URL (channel layer and Celery broker) names a closed port.
"""

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from recordings.models import Recording
from recordings.services import recording_start
from runs import services
from runs.models import FileExport, Run

from .conftest import Tenant
from .processes import Answer, call, free_port, process_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)


class Database:
    """Takes the test database away from the server process, and gives it back."""

    def __init__(self, var_dir: Path, env: dict[str, str]) -> None:
        self.link = var_dir / "db.sqlite3"
        self.target = self.link.resolve() if connection.vendor == "sqlite" else None
        self.application_name = parse_qs(urlsplit(env.get("DATABASE_URL", "")).query).get(
            "application_name", [""]
        )[0]

    def cut(self) -> None:
        if self.target is not None:
            self.link.unlink()
            self.link.symlink_to(self.link.parent / "gone" / "db.sqlite3")
            return
        self._admin("ALLOW_CONNECTIONS false", end_sessions=True)

    def restore(self) -> None:
        if self.target is not None:
            self.link.unlink()
            self.link.symlink_to(self.target)
            return
        self._admin("ALLOW_CONNECTIONS true", end_sessions=False)

    def _admin(self, change: str, *, end_sessions: bool) -> None:
        """ALTER DATABASE of the test database, from a connection to another one (a
        database cannot refuse its own connections), and maybe end the server's sessions."""
        import psycopg

        database = connection.settings_dict
        with psycopg.connect(
            dbname="postgres",
            user=database["USER"],
            password=database["PASSWORD"] or None,
            host=database["HOST"] or "127.0.0.1",
            port=database["PORT"] or 5432,
            autocommit=True,
        ) as admin:
            name = connection.ops.quote_name(database["NAME"])
            admin.execute(f"ALTER DATABASE {name} WITH {change}")
            if not end_sessions:
                return
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [self.application_name],
            )


@dataclass
class Server:
    url: str
    database: Database


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A web server on the embedded defaults (no Redis) whose database can be cut."""
    var_dir = tmp_path / "var"
    env = process_env(var_dir)
    database = Database(var_dir, env)
    with web_server(env) as url:
        try:
            yield Server(url, database)
        finally:
            database.restore()


@pytest.fixture
def server_without_redis(tmp_path: Path) -> Iterator[str]:
    """A web server whose Redis (channel layer and Celery broker) is not running."""
    env = process_env(tmp_path / "var", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with web_server(env) as url:
        yield url


def assert_unavailable(answer: Answer, code: str) -> None:
    assert answer.status == 503, answer.body[:300]
    assert answer.headers["Retry-After"] == "5"
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == code
    assert "Try again" in error["message"]


def rrweb_batch(seq: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    meta = {"type": 4, "timestamp": now, "data": {"href": "https://shop.example/"}}
    return {"target": "page-1", "seq": seq, "events": [meta]}


def signed_in_cookie(tenant: Tenant, django_user_model: Any) -> str:
    from runs.models import Membership

    user = django_user_model.objects.create_user(username="grace", password="x" * 12)
    Membership.objects.create(user=user, space=tenant.space, role=Membership.Role.OWNER)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


# --- The database down ----------------------------------------------------------------


def test_reads_answer_503_while_the_database_is_down_and_200_once_it_is_back(
    server: Server, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    services.run_stop(run=run)
    reads = [
        "/v1/runs",
        f"/v1/runs/{run.id}",
        f"/v1/runs/{run.id}/events/stream",
        f"/v1/runs/{run.id}/events/wait?timeoutMs=100",
        "/api/v1/recordings",
        f"/client/v4/accounts/{tenant.space.id}/browser-rendering/recording/{run.id}",
    ]

    server.database.cut()
    for path in reads:
        assert_unavailable(
            call("GET", server.url + path, key=tenant.raw_key), "database_unavailable"
        )

    server.database.restore()
    answers = {path: call("GET", server.url + path, key=tenant.raw_key).status for path in reads}
    assert answers == {path: 404 if "/client/v4/" in path else 200 for path in reads}


def test_writes_while_the_database_is_down_are_refused_and_leave_nothing_behind(
    server: Server, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    recording_start(run=run)

    server.database.cut()
    created = call("POST", server.url + "/v1/runs", key=tenant.raw_key, body={"name": "lost"})
    events = call(
        "POST",
        f"{server.url}/v1/runs/{run.id}/events",
        key=tenant.raw_key,
        body={"events": [{"type": "page.created", "data": {}}]},
    )
    # The rrweb ingest, on its own ASGI route.
    batch = call(
        "POST",
        f"{server.url}/v1/runs/{run.id}/recording/events",
        key=tenant.raw_key,
        body=rrweb_batch(0),
    )
    for answer in (created, events, batch):
        assert_unavailable(answer, "database_unavailable")

    server.database.restore()
    assert not Run.objects.filter(name="lost").exists()
    run.refresh_from_db()
    assert run.event_count == 0
    assert Recording.objects.get(run=run).batches.count() == 0
    retried = call(
        "POST",
        f"{server.url}/v1/runs/{run.id}/recording/events",
        key=tenant.raw_key,
        body=rrweb_batch(0),
    )
    assert retried.status == 201, retried.body


def test_a_dashboard_page_says_the_database_is_unavailable_and_works_again_after(
    server: Server, tenant: Tenant, django_user_model: Any
) -> None:
    cookie = signed_in_cookie(tenant, django_user_model)

    server.database.cut()
    page = call("GET", server.url + "/", headers={"Cookie": cookie})
    assert page.status == 503
    assert page.headers["Retry-After"] == "5"
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"The database is unavailable" in page.body

    server.database.restore()
    assert call("GET", server.url + "/", headers={"Cookie": cookie}).status == 200


# --- Redis down -----------------------------------------------------------------------


def test_writes_are_saved_and_answered_while_redis_is_down(
    server_without_redis: str, tenant: Tenant
) -> None:
    url, key = server_without_redis, tenant.raw_key

    created = call("POST", url + "/v1/runs", key=key, body={"name": "kept"})
    assert created.status == 201, created.body
    run = Run.objects.get(pk=created.json()["id"])
    recording_start(run=run)
    events = call(
        "POST",
        f"{url}/v1/runs/{run.id}/events",
        key=key,
        body={"events": [{"type": "page.created", "data": {}}]},
    )
    batch = call("POST", f"{url}/v1/runs/{run.id}/recording/events", key=key, body=rrweb_batch(0))
    stopped = call("POST", f"{url}/v1/runs/{run.id}/stop", key=key, body={})

    assert (events.status, batch.status, stopped.status) == (201, 201, 200)
    run.refresh_from_db()
    assert (run.name, run.status, run.event_count) == ("kept", Run.Status.COMPLETED, 1)
    # Its processing could not be queued: it waits in `preparing`, where the sweep finds it.
    assert Recording.objects.get(run=run).status == Recording.Status.PREPARING


def test_an_export_is_refused_and_not_kept_while_the_queue_is_down(
    server_without_redis: str, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    request = {"name": "files", "type": ["download"]}
    path = f"{server_without_redis}/v1/runs/{run.id}/files/export"
    headers = {"Idempotency-Key": "export-1"}

    first = call("POST", path, key=tenant.raw_key, body=request, headers=headers)
    again = call("POST", path, key=tenant.raw_key, body=request, headers=headers)

    assert_unavailable(first, "queue_unavailable")
    assert_unavailable(again, "queue_unavailable")
    assert not FileExport.objects.filter(run=run).exists()


def test_a_recover_is_refused_while_the_queue_is_down(
    server_without_redis: str, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    recording = recording_start(run=run)
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.PROCESSING)

    answer = call(
        "POST",
        f"{server_without_redis}/api/v1/recordings/{recording.id}/recover",
        key=tenant.raw_key,
    )

    assert_unavailable(answer, "queue_unavailable")


def test_a_stream_polls_the_database_while_redis_is_down(
    server_without_redis: str, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    services.events_append(run=run, events=[{"type": "page.created", "data": {}}])
    parts = urlsplit(server_without_redis)
    client = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        client.request(
            "GET",
            f"/v1/runs/{run.id}/events/stream",
            headers={"Authorization": f"Bearer {tenant.raw_key}"},
        )
        stream = client.getresponse()
        assert stream.status == 200
        seen = read_until(stream, "id: 1")
        services.events_append(run=run, events=[{"type": "page.loaded", "data": {}}])
        seen += read_until(stream, "id: 2")
        services.run_stop(run=run)
        seen += read_until(stream, "event: end")
    finally:
        client.close()
    assert "event: event" in seen


def read_until(stream: Any, line: str) -> list[str]:
    """Lines of an SSE stream up to and including `line`."""
    lines = []
    while True:
        read = stream.readline().decode()
        assert read, f"the stream closed before {line!r}"
        lines.append(read.rstrip("\n"))
        if lines[-1] == line:
            return lines


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite keeps serving a connection opened before its path went away: the cut "
    "reaches new connections only (with PostgreSQL it ends the stream's)",
)
def test_an_open_stream_closes_asking_to_come_back_later_when_the_database_goes_away(
    server: Server, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)
    services.events_append(run=run, events=[{"type": "page.created", "data": {}}])
    parts = urlsplit(server.url)
    client = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        client.request(
            "GET",
            f"/v1/runs/{run.id}/events/stream",
            headers={"Authorization": f"Bearer {tenant.raw_key}"},
        )
        stream = client.getresponse()
        read_until(stream, "id: 1")

        server.database.cut()
        read_until(stream, "retry: 5000")
        assert stream.read() == b"\n"  # the frame's end, then the stream closes
    finally:
        client.close()
