"""The tools of a run's files: upload_file (a file for the browser's file inputs) and
export_files (its files as a ZIP)."""

import base64
import binascii
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from bctrl._errors import BctrlError
from bctrl.mcp.answers import ClientFor, answering_errors, raw, tool_error
from bctrl.mcp.arguments import RunId

# The largest file upload_file takes, as base64 (about 15 MB of file).
MAX_UPLOAD_BASE64 = 20_000_000


def register(server: MCPServer, client_for: ClientFor) -> None:
    """Adds upload_file and export_files to `server`."""

    @server.tool(title="Put a file in the browser")
    @answering_errors
    async def upload_file(
        ctx: Context,
        run_id: RunId,
        name: Annotated[
            str,
            Field(
                pattern=r"^[^/\\\x00-\x1f]{1,200}$",
                description="The file's name, as the page sees it.",
            ),
        ],
        content_base64: Annotated[
            str, Field(max_length=MAX_UPLOAD_BASE64, description="The file's bytes, base64.")
        ],
        content_type: Annotated[str | None, Field(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Puts a file where the running browser's file inputs reach it and answers its
        `path` on the browser's machine: give that path to your browser tool's file
        upload (Playwright's set_input_files, CDP's DOM.setFileInputFiles). The file is
        kept as an upload of the run."""
        refusal: dict[str, Any]  # an error result (CallToolResult), as answering_errors
        try:
            data = base64.b64decode(content_base64, validate=True)
        except (binascii.Error, ValueError):
            refusal = tool_error("validation_error", "content_base64 is not base64.")
            return refusal
        async with client_for(ctx) as client:
            run = await client.runs.retrieve(run_id)
            if run.status != "running" or not run.runtime_id:
                refusal = tool_error(
                    "run.not_running",
                    f"Run {run_id} is {run.status}: files go to a running browser.",
                )
                return refusal
            sent = await client.runtimes.upload_file(
                run.runtime_id, data, name=name, content_type=content_type
            )
            return raw(sent)

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
