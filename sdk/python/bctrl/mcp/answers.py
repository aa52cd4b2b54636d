"""What bctrl's MCP tools answer: a refusal of the API as the tool's error result (or,
for a resource, an MCP error), and runs, handoffs and activity in the few fields and
words an agent reads."""

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent

from bctrl._client import AsyncBctrl
from bctrl._errors import APIConnectionError, APIStatusError, BctrlError
from bctrl._models import ActivityItem, Handoff, Model, RunData

# What a tool calls the API with: entered for each call, given the call's MCP context.
ClientFor = Callable[[Context], AbstractAsyncContextManager[AsyncBctrl]]

P = ParamSpec("P")
R = TypeVar("R")


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
    """A tool whose API errors become its error result (see bctrl.mcp's docstring)."""

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


def resource_error(exc: BctrlError) -> MCPError:
    code, message, status, details = refused(exc)
    error = {"code": code, "message": message, "status": status, "details": details}
    kind = INVALID_PARAMS if status is not None and status < 500 else INTERNAL_ERROR
    return MCPError(code=kind, message=f"{code}: {message}", data={"error": error})
