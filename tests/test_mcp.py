"""bctrl's MCP server, driven by the `mcp` SDK's own client over both transports: stdio
(`bctrl mcp`, spawned as an agent runs it) and streamable HTTP (`/mcp` on the live
server, with an API key). An agent lists the tools, starts a browser, drives it through
`connectUrl` with Playwright, reads the activity that names what it did, gets a
screenshot as an image, replay and live URLs, events, resources and an export, and
stops it; another space's run is not found; a bad key and bad input are refused."""

import asyncio
import base64
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from bctrl import AsyncBctrl
from django.conf import settings
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ImageContent, TextContent

from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

TRANSPORTS = ["stdio", "http"]
BCTRL = Path(sys.executable).parent / "bctrl"  # the client's console script in the venv
SDK = settings.BASE_DIR / "sdk" / "python"


@asynccontextmanager
async def agent(transport: str, server: str, key: str) -> AsyncIterator[ClientSession]:
    """An MCP client session with bctrl's MCP server, as an agent configures it."""
    if transport == "http":
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(f"{server}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
        return
    with tempfile.TemporaryFile("w+") as errlog:
        params = StdioServerParameters(
            command=str(BCTRL),
            args=["mcp"],
            env={"BCTRL_API_KEY": key, "BCTRL_BASE_URL": server, "PYTHONPATH": str(SDK)},
        )
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """A tool's structured answer (failing the test on an error result)."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    return result.structured_content


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, text_of(result)
    assert result.structured_content is not None, text_of(result)
    error: dict[str, Any] = result.structured_content["error"]
    return error


async def new_run(tenant: Tenant) -> str:
    """A run of the tenant's space, opened through the API (no browser)."""
    answer = await db(tenant.client.post)("/v1/runs", {"name": "api"}, format="json")
    run_id: str = answer.json()["id"]
    return run_id


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def activity_until(
    session: ClientSession, run_id: str, *wanted: str, timeout: float = 30
) -> str:
    """The run's activity text once it says every one of `wanted` (what an agent polls)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await session.call_tool("get_activity", {"run_id": run_id})
        text = text_of(result)
        if all(want in text for want in wanted):
            return text
        assert time.monotonic() < deadline, f"the activity never said {wanted}:\n{text}"
        await asyncio.sleep(0.3)


UPLOAD_FORM = """<input type="file" id="file"><p id="out"></p><script>
document.getElementById("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  document.getElementById("out").textContent = file.name + ": " + (await file.text());
});
</script>"""


@pytest.mark.browser
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_agent_starts_drives_reads_and_stops_a_browser(
    transport: str, asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    from playwright.async_api import async_playwright

    async with agent(transport, asgi_server, tenant.raw_key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {
            "start_browser",
            "stop_browser",
            "list_runs",
            "get_run",
            "get_activity",
            "list_events",
            "screenshot",
            "replay_url",
            "live_url",
            "request_handoff",
            "wait_for_handoff",
            "export_files",
            "upload_file",
        } <= set(tools)
        assert tools["get_activity"].input_schema["required"] == ["run_id"]

        started = await call(session, "start_browser", name=f"agent {transport}")
        run_id = started["runId"]
        ws_base = asgi_server.replace("http://", "ws://", 1)
        assert started["connectUrl"].startswith(f"{ws_base}/cdp/")
        assert urlsplit(started["liveUrl"]).path.startswith("/embed/live/")

        async with async_playwright() as playwright:
            browser = await playwright.chromium.connect_over_cdp(started["connectUrl"])
            context = browser.contexts[0] if browser.contexts else await browser.new_context()
            page = context.pages[0] if context.pages else await context.new_page()
            await page.goto(f"{asgi_server}/demo/")
            await page.click("#nav-help")
            await page.wait_for_url("**/demo/help")

            said = await activity_until(session, run_id, 'Clicked link "Help"', "Navigated to Help")
            assert said.startswith(f"Run {run_id} ")
            assert "running" in said.splitlines()[0]

            shot = await session.call_tool("screenshot", {"run_id": run_id})
            assert not shot.is_error, text_of(shot)
            image = next(block for block in shot.content if isinstance(block, ImageContent))
            assert image.mime_type == "image/png"
            width, height = png_size(base64.b64decode(image.data))
            assert width > 100 and height > 100
            assert "/demo/help" in text_of(shot)
            # The pointer moves on the page a moment later: a recording shorter than a
            # second has nothing to replay (MIN_PLAYABLE_MS), and a quick run can be.
            await page.wait_for_timeout(1200)
            for step in range(1, 6):
                await page.mouse.move(40 * step, 30 * step)
            await page.wait_for_timeout(600)  # rrweb sends sampled moves in its next batch

            # A file the agent has goes where its browser tool's upload reaches it.
            notes = base64.b64encode(b"agent notes").decode()
            sent = await call(
                session, "upload_file", run_id=run_id, name="notes.txt", content_base64=notes
            )
            assert sent["kind"] == "upload" and sent["placed"] and sent["size"] == 11
            form = await context.new_page()
            await form.set_content(UPLOAD_FORM)
            await form.set_input_files("#file", sent["path"])
            await form.wait_for_function("document.getElementById('out').textContent")
            assert await form.text_content("#out") == "notes.txt: agent notes"
            wrong = await session.call_tool(
                "upload_file", {"run_id": run_id, "name": "a.txt", "content_base64": "%%%"}
            )
            assert error_of(wrong)["code"] == "validation_error"
            await browser.close()

        replay = await call(session, "replay_url", run_id=run_id, with_activity=True)
        assert replay["expiresAt"] and replay["status"] in ("recording", "processing", "ready")
        live = await call(session, "live_url", run_id=run_id, control="input")
        assert live["control"] == "input" and live["expiresAt"]
        async with httpx.AsyncClient() as http:  # links on SITE_URL: opened on the live server
            for url in (replay["url"], live["url"]):
                assert urlsplit(url).path.startswith("/embed/"), url
                opened = await http.get(asgi_server + urlsplit(url).path)
                assert opened.status_code == 200, (url, opened.status_code)

        running = await call(session, "list_runs", status=["running"])
        assert run_id in [run["id"] for run in running["runs"]]
        summary = await call(session, "get_run", run_id=run_id)
        assert summary["status"] == "running" and summary["eventCount"] > 0

        navigations = await call(session, "list_events", run_id=run_id, types=["navigation"])
        urls = [event["data"]["url"] for event in navigations["events"]]
        assert f"{asgi_server}/demo/help" in urls
        assert all(event["type"] == "navigation" for event in navigations["events"])

        resource = await session.read_resource(f"bctrl://runs/{run_id}/activity")
        assert 'Clicked link "Help"' in resource.contents[0].text  # type: ignore[union-attr]

        stopped = await call(session, "stop_browser", run_id=run_id)
        assert stopped["status"] == "completed" and stopped["endedAt"]
        late = await session.call_tool(
            "upload_file", {"run_id": run_id, "name": "a.txt", "content_base64": notes}
        )
        assert error_of(late)["code"] == "run.not_running"
        # The recording's status, as an agent reads it until the replay is ready.
        deadline = time.monotonic() + 60
        while True:
            recording = await session.read_resource(f"bctrl://runs/{run_id}/recording")
            status = json.loads(recording.contents[0].text)  # type: ignore[union-attr]
            assert status["runStatus"] == "completed"
            if status["recording"]["status"] == "ready":
                break
            assert status["recording"]["status"] in ("preparing", "processing"), status
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.3)
        assert status["recording"]["durationMs"] > 0

        exported = await call(session, "export_files", run_id=run_id, types=["screenshot"])
        assert exported["status"] == "ready" and exported["fileCount"] >= 1
        async with httpx.AsyncClient() as http:
            zipped = await http.get(
                exported["downloadUrl"], headers={"Authorization": f"Bearer {tenant.raw_key}"}
            )
        assert zipped.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
        assert len([name for name in names if name.endswith(".png")]) == exported["fileCount"]

        ended = await call(
            session, "list_runs", status=["completed"], started_after="2000-01-01T00:00:00Z"
        )
        assert run_id in [run["id"] for run in ended["runs"]]
        future = await call(session, "list_runs", started_after="2999-01-01T00:00:00Z")
        assert future == {"runs": [], "more": False}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_another_spaces_run_is_not_found(
    transport: str, asgi_server: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_run(other_tenant)
    async with agent(transport, asgi_server, tenant.raw_key) as session:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("get_run", {}),
            ("get_activity", {}),
            ("screenshot", {}),
            ("replay_url", {}),
            ("stop_browser", {}),
            ("list_events", {}),
        ]
        for tool, arguments in calls:
            result = await session.call_tool(tool, {"run_id": theirs, **arguments})
            error = error_of(result)
            assert error["code"] == "not_found" and error["status"] == 404, (tool, error)
            assert text_of(result).startswith("not_found: ")
        with pytest.raises(MCPError) as raised:
            await session.read_resource(f"bctrl://runs/{theirs}/activity")
        assert raised.value.data["error"]["code"] == "not_found"
        assert raised.value.message.startswith("not_found: ")
        mine = await call(session, "list_runs")
        assert theirs not in [run["id"] for run in mine["runs"]]
    still = await db(lambda: other_tenant.client.get(f"/v1/runs/{theirs}").json())()
    assert still["status"] == "running"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_tool_input_is_refused_before_any_call(
    transport: str, asgi_server: str, tenant: Tenant
) -> None:
    run = await new_run(tenant)
    async with agent(transport, asgi_server, tenant.raw_key) as session:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("get_run", {"run_id": "../v1/runtimes"}, "run_id"),
            ("get_run", {}, "run_id"),
            ("get_activity", {"run_id": run, "limit": 0}, "limit"),
            ("get_activity", {"run_id": run, "severity": "loud"}, "severity"),
            ("live_url", {"run_id": run, "control": "all"}, "control"),
            ("replay_url", {"run_id": run, "expires_in_seconds": 5}, "expires_in_seconds"),
            ("request_handoff", {"run_id": run, "instructions": ""}, "instructions"),
            ("request_handoff", {"run_id": run, "instructions": "x" * 2001}, "instructions"),
            ("list_runs", {"started_after": "yesterday"}, "started_after"),
        ]
        for tool, arguments, field in cases:
            result = await session.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
            assert field in text_of(result), (tool, text_of(result))
        # What only the server can judge comes back with its code.
        unknown = await session.call_tool("get_activity", {"run_id": run, "types": ["nope"]})
        assert error_of(unknown)["code"] == "validation_error"
        idle = await session.call_tool("screenshot", {"run_id": run})
        assert error_of(idle)["code"] == "runtime.not_running"


async def test_http_without_a_valid_key_is_refused_before_mcp(
    asgi_server: str, tenant: Tenant
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=asgi_server) as http:
        for headers, message in [
            ({}, "Authentication credentials were not provided."),
            ({"Authorization": "Bearer bctrl_sk_nope"}, "The API key is invalid or revoked."),
            ({"Authorization": f"Basic {tenant.raw_key}"}, "Authentication credentials"),
        ]:
            answer = await http.post("/mcp", json=initialize, headers={**accept, **headers})
            assert answer.status_code == 401
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["www-authenticate"] == 'Bearer realm="bctrl"'
            error = answer.json()["error"]
            assert error["code"] == "unauthenticated" and error["message"].startswith(message)
        key = {"Authorization": f"Bearer {tenant.raw_key}"}
        # A host of ALLOWED_HOSTS other than localhost is served; one outside is not.
        named = await http.post(
            "/mcp", json=initialize, headers={**accept, **key, "Host": "testserver"}
        )
        assert named.status_code == 200, named.text
        assert '"serverInfo"' in named.text and '"bctrl"' in named.text
        stranger = await http.post(
            "/mcp", json=initialize, headers={**accept, **key, "Host": "evil.example"}
        )
        assert stranger.status_code == 400
        page = await http.post(
            "/mcp",
            json=initialize,
            headers={**accept, **key, "Origin": "http://evil.example"},
        )
        assert page.status_code == 403 and page.json()["error"]["code"] == "forbidden"
    # The SDK's client: its initialize fails (the SDK does not say with which status).
    with pytest.raises(ExceptionGroup) as raised:
        async with agent("http", asgi_server, "bctrl_sk_nope"):
            pass
    assert raised.group_contains(MCPError, depth=None)


async def test_stdio_with_a_bad_key_says_so(asgi_server: str, tenant: Tenant) -> None:
    async with agent("stdio", asgi_server, "bctrl_sk_nope") as session:
        result = await session.call_tool("list_runs", {})
        error = error_of(result)
        assert error["code"] == "unauthenticated" and error["status"] == 401
        assert "API key" in text_of(result)
    # Without a key, `bctrl mcp` does not start, and says why.
    env = {k: v for k, v in os.environ.items() if k != "BCTRL_API_KEY"}
    done = subprocess.run(
        [str(BCTRL), "mcp"],
        env={**env, "PYTHONPATH": str(SDK), "BCTRL_BASE_URL": asgi_server},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "BCTRL_API_KEY" in done.stderr and done.stdout == ""


@pytest.mark.browser
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_agent_asks_a_person_for_help_and_waits_for_their_note(
    transport: str, asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    from runs.models import ApiKey

    _, desk_key = await db(ApiKey.objects.issue)(space=tenant.space, name="Ada at the help desk")
    async with (
        agent(transport, asgi_server, tenant.raw_key) as session,
        AsyncBctrl(api_key=desk_key, base_url=asgi_server) as desk,
    ):
        started = await call(session, "start_browser", name=f"handoff {transport}")
        run_id = started["runId"]
        asked = asyncio.ensure_future(
            session.call_tool(
                "request_handoff",
                {
                    "run_id": run_id,
                    "instructions": "Type the 2FA code sent by SMS",
                    "wait_seconds": 120,
                },
            )
        )
        # The person's side: the request shows up open, and they finish it with a note.
        deadline = time.monotonic() + 30
        while True:
            handoffs = (await desk.runs.handoffs.list(run_id)).data
            if handoffs:
                break
            assert time.monotonic() < deadline, "the handoff was never requested"
            await asyncio.sleep(0.2)
        (handoff,) = handoffs
        assert handoff.status == "open" and handoff.instructions.startswith("Type the 2FA")
        assert not asked.done()  # the agent is still waiting
        done = await desk.runs.handoffs.complete(run_id, handoff.id, note="Code accepted")
        assert done.status == "completed"

        result = await asyncio.wait_for(asked, 30)
        answer = result.structured_content
        assert not result.is_error and answer is not None, text_of(result)
        assert answer["status"] == "completed" and answer["handoffId"] == handoff.id
        assert answer["note"] == "Code accepted"
        assert answer["completedBy"] == "Ada at the help desk"
        assert "Completed by Ada at the help desk: Code accepted" in answer["message"]
        assert urlsplit(answer["liveUrl"]).path.startswith("/embed/live/")

        again = await call(
            session, "wait_for_handoff", run_id=run_id, handoff_id=handoff.id, wait_seconds=5
        )
        assert again["status"] == "completed" and again["note"] == "Code accepted"
        events = await call(
            session,
            "list_events",
            run_id=run_id,
            types=["handoff.requested", "handoff.completed"],
        )
        assert [event["type"] for event in events["events"]] == [
            "handoff.requested",
            "handoff.completed",
        ]

        await call(session, "stop_browser", run_id=run_id)
        late = await session.call_tool(
            "request_handoff", {"run_id": run_id, "instructions": "Too late", "wait_seconds": 0}
        )
        assert error_of(late)["code"] == "run.ended"


async def test_a_handoff_nobody_does_expires_and_one_at_a_time(
    asgi_server: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    run_id = await new_run(tenant)
    theirs = await new_run(other_tenant)
    async with agent("http", asgi_server, tenant.raw_key) as session:
        opened = await call(
            session,
            "request_handoff",
            run_id=run_id,
            instructions="Solve the challenge",
            timeout_seconds=10,
            wait_seconds=0,
        )
        assert opened["status"] == "open" and "wait_for_handoff" in opened["message"]
        second = await session.call_tool(
            "request_handoff", {"run_id": run_id, "instructions": "And this", "wait_seconds": 0}
        )
        assert error_of(second)["code"] == "handoff.open"
        elsewhere = await session.call_tool(
            "request_handoff", {"run_id": theirs, "instructions": "Theirs", "wait_seconds": 0}
        )
        assert error_of(elsewhere)["code"] == "not_found"

        expired = await call(
            session,
            "wait_for_handoff",
            run_id=run_id,
            handoff_id=opened["handoffId"],
            wait_seconds=60,
        )
        assert expired["status"] == "expired" and expired["note"] is None
        assert expired["message"].startswith("Expired")


@pytest.mark.browser
async def test_an_agent_drives_with_its_browser_mcp_and_reads_the_run_with_bctrls(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    """Seed 003's set-up with bctrl beside it: the agent drives the browser with its own
    browser MCP server (chrome-devtools-mcp on the Browser Run devtools endpoint), and
    bctrl's MCP server gives it the run that made: its activity, a replay, a handoff."""
    binary = settings.BASE_DIR / "node_modules" / ".bin" / "chrome-devtools-mcp"
    assert binary.exists(), "`make test` installs chrome-devtools-mcp from package.json"
    account = tenant.space.id
    endpoint = (
        asgi_server.replace("http://", "ws://", 1)
        + f"/client/v4/accounts/{account}/browser-rendering/devtools/browser?keep_alive=600000"
    )
    browser_server = StdioServerParameters(
        command=str(binary),
        args=[
            f"--wsEndpoint={endpoint}",
            f"--wsHeaders={json.dumps({'Authorization': f'Bearer {tenant.raw_key}'})}",
            "--no-usage-statistics",
            "--no-performance-crux",
        ],
    )
    async with (
        stdio_client(browser_server) as (read, write),
        ClientSession(read, write) as browser,
        agent("stdio", asgi_server, tenant.raw_key) as runs,
    ):
        await browser.initialize()
        opened = await browser.call_tool("new_page", {"url": f"{asgi_server}/demo/help"})
        assert not opened.is_error, opened.content
        found = await call(runs, "list_runs", status=["running"])
        (run,) = found["runs"]
        text = await activity_until(runs, run["id"], "Navigated to Help")
        assert "Navigated to Help" in text
        replay = await call(runs, "replay_url", run_id=run["id"])
        assert urlsplit(replay["url"]).path.startswith("/embed/replay/")
        asked = await call(
            runs,
            "request_handoff",
            run_id=run["id"],
            instructions="Check the help page reads well",
            wait_seconds=0,
        )
        assert asked["status"] == "open"
        await call(runs, "stop_browser", run_id=run["id"])
