"""The MCP resources of a run: its activity (text) and its recording's status."""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from bctrl._errors import BctrlError
from bctrl.mcp.answers import ClientFor, activity_text, resource_error


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds the run resources to `server`."""

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
