"""The tool that gives a run's files as a ZIP: export_files."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from bctrl._errors import BctrlError
from bctrl.mcp.answers import ClientFor, answering_errors, raw
from bctrl.mcp.arguments import RunId


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds export_files to `server`."""

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
