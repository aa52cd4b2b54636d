"""bctrl's MCP server: runs, replays and handoffs as tools an agent calls.

One definition of the tools, served two ways: `bctrl mcp` speaks stdio for a local agent
(`serve_stdio`), and the bctrl web server offers the same tools over streamable HTTP at
`/mcp` (bctrl_site/mcp_route.py). Every tool calls the /v1 API through an `AsyncBctrl`
that the transport hands it for the call (`ClientFor`): the process's client on stdio, a
client with the caller's own key on HTTP. So a tool sees exactly what its key sees in
the API (another space's run is `not_found`), and no rule of the API is repeated here.

Errors: a refusal of the API comes back as the tool's error result (`is_error`), whose
text names the server's code and message ("not_found: No run 'run_…'.") and whose
structured content is the API's own error shape, `{"error": {"code", "message",
"status", "details"?}}`. MCP asks for errors an agent can act on to be tool results
rather than protocol errors, so that the model reads them; arguments that fail a tool's
schema are answered the same way by the SDK, before any call. Resources, which have no
result to carry an error, raise an MCP protocol error with the same code in its data.
"""

import asyncio
import base64
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    ImageContent,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field

from bctrl._base import _version
from bctrl._client import AsyncBctrl
from bctrl._errors import APIConnectionError, APIStatusError, BctrlError
from bctrl._models import ActivityItem, Handoff, Model, RunData

__all__ = ["ClientFor", "create_server", "serve_stdio"]

# What a tool calls the API with: entered for each call, given the call's MCP context.
ClientFor = Callable[[Context], AbstractAsyncContextManager[AsyncBctrl]]

INSTRUCTIONS = """\
bctrl runs real Chromium browsers and records what happens in them as runs.
- start_browser gives a connectUrl (a CDP websocket URL): drive that browser with your
  browser tool (Playwright's connect_over_cdp, chrome-devtools-mcp --wsEndpoint, …).
- get_activity tells in words what was done in a run; screenshot shows its current page.
- When a step needs a person (a 2FA code, a challenge), call request_handoff: it waits
  for them and answers their note; wait_for_handoff waits longer.
- stop_browser when done; replay_url gives a link to watch the recording afterwards."""

RunId = Annotated[
    str,
    Field(pattern=r"^run_[0-9a-z]{1,64}$", description="A run id (run_…), as start_browser gave."),
]
HandoffId = Annotated[
    str, Field(pattern=r"^hof_[0-9a-z]{1,64}$", description="A handoff id (hof_…).")
]
ExpiresIn = Annotated[
    int | None,
    Field(ge=60, le=86_400, description="How long the link lives, in seconds (default: 1 h)."),
]
WaitSeconds = Annotated[
    int,
    Field(
        ge=0,
        le=300,
        description="How long to wait for the person, in seconds, before answering that "
        "the handoff is still open (then call wait_for_handoff).",
    ),
]
RunStatus = Literal["running", "completed", "failed"]
Severity = Literal["info", "warning", "error"]

# The largest page of activity items, events or runs one call answers.
MAX_PAGE = 500
# How many runs `list_runs` looks through at most to find those of a time range.
MAX_RUNS_SCANNED = 2_000

# How long stop_browser waits for the run to end once its runtime is stopping.
STOP_WAIT_S = 60.0
STOP_POLL_S = 0.25

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

P = ParamSpec("P")
R = TypeVar("R")


# Answers -------------------------------------------------------------------------------------


def tool_error(code: str, message: str, *, status: int | None = None, details: Any = None) -> Any:
    error: dict[str, Any] = {"code": code, "message": message}
    if status is not None:
        error["status"] = status
    if details is not None:
        error["details"] = details
    return CallToolResult(
        content=[TextContent(type="text", text=f"{code}: {message}")],
        structured_content={"error": error},
        is_error=True,
    )


def refused(exc: BctrlError) -> tuple[str, str, int | None, Any]:
    """The code, message, HTTP status and details of a failed call."""
    if isinstance(exc, APIStatusError):
        message = exc.message
        if exc.status_code == 401:
            message += " Check the API key this MCP server was given."
        return exc.code, message, exc.status_code, exc.details
    if isinstance(exc, APIConnectionError):
        return "unreachable", f"{exc.message} Is the bctrl server running?", None, None
    return "error", exc.message, None, None


def answering_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A tool whose API errors become its error result (see the module's docstring)."""

    @functools.wraps(tool)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except BctrlError as exc:
            code, message, status, details = refused(exc)
            answer: R = tool_error(code, message, status=status, details=details)
            return answer

    return call


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_summary(run: RunData) -> dict[str, Any]:
    """A run in a few fields: what an agent needs to tell runs apart."""
    usage = run.usage
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "runtimeId": run.runtime_id,
        "startedAt": iso(run.started_at),
        "endedAt": iso(run.ended_at),
        "durationMs": usage.duration_ms if usage else None,
        "eventCount": usage.event_count if usage else 0,
        "error": run.error,
    }


def handoff_answer(handoff: Handoff, waited_s: float | None = None) -> dict[str, Any]:
    """The handoff and a sentence saying where it stands."""
    if handoff.status == "completed":
        said = f"Completed by {handoff.completed_by or 'a person'}"
        said += f": {handoff.note}" if handoff.note else " (no note)."
    elif handoff.status == "open":
        said = "Still open"
        if waited_s is not None:
            said += f" after waiting {waited_s:g} s"
        said += (
            f"; call wait_for_handoff to keep waiting (it expires at {iso(handoff.expires_at)})."
        )
        if handoff.live_url:
            said += " Give the person liveUrl: it opens the browser with control."
    elif handoff.status == "expired":
        said = "Expired: nobody did the step in time."
    else:
        said = f"The handoff is {handoff.status}."
    return {
        "handoffId": handoff.id,
        "runId": handoff.run_id,
        "status": handoff.status,
        "instructions": handoff.instructions,
        "note": handoff.note,
        "completedBy": handoff.completed_by,
        "expiresAt": iso(handoff.expires_at),
        "endedAt": iso(handoff.ended_at),
        "liveUrl": handoff.live_url,
        "message": said,
    }


def activity_line(item: ActivityItem) -> str:
    """One activity item as a line: its time, a mark for warnings and errors, its words,
    and its status or duration when they say something."""
    when = item.time.strftime("%H:%M:%S.%f")[:-3] if item.time else "--:--:--.---"
    mark = {"error": "!! ", "warning": "! "}.get(item.severity, "")
    tail = []
    if item.status in ("failed", "running"):
        tail.append(item.status)
    if item.duration_ms:
        tail.append(f"{item.duration_ms / 1000:.1f} s")
    suffix = f" ({', '.join(tail)})" if tail else ""
    return f"{when}  {mark}{item.message}{suffix}"


async def activity_text(
    client: AsyncBctrl,
    run_id: str,
    *,
    offset: int = 0,
    limit: int | None = None,
    severity: str = "info",
    types: list[str] | None = None,
) -> str:
    """A run's activity as lines an LLM reads, `limit` items from `offset`."""
    run = await client.runs.retrieve(run_id)
    activity = await client.runs.activity.list(run_id, severity=severity, type=types)
    items = activity.data
    end = len(items) if limit is None else min(len(items), offset + limit)
    shown = items[offset:end]
    head = f"Run {run.id} ({run.status})"
    if run.name:
        head = f"Run {run.id} {run.name!r} ({run.status})"
    if not shown:
        lines = [f"{head}: no activity items from {offset} (it has {len(items)})."]
    else:
        lines = [f"{head}: activity items {offset + 1}-{end} of {len(items)}, times in UTC."]
        lines += [activity_line(item) for item in shown]
    if end < len(items):
        lines.append(f"More: call again with offset={end}.")
    if activity.truncated:
        lines.append("(The run is long: only its latest items are kept in the activity.)")
    return "\n".join(lines)


def raw(model: Model) -> dict[str, Any]:
    return dict(model.raw)


# The server ----------------------------------------------------------------------------------


def create_server(client_for: ClientFor) -> MCPServer:
    """bctrl's MCP server, whose tools call the API through `client_for(ctx)`."""
    # WARNING: on stdio, the SDK's logging setup would print every API call (httpx's INFO
    # lines) to stderr; in the web server, whose logging is set up already, it does nothing.
    server: MCPServer = MCPServer(
        "bctrl", title="bctrl", instructions=INSTRUCTIONS, version=_version(), log_level="WARNING"
    )

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

    @server.tool(title="Ask a person for help")
    @answering_errors
    async def request_handoff(
        ctx: Context,
        run_id: RunId,
        instructions: Annotated[
            str,
            Field(
                min_length=1,
                max_length=2000,
                description="What the person must do, e.g. 'Type the 2FA code sent by SMS'.",
            ),
        ],
        wait_seconds: WaitSeconds = 60,
        timeout_seconds: Annotated[
            int,
            Field(
                ge=10,
                le=86_400,
                description="When the request expires if nobody did it, in seconds.",
            ),
        ] = 900,
        notify: Annotated[bool, Field(description="Tell the space's webhook.")] = True,
    ) -> dict[str, Any]:
        """Asks a person to do a step in the running browser (they take control in the
        live view and hand back with a note), then waits up to `wait_seconds` for them.
        Answers the person's note and name once done, or that it is still open (with
        the live URL to give them) or expired. Your browser connection stays open."""
        async with client_for(ctx) as client:
            handoffs = client.runs.handoffs
            opened = await handoffs.create(
                run_id,
                instructions=instructions,
                timeout_ms=timeout_seconds * 1000,
                notify=notify,
            )
            handoff = opened
            if wait_seconds:
                handoff = await handoffs.wait(run_id, opened.id, timeout=wait_seconds)
                handoff.live_url = handoff.live_url or opened.live_url
            return handoff_answer(handoff, waited_s=wait_seconds)

    @server.tool(title="Wait for a person", annotations=READ_ONLY)
    @answering_errors
    async def wait_for_handoff(
        ctx: Context, run_id: RunId, handoff_id: HandoffId, wait_seconds: WaitSeconds = 60
    ) -> dict[str, Any]:
        """Waits up to `wait_seconds` for the person to finish a handoff; answers their
        note once done, or that it is still open or expired."""
        async with client_for(ctx) as client:
            handoff = await client.runs.handoffs.wait(run_id, handoff_id, timeout=wait_seconds)
            return handoff_answer(handoff, waited_s=wait_seconds)

    @server.tool(title="Cancel a handoff")
    @answering_errors
    async def cancel_handoff(ctx: Context, run_id: RunId, handoff_id: HandoffId) -> dict[str, Any]:
        """Withdraws an open handoff (the step is no longer needed)."""
        async with client_for(ctx) as client:
            return handoff_answer(await client.runs.handoffs.cancel(run_id, handoff_id))

    @server.tool(title="Export a run's files")
    @answering_errors
    async def export_files(
        ctx: Context,
        run_id: RunId,
        types: Annotated[
            list[str] | None,
            Field(description="Only files of these kinds (screenshot, download, upload, …)."),
        ] = None,
        name: Annotated[str, Field(min_length=1, max_length=200)] = "run-files",
        wait_seconds: Annotated[int, Field(ge=0, le=300)] = 60,
    ) -> dict[str, Any]:
        """Builds a ZIP of the run's files (screenshots, downloads, uploads, reports) and
        answers its download URL (a GET with the same API key) once it is ready."""
        async with client_for(ctx) as client:
            seen: list[Any] = []
            try:
                export = await client.runs.files.export(
                    run_id,
                    name=name,
                    type=types,
                    wait=bool(wait_seconds),
                    wait_timeout=wait_seconds,
                    on_progress=seen.append,
                )
            except BctrlError:
                if not seen or seen[-1].status in ("ready", "failed"):
                    raise
                export = seen[-1]  # still being built after wait_seconds
            answer = raw(export)
            if export.download_url:
                answer["downloadUrl"] = client.url(export.download_url)
            return answer

    @server.resource(
        "bctrl://runs/{run_id}/activity",
        name="Run activity",
        description="What happened in a run, in words, oldest first.",
        mime_type="text/plain",
    )
    async def activity_resource(run_id: str, ctx: Context) -> str:
        try:
            async with client_for(ctx) as client:
                return await activity_text(client, run_id)
        except BctrlError as exc:
            raise resource_error(exc) from exc

    @server.resource(
        "bctrl://runs/{run_id}/recording",
        name="Run recording status",
        description="Whether a run's recording is ready to replay, and how long it is.",
        mime_type="application/json",
    )
    async def recording_resource(run_id: str, ctx: Context) -> dict[str, Any]:
        try:
            async with client_for(ctx) as client:
                run = await client.runs.retrieve(run_id)
        except BctrlError as exc:
            raise resource_error(exc) from exc
        recording = run.recording_summary
        return {
            "runId": run.id,
            "runStatus": run.status,
            "recording": recording.raw if recording else None,
        }

    return server


def resource_error(exc: BctrlError) -> MCPError:
    code, message, status, details = refused(exc)
    error = {"code": code, "message": message, "status": status, "details": details}
    kind = INVALID_PARAMS if status is not None and status < 500 else INTERNAL_ERROR
    return MCPError(code=kind, message=f"{code}: {message}", data={"error": error})


def aware(value: datetime) -> datetime:
    """A time without a zone, as UTC (the API's times are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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


# stdio ---------------------------------------------------------------------------------------


def serve_stdio(client: AsyncBctrl) -> None:
    """Serves the tools on stdin/stdout with `client` (`bctrl mcp`), until stdin closes."""

    @asynccontextmanager
    async def the_client(ctx: Context) -> AsyncIterator[AsyncBctrl]:
        yield client

    create_server(the_client).run("stdio")
