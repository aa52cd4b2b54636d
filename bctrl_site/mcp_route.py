"""`/mcp`: bctrl's MCP server over the streamable HTTP transport, for agents that reach
bctrl by URL (`bctrl mcp` serves the same tools on stdio).

The tools are defined once, in the client package (sdk/python/bctrl/mcp/), on the
client's `AsyncBctrl`. Here each tool call gets an `AsyncBctrl` that carries the
caller's own `Authorization` and talks to this process's Django application in process
(`httpx.ASGITransport`, no socket): so both transports run one code path, the /v1 API,
with its authentication, space scoping (another space's run is a 404 `not_found`),
validation, limits and error shapes, and nothing of it is repeated for MCP. The calls
keep the request's scheme, `Host` and `X-Forwarded-*` headers, so the links the API
answers (`connectUrl`, live and replay URLs) are those the caller reaches.

Before any MCP handling, a request must be for a host of ALLOWED_HOSTS (else it goes to
Django, which answers DisallowedHost), come from no browser origin or one of those hosts
(else 403), and carry a valid API key as a Bearer token (else 401, in the API's error
shape). These checks use Django's own host matching (`.example.com`, `*`), which the
SDK's Host and Origin lists cannot express, so the SDK's DNS-rebinding check is off.

The session manager runs stateless: every POST stands alone, so any web process can
answer any request and nothing is kept between them (the tools have no state of their
own: runs live in the database). Its task group must be running before it handles a
request; daphne sends no lifespan events, so the first request starts it, in a task that
lasts as long as the process, and requests wait until it runs.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from bctrl import AsyncBctrl
from django.http import HttpResponse

from recordings.api import in_ingest_thread
from recordings.ingest_route import header_meta, host_allowed, is_secure, send_response
from runs.api.auth import api_key_from_meta, bearer_token
from runs.errors import MCP_PATHS, OUTAGE_ERRORS, api_error_response, service_unavailable

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context, MCPServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

logger = logging.getLogger(__name__)

# Headers of the MCP request that the tools' API calls carry as they are: what Django
# reads to build the links it answers (USE_X_FORWARDED_HOST, SECURE_PROXY_SSL_HEADER).
FORWARDED_HEADERS = ("x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "forwarded")


class McpRoute:
    """The "http" application: `/mcp` to the MCP server, every other request to `app`
    (which also answers the tools' API calls)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._server: MCPServer | None = None
        self._running: asyncio.Event | None = None
        self._manager_task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in MCP_PATHS:
            await self.serve(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        meta = header_meta(scope)
        if not host_allowed(meta.get("HTTP_HOST", "")):
            await self.app(scope, receive, send)  # Django answers DisallowedHost (400)
            return
        secure = is_secure(scope, meta)
        origin = meta.get("HTTP_ORIGIN")
        if origin and not host_allowed(urlsplit(origin).netloc):
            forbidden = api_error_response(403, "forbidden", f"Origin {origin} is not allowed.")
            await send_response(scope, send, forbidden, secure=secure)
            return
        refusal = await self.refusal(scope, meta)
        if refusal is not None:
            await send_response(scope, send, refusal, secure=secure)
            return
        await self.started()
        await self.server.session_manager.handle_request(scope, receive, send)

    async def refusal(self, scope: Scope, meta: dict[str, Any]) -> HttpResponse | None:
        """The answer to a request without a valid API key (401), or None."""
        if bearer_token(meta) is None:
            message = "Authentication credentials were not provided."
        else:
            try:
                api_key = await in_ingest_thread(api_key_from_meta, meta)
            except OUTAGE_ERRORS as exc:
                return service_unavailable(scope["path"], exc)
            if api_key is not None:
                return None
            message = "The API key is invalid or revoked."
        response = api_error_response(401, "unauthenticated", message)
        response["WWW-Authenticate"] = 'Bearer realm="bctrl"'
        return response

    @property
    def server(self) -> "MCPServer":
        """The MCP server, built at the first request to /mcp: importing the MCP SDK
        takes about a second, which a web process that never serves /mcp should not pay
        at its start (hence the imports here, not at the module's top)."""
        if self._server is None:
            from bctrl.mcp import create_server
            from mcp.server.transport_security import TransportSecuritySettings

            self._server = create_server(self.client_for)
            self._server.streamable_http_app(
                stateless_http=True,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
        return self._server

    async def started(self) -> None:
        """Starts the session manager's task group once, for the life of the process."""
        if self._running is None:
            self._running = asyncio.Event()
            self._manager_task = asyncio.ensure_future(self._run_manager(self._running))
        await self._running.wait()

    async def _run_manager(self, running: asyncio.Event) -> None:
        try:
            # Built in a worker thread: the SDK's import would otherwise hold this
            # process's event loop (and every live view and stream on it) for a second.
            server = await asyncio.to_thread(lambda: self.server)
            async with server.session_manager.run():
                running.set()
                await asyncio.Event().wait()  # until the process ends
        except Exception:
            logger.exception("The MCP session manager stopped")
            raise

    @asynccontextmanager
    async def client_for(self, ctx: "Context") -> AsyncIterator[AsyncBctrl]:
        """A client of this process's API with the caller's key, for one tool call."""
        request = ctx.request_context.request
        assert request is not None, "an MCP call over HTTP has its request"
        headers = request.headers
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        token = bearer_token({"HTTP_AUTHORIZATION": headers.get("authorization", "")})
        client = request.client
        transport = httpx.ASGITransport(
            app=self.app, client=(client.host, client.port) if client else ("127.0.0.1", 0)
        )
        async with httpx.AsyncClient(transport=transport) as http:
            yield AsyncBctrl(
                api_key=token or "",
                base_url=f"{request.url.scheme}://{request.url.netloc}",
                default_headers=forwarded,
                http_client=http,
            )
