"""The tools that start and stop a browser: start_browser, stop_browser."""

import asyncio
import time
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from bctrl._client import AsyncBctrl
from bctrl.mcp.answers import ClientFor, answering_errors, iso, run_summary
from bctrl.mcp.arguments import RunId

# How long stop_browser waits for the run to end once its runtime is stopping.
STOP_WAIT_S = 60.0
STOP_POLL_S = 0.25


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds start_browser and stop_browser to `server`."""

    @server.tool(title="Start a browser")
    @answering_errors
    async def start_browser(
        ctx: Context,
        name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The runtime's name: an idle runtime of that name is reused, "
                "else one is made.",
            ),
        ] = "mcp",
        runtime_id: Annotated[
            str | None,
            Field(pattern=r"^rt_[0-9a-z]{1,64}$", description="Start this runtime instead."),
        ] = None,
        recording: Annotated[
            bool, Field(description="Record the pages (replay); false for none.")
        ] = True,
    ) -> dict[str, Any]:
        """Starts a real Chromium browser and opens a run that records it. Answers
        `connectUrl` (drive the browser with it: Playwright's connect_over_cdp, or your
        browser tool's CDP endpoint), the run id and a live view URL to watch it."""
        async with client_for(ctx) as client:
            if runtime_id is None:
                runtime_id = await idle_runtime(client, name)
            started = await client.runtimes.start(runtime_id, recording=recording)
            live = await client.runs.live(started.run_id)
            return {
                "runId": started.run_id,
                "runtimeId": started.runtime_id or runtime_id,
                "connectUrl": started.connect_url,
                "liveUrl": live.url,
                "liveUrlExpiresAt": iso(live.expires_at),
                "dashboardUrl": client.url(f"/runs/{started.run_id}"),
            }

    @server.tool(title="Stop a browser")
    @answering_errors
    async def stop_browser(ctx: Context, run_id: RunId) -> dict[str, Any]:
        """Stops the browser of a running run: the run ends and its recording is
        processed. A run that has already ended is answered as it is."""
        async with client_for(ctx) as client:
            run = await client.runs.retrieve(run_id)
            if run.status == "running" and run.runtime_id:
                await client.runtimes.stop(run.runtime_id)
                # The runtime host closes the browser, then the run ends: wait for it.
                deadline = time.monotonic() + STOP_WAIT_S
                while run.status == "running" and time.monotonic() < deadline:
                    await asyncio.sleep(STOP_POLL_S)
                    run = await client.runs.retrieve(run_id)
            elif run.status == "running":
                run = await client.runs.stop(run_id)
            return run_summary(run)


async def idle_runtime(client: AsyncBctrl, name: str) -> str:
    """The id of a runtime named `name` that runs nothing (the oldest), else of a new one."""
    found = [
        runtime
        async for runtime in client.runtimes.iter(limit=100)
        if runtime.name == name
        and not runtime.active_run_id
        and runtime.status in ("idle", "stopped", "failed")
    ]
    if found:
        return found[-1].id
    return (await client.runtimes.create(name=name)).id
