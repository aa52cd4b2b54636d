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

server.py builds the server and serves stdio; the tools are defined by group (browsers,
runs, handoffs, files) and the run resources in resources.py, each with a `register`;
arguments.py types what they take and answers.py shapes what they answer.
"""

from bctrl.mcp.answers import ClientFor
from bctrl.mcp.server import create_server, serve_stdio

__all__ = ["ClientFor", "create_server", "serve_stdio"]
