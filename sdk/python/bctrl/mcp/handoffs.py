"""The tools that ask a person for a step: request_handoff, wait_for_handoff,
cancel_handoff."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from bctrl.mcp.answers import ClientFor, answering_errors, handoff_answer
from bctrl.mcp.arguments import READ_ONLY, HandoffId, RunId, WaitSeconds


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds the handoff tools to `server`."""

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
