"""bctrl's MCP server, its tools gathered from their modules, and `bctrl mcp`'s stdio."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context, MCPServer

from bctrl._base import _version
from bctrl._client import AsyncBctrl
from bctrl.mcp import browsers, files, handoffs, resources, runs
from bctrl.mcp.answers import ClientFor

INSTRUCTIONS = """\
bctrl runs real Chromium browsers and records what happens in them as runs.
- start_browser gives a connectUrl (a CDP websocket URL): drive that browser with your
  browser tool (Playwright's connect_over_cdp, chrome-devtools-mcp --wsEndpoint, …).
- get_activity tells in words what was done in a run; screenshot shows its current page.
- When a step needs a person (a 2FA code, a challenge), call request_handoff: it waits
  for them and answers their note; wait_for_handoff waits longer.
- stop_browser when done; replay_url gives a link to watch the recording afterwards."""


def create_server(client_for: ClientFor) -> MCPServer:
    """bctrl's MCP server, whose tools call the API through `client_for(ctx)`."""
    # WARNING: on stdio, the SDK's logging setup would print every API call (httpx's INFO
    # lines) to stderr; in the web server, whose logging is set up already, it does nothing.
    server: MCPServer = MCPServer(
        "bctrl", title="bctrl", instructions=INSTRUCTIONS, version=_version(), log_level="WARNING"
    )
    browsers.register(server, client_for)
    runs.register(server, client_for)
    handoffs.register(server, client_for)
    files.register(server, client_for)
    resources.register(server, client_for)
    return server


# stdio ---------------------------------------------------------------------------------------


def serve_stdio(client: AsyncBctrl) -> None:
    """Serves the tools on stdin/stdout with `client` (`bctrl mcp`), until stdin closes."""

    @asynccontextmanager
    async def the_client(ctx: Context) -> AsyncIterator[AsyncBctrl]:
        yield client

    create_server(the_client).run("stdio")
