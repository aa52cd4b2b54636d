"""daphne as bctrl runs it: `python -m bctrl_site.webserver <daphne arguments>` (what
`manage.py serve`, hence `make run`, starts; the tests' live server uses `BctrlServer`
too, see tests/conftest.py).

Three things on top of daphne 4.2:

- Its access log goes through the `daphne.access` logger
  (bctrl_site.logging.LoggingAccessLog), where lease and connect tokens are redacted,
  instead of straight to stdout.
- ASGI's websocket denial response extension (`websocket.http.response`): daphne answers
  any close before accept with a bare HTTP 403. Here a websocket scope advertises the
  extension, and an application may answer the handshake with a response of its own
  (`websocket.http.response.start` with a status and headers, then
  `websocket.http.response.body` messages), as the CDP proxy does to say 404 to a key
  of another space (runtimes.cdp_proxy). A close before accept is still a 403.
- A size limit per websocket route (runtimes.routing.message_limit), not daphne's one
  global `--websocket-max-message-size`: a message over its route's limit is refused
  with close code 4413 as soon as its frame header says so, and what still streams in
  of it is dropped, never buffered (autobahn buffers a whole message before daphne
  sees it).
"""

# daphne.server installs Twisted's asyncio reactor on import: it comes first.
from daphne.server import Server  # isort:skip

import http
import logging
from typing import Any
from urllib.parse import unquote

from autobahn.websocket.types import ConnectionDeny
from daphne import cli
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketProtocol

from bctrl_site.logging import LoggingAccessLog, redact
from runtimes.closecodes import MESSAGE_TOO_LARGE
from runtimes.handshake import DENIAL_EXTENSION

logger = logging.getLogger(__name__)


def denial_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The raw HTTP/1.1 response for a denied handshake; the connection closes after it."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Denied"
    lines = [f"HTTP/1.1 {status} {phrase}".encode("ascii")]
    names = set()
    for name, value in headers:
        if b"\r" in name + value or b"\n" in name + value:
            raise ValueError("A header of a denial response contains a line break.")
        names.add(name.lower())
        lines.append(name + b": " + value)
    if b"content-length" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class DenyingWebSocketProtocol(WebSocketProtocol):
    """daphne's websocket protocol, plus the denial response messages and a message
    size limit per route."""

    denial_status: int | None = None
    denial_headers: list[tuple[bytes, bytes]]
    denial_body: bytes = b""
    denial_response: bytes | None = None
    message_limit = 0  # 0 until the handshake names the route: the factory's limit only
    refused_code: int | None = None
    failedByMe: bool  # autobahn's: the connection is being failed, incoming data is dropped

    def onConnect(self, request: Any) -> Any:
        # Imported here: this module loads before Django is set up (daphne's command
        # line imports it, then the application).
        from runtimes.routing import message_limit

        self.message_limit = message_limit(unquote(request.path))
        return super().onConnect(request)

    def onMessageFrameBegin(self, length: int) -> None:
        super().onMessageFrameBegin(length)
        if self.failedByMe or not 0 < self.message_limit < self.message_data_total_length:
            return
        logger.warning(
            "Websocket %s sent a message of %d+ bytes (at most %d); closing with %d",
            redact(self.request.path),
            self.message_data_total_length,
            self.message_limit,
            MESSAGE_TOO_LARGE,
        )
        self.refused_code = MESSAGE_TOO_LARGE
        # autobahn keeps no more of this message's payload, reads the rest of it (not
        # dropping the connection, so the peer reads the close code before any reset)
        # and drops the connection at the peer's close or after closeHandshakeTimeout.
        self.failedByMe = True
        self.sendCloseFrame(code=MESSAGE_TOO_LARGE, reasonUtf8=b"message too large")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        # The application hears why this server closed the socket, not the peer's echo.
        super().onClose(wasClean, self.refused_code or code, reason)

    def handle_reply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.http.response.start":
            if self.state != self.STATE_CONNECTING or self.denial_status is not None:
                raise ValueError(f"{kind} is only valid once, before the handshake is answered.")
            self.denial_status = int(message["status"])
            self.denial_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif kind == "websocket.http.response.body":
            if self.denial_status is None or self.denial_response is not None:
                raise ValueError(f"{kind} must follow websocket.http.response.start.")
            self.denial_body += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                self.serverDeny()
        else:
            super().handle_reply(message)

    def serverDeny(self) -> None:
        """As daphne's serverReject, with the application's response instead of a 403."""
        assert self.denial_status is not None
        self.denial_response = denial_response(
            self.denial_status, self.denial_headers, self.denial_body
        )
        # autobahn answers a ConnectionDeny through failHandshake, below.
        self.handshake_deferred.errback(
            ConnectionDeny(code=self.denial_status, reason="Denied by the application")
        )
        del self.handshake_deferred
        self.server.protocol_disconnected(self)
        client = None
        if self.client_addr:
            client = f"{self.client_addr[0]}:{self.client_addr[1]}"
        self.server.log_action(
            "websocket", "rejected", {"path": self.request.path, "client": client}
        )

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        if self.denial_response is None:
            super().failHandshake(reason, code, responseHeaders)
            return
        self.wasNotCleanReason = reason
        self.sendData(self.denial_response)
        self.dropConnection(abort=False)


class AbortingWebRequest(WebRequest):
    """daphne's HTTP request, which ends the connection when the application fails after
    its answer began (a stream that breaks half-way): daphne would try to start a 500
    answer, fail because one is under way, and leave the client waiting for the rest.
    Cut short, the client sees a broken transfer at once."""

    def handle_exception(self, exception: Exception) -> None:
        if not self._response_started:
            super().handle_exception(exception)
            return
        path = self.path.decode("latin-1", "replace") if isinstance(self.path, bytes) else self.path
        logger.warning("The application failed while answering %s; connection cut", path)
        self.channel.transport.abortConnection()


class AbortingHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = AbortingWebRequest
        return protocol


class BctrlServer(Server):
    """daphne's server, with websocket scopes that offer the denial response extension,
    and HTTP requests that end a broken answer's connection."""

    @property
    def http_factory(self) -> Any:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: Any) -> None:
        self._http_factory = AbortingHTTPFactory(factory.server)

    @property
    def ws_factory(self) -> Any:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        # Server.run builds daphne's factory; its connections use our protocol.
        factory.protocol = DenyingWebSocketProtocol
        self._ws_factory = factory

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[DENIAL_EXTENSION] = {}
        return super().create_application(protocol, scope)


class CommandLineInterface(cli.CommandLineInterface):
    server_class = BctrlServer


def main() -> None:
    """daphne's command line, with BctrlServer and the access log through logging."""
    cli.AccessLogGenerator = LoggingAccessLog  # the CLI builds its action logger from this
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
