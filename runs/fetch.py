"""Connections the web server and its workers open to an address a tenant chose (the
upstream account of a recordings sync, a space's webhook), each checked against
`runs.confinement.server_fetch_refusal` on the addresses its name resolves to at connect
time, so a name that changes its answer cannot lead them into the platform's services.
"""

import http.client
import socket
import ssl
from urllib.parse import SplitResult

from runs.confinement import parse_address, server_fetch_refusal


class FetchRefused(Exception):
    """Every address of the host is one the server does not fetch from."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host!r} resolves to an address bctrl does not fetch ({reason})")
        self.host = host
        self.reason = reason


def checked_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A socket connected to the first allowed address of `host`.

    Raises socket.gaierror when the name does not resolve, FetchRefused when no address
    may be fetched, and the last connect's OSError when none answered."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refusal = None
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        parsed = parse_address(str(address[0]))
        reason = server_fetch_refusal(parsed, port) if parsed else "not an IP address"
        if reason:
            refusal = refusal or reason
            continue
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    if error is not None:
        raise error
    raise FetchRefused(host, refusal or "no address")


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = checked_socket(self.host, self.port, self.timeout)


class _SecureConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = checked_socket(self.host, self.port, self.timeout)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(sock, server_hostname=self.host)


def checked_connection(parts: SplitResult, timeout: float) -> http.client.HTTPConnection:
    """An HTTP(S) connection to the URL's host whose connect applies the checks above."""
    if parts.scheme == "https":
        return _SecureConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    return _Connection(parts.hostname or "", parts.port, timeout=timeout)


def failure_reason(error: BaseException, timeout_s: float) -> str:
    """Why a connection failed, in words; never the other side's own text."""
    if isinstance(error, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(error, FetchRefused):
        return f"its address is one bctrl does not fetch ({error.reason})"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or 'handshake'})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__
