"""The tools that look at runs: find them (list_runs), read them (get_run, get_activity,
list_events), see their page (screenshot) and link to them (replay_url, live_url)."""

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from bctrl.mcp.answers import ClientFor, activity_text, answering_errors, iso, run_summary
from bctrl.mcp.arguments import MAX_PAGE, READ_ONLY, ExpiresIn, RunId, RunStatus, Severity

# How many runs `list_runs` looks through at most to find those of a time range.
MAX_RUNS_SCANNED = 2_000


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds the run tools to `server`."""

    @server.tool(title="List and find runs", annotations=READ_ONLY)
    @answering_errors
    async def list_runs(
        ctx: Context,
        status: Annotated[list[RunStatus] | None, Field(description="Only these.")] = None,
        runtime_id: Annotated[str | None, Field(pattern=r"^rt_[0-9a-z]{1,64}$")] = None,
        started_after: Annotated[
            datetime | None, Field(description="ISO 8601; runs that started at or after it.")
        ] = None,
        started_before: Annotated[
            datetime | None, Field(description="ISO 8601; runs that started before it.")
        ] = None,
        name_contains: Annotated[str | None, Field(max_length=200)] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """The space's runs, newest first, filtered by status, runtime, start time and
        name."""
        async with client_for(ctx) as client:
            page = await client.runs.list(
                status=status, runtime_id=runtime_id, limit=min(100, max(limit, 50))
            )
            found: list[dict[str, Any]] = []
            scanned = 0
            more = False
            async for run in page:
                scanned += 1
                started = run.started_at
                if started is not None and started_after and started < aware(started_after):
                    break  # newest first: every run after this one started earlier
                if started is not None and started_before and started >= aware(started_before):
                    continue
                if name_contains and name_contains.lower() not in run.name.lower():
                    continue
                if len(found) == limit:
                    more = True
                    break
                found.append(run_summary(run))
                if scanned >= MAX_RUNS_SCANNED:
                    more = True
                    break
            return {"runs": found, "more": more}

    @server.tool(title="A run's summary", annotations=READ_ONLY)
    @answering_errors
    async def get_run(ctx: Context, run_id: RunId) -> dict[str, Any]:
        """A run: its status, times, usage (events, commands, files), error and the
        state of its recording."""
        async with client_for(ctx) as client:
            run = await client.runs.retrieve(run_id)
            recording = run.recording_summary
            return {
                **run_summary(run),
                "usage": run.raw.get("usage"),
                "labels": run.labels,
                "recording": recording.raw if recording else None,
                "dashboardUrl": client.url(f"/runs/{run.id}"),
            }

    @server.tool(title="A run's activity", annotations=READ_ONLY)
    @answering_errors
    async def get_activity(
        ctx: Context,
        run_id: RunId,
        offset: Annotated[int, Field(ge=0, description="The first item (0 is the oldest).")] = 0,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100,
        severity: Annotated[Severity, Field(description="At least this severe.")] = "info",
        types: Annotated[
            list[str] | None,
            Field(description="Only these item types (browser.click, browser.navigate, …)."),
        ] = None,
    ) -> str:
        """What happened in a run, in words, oldest first: each navigation, click, typed
        field (never the text), download, error, a page at a time."""
        async with client_for(ctx) as client:
            return await activity_text(
                client, run_id, offset=offset, limit=limit, severity=severity, types=types
            )

    @server.tool(title="A run's events", annotations=READ_ONLY)
    @answering_errors
    async def list_events(
        ctx: Context,
        run_id: RunId,
        types: Annotated[
            list[str] | None,
            Field(description="Event types: navigation, console.message, network.response, …"),
        ] = None,
        after: Annotated[int | None, Field(ge=0, description="Only events after this seq.")] = None,
        page_id: Annotated[str | None, Field(max_length=200)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        """A run's raw events by seq, of the given types; page on with `after`."""
        async with client_for(ctx) as client:
            page = await client.runs.events.list(
                run_id, type=types, page_id=page_id, after=after, limit=min(limit, 100)
            )
            events: list[dict[str, Any]] = []
            more = False
            async for event in page:
                if len(events) == limit:
                    more = True
                    break
                events.append(
                    {
                        "seq": event.seq,
                        "type": event.type,
                        "time": iso(event.time),
                        "pageId": event.page_id,
                        "data": event.data,
                    }
                )
            return {
                "events": events,
                "more": more,
                "nextAfter": events[-1]["seq"] if events else after,
            }

    @server.tool(title="Screenshot of the current page")
    @answering_errors
    async def screenshot(ctx: Context, run_id: RunId) -> CallToolResult:
        """A PNG of the page the run's browser shows now (kept as a file of the run)."""
        async with client_for(ctx) as client:
            artifact = await client.runs.screenshot(run_id)
            png = await client.runs.artifacts.download(run_id, artifact.id)
            assert isinstance(png, bytes)
            meta = artifact.metadata
            said = f"Screenshot of {meta.get('title') or 'the page'} ({meta.get('url') or ''})"
            return CallToolResult(
                content=[
                    ImageContent(
                        type="image",
                        data=base64.b64encode(png).decode(),
                        mime_type=artifact.content_type or "image/png",
                    ),
                    TextContent(type="text", text=f"{said}, kept as {artifact.id}."),
                ]
            )

    @server.tool(title="Replay URL")
    @answering_errors
    async def replay_url(
        ctx: Context,
        run_id: RunId,
        with_activity: Annotated[bool, Field(description="The activity beside it.")] = False,
        expires_in_seconds: ExpiresIn = None,
    ) -> dict[str, Any]:
        """A link that replays the run's recording in a browser, no sign-in needed,
        until it expires (`status` says whether the recording is ready yet)."""
        async with client_for(ctx) as client:
            viewer = await client.runs.recording(
                run_id,
                components=["activity"] if with_activity else None,
                expires_in_seconds=expires_in_seconds,
            )
            return {
                "url": viewer.iframe_url,
                "status": viewer.status,
                "durationMs": viewer.duration_ms,
                "expiresAt": iso(viewer.expires_at),
            }

    @server.tool(title="Live view URL")
    @answering_errors
    async def live_url(
        ctx: Context,
        run_id: RunId,
        control: Annotated[
            Literal["none", "input"],
            Field(description='"none" to watch; "input" lets the person take control.'),
        ] = "none",
        expires_in_seconds: ExpiresIn = None,
    ) -> dict[str, Any]:
        """A link to watch the run's browser live (or, with control "input", to take
        over its mouse and keyboard), until it expires."""
        async with client_for(ctx) as client:
            viewer = await client.runs.live(
                run_id, control=control, expires_in_seconds=expires_in_seconds
            )
            return {"url": viewer.url, "control": control, "expiresAt": iso(viewer.expires_at)}


def aware(value: datetime) -> datetime:
    """A time without a zone, as UTC (the API's times are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
