"""The run's live surfaces: the events SSE stream, the events long-poll, the activity stream."""

import asyncio
import contextlib
import http.client
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.utils import timezone

from runs import services
from runs.api import streams
from runs.models import ApiKey, Run, Space
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_streams(settings: Any) -> None:
    settings.BCTRL_SSE_HEARTBEAT_SECONDS = 1
    settings.BCTRL_SSE_POLL_SECONDS = 0.2
    settings.BCTRL_EVENTS_WAIT_MAX_MS = 60_000


@pytest.fixture(autouse=True)
async def _close_thread_connections() -> AsyncIterator[None]:
    """The views and these tests reach the database from asgiref's sync thread: close it."""
    yield
    await sync_to_async(connections.close_all)()


# ---------------------------------------------------------------- helpers


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comment: str | None = None
    retry: int | None = None


def parse_frame(raw: str) -> Frame:
    frame = Frame()
    for line in raw.split("\n"):
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            frame.comment = value
        elif name == "event":
            frame.event = value
        elif name == "id":
            frame.id = value
        elif name == "data":
            frame.data = json.loads(value)
        elif name == "retry":
            frame.retry = int(value)
    return frame


class SSE:
    """Reads SSE frames from an AsyncClient streaming response, one at a time."""

    def __init__(self, response: Any) -> None:
        assert isinstance(response, StreamingHttpResponse), response
        content = response.streaming_content
        assert isinstance(content, AsyncIterator), "an async view streams asynchronously"
        self.chunks = aiter(content)
        self.buffer = ""

    async def _next(self) -> Frame:
        while "\n\n" not in self.buffer:
            chunk = await anext(self.chunks)
            self.buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        raw, self.buffer = self.buffer.split("\n\n", 1)
        return parse_frame(raw)

    async def frame(self, timeout: float = 10) -> Frame:
        return await asyncio.wait_for(self._next(), timeout)

    async def until(self, stop: Callable[[Frame], bool], timeout: float = 10) -> list[Frame]:
        """Frames up to and including the first that `stop` accepts (heartbeats included)."""

        async def collect() -> list[Frame]:
            frames = [await self._next()]
            while not stop(frames[-1]):
                frames.append(await self._next())
            return frames

        return await asyncio.wait_for(collect(), timeout)

    async def events(self, count: int, timeout: float = 10) -> list[Frame]:
        """The next `count` frames that are not heartbeats or the retry line."""

        async def collect() -> list[Frame]:
            found: list[Frame] = []
            while len(found) < count:
                frame = await self._next()
                if frame.event is not None:
                    found.append(frame)
            return found

        return await asyncio.wait_for(collect(), timeout)


def bearer(tenant: Tenant) -> dict[str, str]:
    return {"authorization": f"Bearer {tenant.raw_key}"}


def is_end(frame: Frame) -> bool:
    return frame.event == "end"


@sync_to_async
def new_run(space: Space) -> Run:
    return services.run_create(space=space, name="streamed")


@sync_to_async
def append(run: Run, *types: str, page_id: str = "") -> None:
    services.events_append(
        run=run,
        events=[
            {"type": kind, "page_id": page_id, "data": {"n": i}} for i, kind in enumerate(types)
        ],
    )


@sync_to_async
def stop(run: Run) -> None:
    services.run_stop(run=run)


async def in_own_thread(write: Callable[[], Any]) -> None:
    """Writes from a thread of its own, as another client's request would.

    A long-poll holds asgiref's shared sync thread while it waits (the middleware chain
    is sync), so a write queued behind it through sync_to_async would wait it out.
    """

    def work() -> None:
        try:
            write()
        finally:
            connections.close_all()

    await asyncio.to_thread(work)


@pytest.fixture
def listening(monkeypatch: pytest.MonkeyPatch) -> Callable[[Run], Awaitable[None]]:
    """Waits until some stream of a run subscribed to its change notices, on any layer."""
    subscribed: dict[str, asyncio.Event] = {}
    original = streams.run_change_listener

    @contextlib.asynccontextmanager
    async def observed(run_id: str) -> AsyncIterator[Any]:
        async with original(run_id) as listener:
            subscribed.setdefault(run_id, asyncio.Event()).set()
            yield listener

    monkeypatch.setattr(streams, "run_change_listener", observed)

    async def wait(run: Run) -> None:
        event = subscribed.setdefault(run.id, asyncio.Event())
        await asyncio.wait_for(event.wait(), 10)

    return wait


# ---------------------------------------------------------------- events stream


async def test_stream_sends_backlog_then_live_events_then_end(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, "page.created", "page.loaded")
    client = AsyncClient()
    response = await client.get(f"/v1/runs/{run.id}/events/stream", headers=bearer(tenant))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    sse = SSE(response)

    first = await sse.frame()
    assert first.retry == 2000
    backlog = await sse.events(2)
    assert [(f.event, f.id, f.data["type"]) for f in backlog] == [
        ("event", "1", "page.created"),
        ("event", "2", "page.loaded"),
    ]
    assert backlog[0].data["runId"] == run.id and backlog[0].data["seq"] == 1

    await append(run, "console.log")
    (live,) = await sse.events(1)
    assert (live.id, live.data["type"], live.data["seq"]) == ("3", "console.log", 3)

    await stop(run)
    (end,) = await sse.events(1)
    assert end.event == "end"
    assert end.data == {"runId": run.id, "status": "completed"}
    with pytest.raises(StopAsyncIteration):
        await sse.frame()


async def test_stream_of_an_ended_run_sends_everything_then_end(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, *(["tick"] * 1203))  # more than one page
    await stop(run)
    response = await AsyncClient().get(f"/v1/runs/{run.id}/events/stream", headers=bearer(tenant))
    frames = await SSE(response).until(is_end, timeout=30)
    seqs = [int(f.id) for f in frames if f.event == "event" and f.id]
    assert seqs == list(range(1, 1204))
    assert frames[-1].data["status"] == "completed"


async def test_stream_resumes_after_last_event_id(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, "a", "b", "c", "d")
    await stop(run)
    client = AsyncClient()
    url = f"/v1/runs/{run.id}/events/stream"

    resumed = await client.get(url, headers={**bearer(tenant), "last-event-id": "2"})
    frames = await SSE(resumed).until(is_end)
    assert [f.data["type"] for f in frames if f.event == "event"] == ["c", "d"]

    by_query = await client.get(f"{url}?after=3", headers=bearer(tenant))
    frames = await SSE(by_query).until(is_end)
    assert [f.data["type"] for f in frames if f.event == "event"] == ["d"]

    header_wins = await client.get(
        f"{url}?after=0", headers={**bearer(tenant), "last-event-id": "3"}
    )
    frames = await SSE(header_wins).until(is_end)
    assert [f.data["type"] for f in frames if f.event == "event"] == ["d"]


@pytest.mark.parametrize("bad", ["-1", "two", "1.5", "99999999999999999999", "9" * 5000])
async def test_stream_refuses_a_bad_resume_point(tenant: Tenant, bad: str) -> None:
    run = await new_run(tenant.space)
    client = AsyncClient()
    url = f"/v1/runs/{run.id}/events/stream"
    by_header = await client.get(url, headers={**bearer(tenant), "last-event-id": bad})
    assert by_header.status_code == 422
    assert by_header.json()["error"]["code"] == "validation_error"
    assert "Last-Event-ID" in by_header.json()["error"]["message"]
    by_query = await client.get(url, {"after": bad}, headers=bearer(tenant))
    assert by_query.status_code == 422
    assert by_query.json()["error"]["code"] == "validation_error"


async def test_stream_filters_by_type_and_page(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, "console.log", "network.request", "page.loaded")
    await append(run, "console.log", page_id="page_2")
    await stop(run)
    client = AsyncClient()
    url = f"/v1/runs/{run.id}/events/stream"

    by_type = await client.get(url, {"type": "console.log,page.loaded"}, headers=bearer(tenant))
    frames = await SSE(by_type).until(is_end)
    assert [(f.id, f.data["type"]) for f in frames if f.event == "event"] == [
        ("1", "console.log"),
        ("3", "page.loaded"),
        ("4", "console.log"),
    ]

    by_page = await client.get(url, {"pageId": "page_2"}, headers=bearer(tenant))
    frames = await SSE(by_page).until(is_end)
    assert [(f.id, f.data["pageId"]) for f in frames if f.event == "event"] == [("4", "page_2")]


async def test_stream_sends_heartbeats_when_idle(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    response = await AsyncClient().get(f"/v1/runs/{run.id}/events/stream", headers=bearer(tenant))
    frames = await SSE(response).until(lambda f: f.comment == "heartbeat", timeout=10)
    assert frames[-1].comment == "heartbeat"
    assert not [f for f in frames if f.event]
    await stop(run)


# ---------------------------------------------------------------- auth and tenancy


@pytest.mark.parametrize("path", ["events/stream", "events/wait?timeoutMs=0", "activity/stream"])
async def test_streams_are_scoped_to_the_callers_space(
    tenant: Tenant, other_tenant: Tenant, path: str
) -> None:
    run = await new_run(tenant.space)
    client = AsyncClient()
    url = f"/v1/runs/{run.id}/{path}"

    foreign = await client.get(url, headers=bearer(other_tenant))
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"

    unknown = await client.get(f"/v1/runs/run_nope/{path}", headers=bearer(tenant))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"

    anonymous = await client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"

    for key in ["bctrl_sk_not-a-real-key", "garbage"]:
        bad_key = await client.get(url, headers={"authorization": f"Bearer {key}"})
        assert bad_key.status_code == 401
        assert bad_key.json()["error"]["code"] == "unauthenticated"
        assert "invalid" in bad_key.json()["error"]["message"]


async def test_a_revoked_key_is_refused(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await sync_to_async(ApiKey.objects.filter(pk=tenant.api_key.pk).update)(
        revoked_at=timezone.now()
    )
    response = await AsyncClient().get(f"/v1/runs/{run.id}/events/stream", headers=bearer(tenant))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_a_signed_in_member_can_stream_and_others_cannot(
    tenant: Tenant, member: Any, django_user_model: Any
) -> None:
    run = await new_run(tenant.space)
    await append(run, "page.loaded")
    await stop(run)
    url = f"/v1/runs/{run.id}/events/stream"

    client = AsyncClient()
    await client.aforce_login(member)
    response = await client.get(url)
    assert response.status_code == 200
    frames = await SSE(response).until(is_end)
    assert [f.data["type"] for f in frames if f.event == "event"] == ["page.loaded"]

    stranger = await sync_to_async(django_user_model.objects.create_user)(
        username="eve", password="correct horse 10"
    )
    other = AsyncClient()
    await other.aforce_login(stranger)
    refused = await other.get(url)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert (await other.get(f"/v1/runs/{run.id}/activity/stream")).status_code == 404


async def test_streams_answer_other_methods_with_json(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    response = await AsyncClient().post(f"/v1/runs/{run.id}/events/stream", headers=bearer(tenant))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------- events wait


async def test_wait_returns_an_event_appended_while_waiting(
    tenant: Tenant, listening: Callable[[Run], Awaitable[None]]
) -> None:
    run = await new_run(tenant.space)
    await append(run, "page.created", "console.log")  # already there: not "the next event"
    client = AsyncClient()
    waiting = asyncio.create_task(
        client.get(
            f"/v1/runs/{run.id}/events/wait",
            {"timeoutMs": "20000", "type": "console.log"},
            headers=bearer(tenant),
        )
    )
    await listening(run)
    await in_own_thread(
        lambda: services.events_append(
            run=run, events=[{"type": "page.loaded"}, {"type": "console.log"}]
        )
    )
    response = await asyncio.wait_for(waiting, 20)
    assert response.status_code == 200
    body = response.json()
    assert body["timedOut"] is False
    assert (body["event"]["seq"], body["event"]["type"]) == (4, "console.log")
    await stop(run)


async def test_wait_after_returns_a_stored_event_at_once(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, "a", "b")
    response = await AsyncClient().get(
        f"/v1/runs/{run.id}/events/wait", {"after": "1"}, headers=bearer(tenant)
    )
    body = response.json()
    assert body["timedOut"] is False
    assert (body["event"]["seq"], body["event"]["type"]) == (2, "b")
    await stop(run)


async def test_wait_times_out(tenant: Tenant) -> None:
    run = await new_run(tenant.space)
    await append(run, "a")
    response = await AsyncClient().get(
        f"/v1/runs/{run.id}/events/wait", {"timeoutMs": "300"}, headers=bearer(tenant)
    )
    assert response.status_code == 200
    assert response.json() == {"event": None, "timedOut": True}
    await stop(run)


@pytest.mark.parametrize("timeout", ["60001", "-1", "1.5", "soon", "1e3"])
async def test_wait_refuses_a_bad_timeout(tenant: Tenant, timeout: str) -> None:
    run = await new_run(tenant.space)
    response = await AsyncClient().get(
        f"/v1/runs/{run.id}/events/wait", {"timeoutMs": timeout}, headers=bearer(tenant)
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "timeoutMs must be an integer from 0 to 60000."


async def test_wait_reports_the_run_ending(
    tenant: Tenant, listening: Callable[[Run], Awaitable[None]]
) -> None:
    run = await new_run(tenant.space)
    client = AsyncClient()
    waiting = asyncio.create_task(
        client.get(f"/v1/runs/{run.id}/events/wait", {"timeoutMs": "20000"}, headers=bearer(tenant))
    )
    await listening(run)
    await in_own_thread(lambda: services.run_stop(run=run))
    response = await asyncio.wait_for(waiting, 20)
    assert response.json() == {"event": None, "timedOut": False, "runEnded": True}

    again = await client.get(f"/v1/runs/{run.id}/events/wait", headers=bearer(tenant))
    assert again.json() == {"event": None, "timedOut": False, "runEnded": True}


# ---------------------------------------------------------------- activity stream


def item(item_id: str, message: str, duration_ms: int = 0) -> dict[str, Any]:
    return {
        "id": item_id,
        "time": "2026-01-01T00:00:00Z",
        "type": "typing" if item_id == "act_2" else "navigation",
        "message": message,
        "status": "succeeded",
        "severity": "info",
        "durationMs": duration_ms,
        "children": [],
    }


async def test_activity_stream_sends_items_then_changes(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [item("act_1", "Opened example.com"), item("act_2", "Typed “he”", 100)]
    monkeypatch.setattr("runs.api.streams.activity_items", lambda run: [dict(i) for i in items])
    run = await new_run(tenant.space)
    response = await AsyncClient().get(f"/v1/runs/{run.id}/activity/stream", headers=bearer(tenant))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    sse = SSE(response)

    first = await sse.events(2)
    assert [(f.event, f.id, f.data["message"]) for f in first] == [
        ("activity", "act_1", "Opened example.com"),
        ("activity", "act_2", "Typed “he”"),
    ]

    items[1] = item("act_2", "Typed “hello”", 450)
    items.append(item("act_3", "Clicked Submit"))
    await append(run, "input.key")  # what would make the activity change
    changed = await sse.events(2)
    assert [(f.event, f.id, f.data["message"]) for f in changed] == [
        ("activity.updated", "act_2", "Typed “hello”"),
        ("activity", "act_3", "Clicked Submit"),
    ]
    assert changed[0].data["durationMs"] == 450

    await stop(run)
    (end,) = await sse.events(1)
    assert end.event == "end"
    assert end.data == {"runId": run.id, "status": "completed"}


@sync_to_async
def record_commands(run: Run, *methods: str, page_id: str = "page_A") -> None:
    now = timezone.now()
    services.commands_record(
        run=run,
        commands=[
            {
                "method": method.split(":")[0],
                "params": {"type": method.split(":")[1], "x": 5, "y": 5} if ":" in method else {},
                "status": "succeeded",
                "page_id": page_id,
                "started_at": now + timedelta(milliseconds=index),
                "ended_at": now + timedelta(milliseconds=index),
            }
            for index, method in enumerate(methods)
        ],
    )


async def test_activity_stream_folds_plumbing_into_the_step_it_prepared(tenant: Tenant) -> None:
    """The stream follows the activity's rules: the calls that prepare a click are not
    sent as an item of their own and then taken back, but arrive inside the click."""
    run = await new_run(tenant.space)
    await record_commands(run, "Runtime.callFunctionOn", "Runtime.callFunctionOn")
    response = await AsyncClient().get(f"/v1/runs/{run.id}/activity/stream", headers=bearer(tenant))
    sse = SSE(response)
    (started,) = await sse.events(1)
    assert started.data["type"] == "run.started"

    await record_commands(
        run, "Input.dispatchMouseEvent:mousePressed", "Input.dispatchMouseEvent:mouseReleased"
    )
    await in_own_thread(
        lambda: services.events_append(
            run=run,
            events=[
                {
                    "type": "input",
                    "page_id": "page_A",
                    "data": {"kind": "click", "role": "button", "name": "Pay"},
                }
            ],
        )
    )
    (click,) = await sse.events(1)
    assert click.data["message"] == 'Clicked button "Pay"'
    assert [c["message"] for c in click.data["children"]] == ["Runtime.callFunctionOn (2 times)"]

    await stop(run)
    rest = await sse.until(is_end)
    assert not [f for f in rest if f.data and f.data.get("type") == "automation"]


# ---------------------------------------------------------------- under daphne


def read_frame(response: http.client.HTTPResponse) -> Frame:
    lines: list[str] = []
    while True:
        line = response.readline().decode()
        if line in ("", "\n"):
            if line == "" and not lines:
                raise EOFError("the stream closed")
            break
        lines.append(line.rstrip("\n"))
    return parse_frame("\n".join(lines))


def read_event(response: http.client.HTTPResponse) -> Frame:
    while True:
        frame = read_frame(response)
        if frame.event is not None:
            return frame


def test_stream_is_delivered_incrementally_by_daphne(asgi_server: str, tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    services.events_append(run=run, events=[{"type": "page.created", "data": {}}])
    url = urlparse(asgi_server)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=20)
    try:
        connection.request(
            "GET",
            f"/v1/runs/{run.id}/events/stream",
            headers={"Authorization": f"Bearer {tenant.raw_key}"},
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        assert read_frame(response).retry == 2000

        backlog = read_event(response)
        assert (backlog.id, backlog.data["type"]) == ("1", "page.created")

        # The stream is still open: a new event arrives on it without a new request.
        services.events_append(run=run, events=[{"type": "page.loaded", "data": {}}])
        live = read_event(response)
        assert (live.id, live.data["type"]) == ("2", "page.loaded")

        services.run_stop(run=run)
        end = read_event(response)
        assert end.event == "end"
        assert end.data == {"runId": run.id, "status": "completed"}
    finally:
        connection.close()
