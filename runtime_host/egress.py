"""The egress proxy: every request of a runtime's browser leaves through it.

Each browser gets its own proxy on a loopback port (Chromium's `--proxy-server`, with
`<-loopback>` so that loopback goes through it too), which resolves each destination
itself, checks the address with runs.confinement.destination_refusal and connects only to
an address it checked (a name that resolves again to something else later changes
nothing). It counts the bytes in and out of the runtime.

- `CONNECT host:port` (HTTPS, and every websocket): a refusal answers 403, which the
  page sees as a network error (`net::ERR_TUNNEL_CONNECTION_FAILED`); else a tunnel.
- A plain-HTTP request (`GET http://host/path`): a refusal closes the connection without
  an answer (`net::ERR_EMPTY_RESPONSE`), so no page of ours pretends to be the site's; else
  the one request is forwarded with `Connection: close` and the connection ends with its
  answer, so that every request on it is checked (a kept-alive connection could otherwise
  carry the next request to another host).

A start may name an upstream proxy (`http://` or `socks5://`, with credentials): then
each checked destination is reached through a tunnel the upstream opens (HTTP `CONNECT`
or a SOCKS5 connect, by name), after the upstream's own address passed the same check,
so a tenant's proxy setting cannot reach what its browser may not.

Refusals are reported to `on_blocked(url, reason)`. The proxies and the DevTools
endpoints of this process's browsers are in `host_ports`, which no browser may reach.
"""

import asyncio
import base64
import contextlib
import fnmatch
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runs.confinement import IPAddress, first_allowed, parse_address

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
PIPE_CHUNK = 64 * 1024
_HOP_HEADERS = {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization"}

# The listening ports of this runtime host on the machine: its egress proxies and its
# browsers' DevTools endpoints.
host_ports: set[int] = set()


class BadRequest(Exception):
    pass


class UpstreamRefused(Exception):
    """The upstream proxy did not open the tunnel (its answer, or a broken handshake)."""


@dataclass(frozen=True)
class UpstreamProxy:
    scheme: str  # http or socks5
    host: str
    port: int
    username: str = ""
    password: str = ""

    @classmethod
    def of(cls, proxy: dict[str, Any]) -> "UpstreamProxy":
        parts = urlsplit(proxy["server"])
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or 0,
            username=proxy.get("username", ""),
            password=proxy.get("password", ""),
        )

    @property
    def label(self) -> str:
        """How it is named in events and logs: never with its credentials."""
        return f"{self.scheme}://{self.host}:{self.port}"

    async def tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        """Asks the upstream, over a connection to it, for a tunnel to host:port."""
        if self.scheme == "http":
            await self._connect_http(reader, writer, host, port)
        else:
            await self._connect_socks5(reader, writer, host, port)

    async def _connect_http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            head += f"Proxy-Authorization: Basic {token}\r\n"
        writer.write((head + "\r\n").encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        status = answer.split(b"\r\n", 1)[0].split(b" ")
        if len(status) < 2 or status[1] != b"200":
            raise UpstreamRefused(f"answered {b' '.join(status[1:]).decode('latin-1')[:60]}")

    async def _connect_socks5(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        method = 2 if self.username else 0
        writer.write(bytes([5, 1, method]))
        await writer.drain()
        version, chosen = await reader.readexactly(2)
        if version != 5 or chosen != method:
            raise UpstreamRefused("refused the authentication method")
        if method == 2:
            user, password = self.username.encode(), self.password.encode()
            writer.write(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
            await writer.drain()
            if (await reader.readexactly(2))[1] != 0:
                raise UpstreamRefused("refused the credentials")
        try:
            packed = ipaddress.ip_address(host).packed
            address = bytes([1 if len(packed) == 4 else 4]) + packed
        except ValueError:
            name = host.encode("idna")
            address = bytes([3, len(name)]) + name
        writer.write(bytes([5, 1, 0]) + address + struct.pack("!H", port))
        await writer.drain()
        version, reply, _, kind = await reader.readexactly(4)
        if reply != 0:
            raise UpstreamRefused(f"answered SOCKS error {reply}")
        skip = {1: 4, 4: 16}.get(kind)
        if skip is None:
            skip = (await reader.readexactly(1))[0]
        await reader.readexactly(skip + 2)


@dataclass
class Head:
    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]


def parse_headers(raw: bytes) -> list[tuple[bytes, bytes]]:
    headers = []
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise BadRequest("malformed header")
        headers.append((name.strip(), value.strip()))
    return headers


def parse_head(raw: bytes) -> Head:
    request_line, _, header_lines = raw.partition(b"\r\n")
    try:
        method, target, version = request_line.decode("latin-1").split(" ")
    except ValueError as exc:
        raise BadRequest("malformed request line") from exc
    return Head(method.upper(), target, version, parse_headers(header_lines))


def content_length(fields: dict[bytes, bytes]) -> int | None:
    value = fields.get(b"content-length", b"").strip()
    return int(value) if value.isdigit() and len(value) < 16 else None


def closing_head(first_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request or answer head without hop-by-hop headers, ending its connection."""
    lines = [first_line]
    lines += [name + b": " + value for name, value in headers if name.lower() not in _HOP_HEADERS]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadRequest("bad port")
    return host, int(port_text)


def destination_key(url: str) -> str:
    """`host:port` of a URL, the same for the proxy's view and the page's."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme in ("https", "wss") else 80
    return f"{(parts.hostname or '').lower()}:{port or default}"


def host_allowed(host: str, patterns: list[str] | None) -> bool:
    if patterns is None:
        return True
    name = host.strip("[]").lower().rstrip(".")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` (itself when it is one); none for a name that does not
    resolve. The caller checks them and connects to one it checked."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    found = (parse_address(str(info[4][0])) for info in infos)
    return [address for address in found if address is not None]


def devtools_port(endpoint: str) -> int:
    return urlsplit(endpoint).port or 0


class EgressProxy:
    def __init__(
        self,
        *,
        on_blocked: Callable[[str, str], None],
        own_ports: Collection[int] = frozenset(),
        allowed_domains: list[str] | None = None,
        upstream: UpstreamProxy | None = None,
    ) -> None:
        self.on_blocked = on_blocked
        self.upstream = upstream
        self.own_ports = own_ports
        # A session's own rule on top of the platform's (Browser Run's guardrails):
        # host patterns with at most one `*`, or None for any host.
        self.allowed_domains = allowed_domains
        self.bytes_in = 0  # from the network to the browser
        self.bytes_out = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, host="127.0.0.1", port=0, limit=MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        host_ports.add(self.port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            host_ports.discard(self.port)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._handle(reader, writer)
        except (BadRequest, asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        head = parse_head(raw[:-4])
        if head.method == "CONNECT":
            host, port = split_host_port(head.target, 443)
            url = f"https://{head.target}"
            upstream = await self._open(host, port, path=None, url=url)
            if upstream is None:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await self._relay(reader, writer, *upstream)
            return
        parts = urlsplit(head.target)
        if parts.scheme != "http" or not parts.netloc:
            raise BadRequest("only absolute http:// requests and CONNECT are proxied")
        host, port = split_host_port(parts.netloc.rpartition("@")[2], 80)
        path = parts.path or "/"
        upstream = await self._open(host, port, path=path, url=head.target)
        if upstream is None:
            return  # closed without an answer: a network error in the page
        up_reader, up_writer = upstream
        target = path + (f"?{parts.query}" if parts.query else "")
        request_line = f"{head.method} {target} {head.version}".encode("latin-1")
        request = closing_head(request_line, head.headers)
        self.bytes_out += len(request)
        up_writer.write(request)
        fields = {name.lower(): value for name, value in head.headers}
        body = -1 if b"transfer-encoding" in fields else content_length(fields) or 0
        await self._relay(reader, writer, up_reader, up_writer, request_body=body)

    async def _open(
        self, host: str, port: int, *, path: str | None, url: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if not host_allowed(host, self.allowed_domains):
            self.on_blocked(url, "the session's guardrails do not allow this host")
            return None
        addresses = await resolve(host, port)
        if not addresses:
            return None  # an unknown name: Chromium reports the failure itself
        address, refusal = first_allowed(addresses, port, path=path, own_ports=self.own_ports)
        if address is None:
            self.on_blocked(url, refusal or "refused")
            return None
        if self.upstream is not None:
            return await self._through_upstream(host, port, url)
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(str(address), port, limit=PIPE_CHUNK), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            return None

    async def _through_upstream(
        self, host: str, port: int, url: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A tunnel to host:port opened by the upstream proxy, whose own address must
        pass the platform's check like any destination."""
        upstream = self.upstream
        assert upstream is not None
        address, refusal = first_allowed(
            await resolve(upstream.host, upstream.port),
            upstream.port,
            path=None,
            own_ports=self.own_ports,
        )
        if address is None:
            self.on_blocked(
                url, f"the upstream proxy {upstream.label} is refused: {refusal or 'unknown name'}"
            )
            return None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(str(address), upstream.port, limit=PIPE_CHUNK),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            self.on_blocked(url, f"the upstream proxy {upstream.label} did not answer")
            return None
        try:
            await asyncio.wait_for(upstream.tunnel(reader, writer, host, port), CONNECT_TIMEOUT_S)
        except (UpstreamRefused, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            writer.close()
            reason = str(exc) or type(exc).__name__
            self.on_blocked(url, f"the upstream proxy {upstream.label} {reason}")
            return None
        return reader, writer

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        *,
        request_body: int | None = None,
    ) -> None:
        """Bytes both ways until the destination's side ends. For one plain-HTTP request
        (`request_body` given: its body's length, -1 for a chunked one) only that body
        goes on from the browser's side (a chunked one until the answer begins), and the
        answer says `Connection: close`: no second request rides on a checked one."""

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, out: bool, left: int = -1
        ) -> None:
            # `left`: bytes to pass, -1 for all; only an unbounded pipe passes the end on.
            try:
                while left and (chunk := await source.read(PIPE_CHUNK if left < 0 else left)):
                    left = left - len(chunk) if left > 0 else left
                    if out:
                        self.bytes_out += len(chunk)
                    else:
                        self.bytes_in += len(chunk)
                    sink.write(chunk)
                    await sink.drain()
            finally:
                with contextlib.suppress(Exception):
                    if left < 0 and sink.can_write_eof():
                        sink.write_eof()

        one_request = request_body is not None
        outward = asyncio.ensure_future(
            pipe(reader, up_writer, True, -1 if request_body is None else request_body)
        )
        length = -1  # the answer's body length where it says (a server that ignores
        # `Connection: close` then cannot hold the exchange open)
        if one_request:
            try:
                raw = await up_reader.readuntil(b"\r\n\r\n")
            finally:
                outward.cancel()
            status_line, _, header_lines = raw[:-4].partition(b"\r\n")
            headers = parse_headers(header_lines)
            self.bytes_in += len(raw)
            writer.write(closing_head(status_line, headers))
            fields = {name.lower(): value for name, value in headers}
            if b"transfer-encoding" not in fields and content_length(fields) is not None:
                length = content_length(fields) or 0
        inward = asyncio.ensure_future(pipe(up_reader, writer, False, length))
        try:
            # The answer's end ends the exchange; the browser's side may stay open.
            await inward
        finally:
            outward.cancel()
            await asyncio.gather(outward, return_exceptions=True)
            up_writer.close()
