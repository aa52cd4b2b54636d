"""What a tenant's hosted browser may reach: one statement of the rules, read by the
runtime host's egress proxy and its sandbox (runtime_host/egress.py, sandbox.py) and by
the CDP proxy (runtimes/cdp_proxy.py), which refuses a client's command that would break them.

- Schemes: `file:`, browser-internal pages (`chrome:`, `devtools:`…) and `view-source:`
  never load, by any route (`BLOCKED_SCHEMES`; Chromium enforces them through its URL
  blocklist policy inside the sandbox, the CDP proxy refuses a client's navigation to
  them before it reaches the browser).
- Addresses (`destination_refusal`): link-local addresses (cloud metadata services),
  "this host" and multicast never; the platform's own services never (its web server
  other than the demo shop's plain-HTTP pages, the runtime host link, PostgreSQL, Redis,
  the Celery broker, and the runtime host's own ports: DevTools endpoints and egress
  proxies); loopback and private networks only where BCTRL_BROWSER_PRIVATE_NETWORKS
  allows them (all of them in the embedded default, none with BCTRL_PRODUCTION=1 unless
  listed); the public internet always.
"""

import ipaddress
import os
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_SCHEMES = (
    "file",
    "chrome",
    "chrome-untrusted",
    "chrome-extension",
    "chrome-search",
    "devtools",
    "view-source",
)

_NEVER = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this host": reaches the loopback services on Linux
        "169.254.0.0/16",  # link-local: cloud metadata (169.254.169.254) lives here
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fe80::/10",
        "ff00::/8",
        "fd00:ec2::254/128",  # AWS's IPv6 metadata service
    )
]
_PRIVATE = [
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT, also used inside clouds
        "198.18.0.0/15",
        "::1/128",
        "fc00::/7",
    )
]
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443, "postgres": 5432}
_DEFAULT_PORTS.update({"postgresql": 5432, "redis": 6379, "rediss": 6379, "amqp": 5672})

# Paths of the web server that a hosted browser may load over plain HTTP: the demo shop
# and the public static files it uses.
DEMO_PATHS = ("/demo/", "/static/", "/favicon.ico")


def url_refusal(url: str) -> str | None:
    """Why a browser must not open `url` (a blocked scheme), or None."""
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme in BLOCKED_SCHEMES:
        return f"{scheme}: URLs are not available to hosted browsers"
    return None


def parse_address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Service:
    """One of the platform's own servers, as a (host, port) a browser must not reach."""

    name: str
    host: str
    port: int
    web: bool = False  # the web server: its demo pages stay reachable over plain HTTP


def platform_services() -> list[Service]:
    """The servers of this deployment, from the settings that name them."""
    named = [
        ("web server", settings.SITE_URL, True),
        ("runtime host link", settings.BCTRL_HOST_LINK_URL, True),
        ("database", settings.DATABASE_URL, False),
        ("Redis", settings.REDIS_URL, False),
        ("Celery broker", settings.CELERY_BROKER_URL, False),
        *((f"service {url}", url, False) for url in settings.BCTRL_BROWSER_BLOCKED_SERVICES),
    ]
    services = []
    for name, url, web in named:
        if not url or "://" not in url:
            continue
        parts = urlsplit(url)
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            continue
        if parts.hostname and port:
            services.append(Service(name, parts.hostname, port, web))
    return services


@lru_cache(maxsize=256)
def _resolved(host: str) -> frozenset[IPAddress]:
    literal = parse_address(host)
    if literal is not None:
        return frozenset([literal])
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset()
    found = (parse_address(str(info[4][0])) for info in infos)
    return frozenset(address for address in found if address is not None)


@lru_cache(maxsize=1)
def local_addresses() -> frozenset[IPAddress]:
    """Addresses that reach this machine: its host name's and the unspecified ones."""
    own = set(_resolved(socket.gethostname()))
    own.update(_resolved("localhost"))
    return frozenset(own)


def is_local(address: IPAddress) -> bool:
    return address.is_loopback or address.is_unspecified or address in local_addresses()


def private_networks() -> list[IPNetwork] | None:
    """The private networks a browser may reach: None for all of them."""
    value = settings.BCTRL_BROWSER_PRIVATE_NETWORKS
    if value.strip() == "*":
        return None
    return [ipaddress.ip_network(part, strict=False) for part in value.split(",") if part.strip()]


def _same_machine(address: IPAddress, host: str) -> bool:
    targets = _resolved(host)
    if address in targets:
        return True
    return is_local(address) and any(is_local(target) for target in targets)


NEVER_REACHABLE = "link-local, multicast and unspecified addresses are never reachable"


def never_reachable(address: IPAddress) -> bool:
    """Link-local (cloud metadata), multicast, unspecified and "this host" addresses."""
    return any(address in network for network in _NEVER)


def destination_refusal(
    address: IPAddress,
    port: int,
    *,
    path: str | None = None,
    own_ports: Collection[int] = (),
) -> str | None:
    """Why a browser must not connect to `address:port`, or None when it may.

    `path` is the request's path for a plain-HTTP request (None for a tunnel, whose path
    the proxy cannot see); `own_ports` are the runtime host's listening ports on this
    machine (DevTools endpoints, egress proxies).
    """
    if never_reachable(address):
        return NEVER_REACHABLE
    if own_ports and port in own_ports and is_local(address):
        return "the runtime host's own ports are not reachable"
    for service in platform_services():
        if service.port != port or not _same_machine(address, service.host):
            continue
        if service.web and path is not None and path.startswith(DEMO_PATHS):
            continue
        return f"the platform's {service.name} is not reachable from hosted browsers"
    if address.is_private or address.is_loopback or any(address in n for n in _PRIVATE):
        allowed = private_networks()
        if allowed is not None and not any(address in network for network in allowed):
            return (
                "private and loopback networks are closed to hosted browsers "
                "(BCTRL_BROWSER_PRIVATE_NETWORKS lists the open ones)"
            )
    return None


def first_allowed(
    addresses: Iterable[IPAddress], port: int, *, path: str | None, own_ports: Collection[int]
) -> tuple[IPAddress | None, str | None]:
    """The first address a browser may connect to, else None and the first refusal."""
    refusal = None
    for address in addresses:
        reason = destination_refusal(address, port, path=path, own_ports=own_ports)
        if reason is None:
            return address, None
        refusal = refusal or reason
    return None, refusal or "the host name does not resolve"


# What the web server fetches for a tenant ------------------------------------------------


def server_fetch_refusal(address: IPAddress, port: int) -> str | None:
    """Why the web server must not connect to `address:port` on a tenant's behalf (the
    upstream account that a recordings sync reads, recordings/upstream.py; the space's
    webhook, runs/webhooks.py), or None.

    Not a browser's rules: the tenant chooses only the base URL of a Browser Run API, and
    its answers are parsed, never relayed. Link-local, multicast and unspecified addresses
    never (cloud metadata), nor the platform's database, Redis and Celery broker; loopback
    and private networks may hold an upstream (another bctrl on this host or network),
    and so may the platform's own web server (another space of this bctrl).
    """
    if never_reachable(address):
        return NEVER_REACHABLE
    for service in platform_services():
        if not service.web and service.port == port and _same_machine(address, service.host):
            return f"the platform's {service.name} is not fetched for a tenant"
    return None


# Commands of a CDP client ----------------------------------------------------------------

DOWNLOAD_METHODS = frozenset({"Browser.setDownloadBehavior", "Page.setDownloadBehavior"})


def download_behaviour(params: dict[str, object], *, files_dir: str) -> dict[str, object]:
    """A client's download behaviour, with the downloads kept in the runtime's own folder
    (where the runtime host stores them as the run's files): the client still hears of
    its downloads, but cannot send them anywhere else on the machine."""
    behaviour = params.get("behavior")
    if behaviour not in ("deny", "allow", "allowAndName"):
        behaviour = "allowAndName"
    rewritten = {**params, "behavior": behaviour}
    if behaviour == "deny":
        rewritten.pop("downloadPath", None)
    else:
        rewritten["downloadPath"] = f"{files_dir}/downloads"
    return rewritten


def command_refusal(method: str, params: dict[str, object], *, files_dir: str) -> str | None:
    """Why the CDP proxy must not pass a client's command to the browser, or None."""
    if method in ("Page.navigate", "Target.createTarget"):
        url = params.get("url")
        return url_refusal(url) if isinstance(url, str) else None
    if method == "Target.createBrowserContext" and (
        params.get("proxyServer") or params.get("proxyBypassList")
    ):
        return "a browser context cannot choose its own proxy; traffic leaves through the runtime's"
    if method == "DOM.setFileInputFiles":
        files = params.get("files")
        uploads = f"{files_dir}/uploads/" if files_dir else None
        if isinstance(files, list) and any(
            not isinstance(path, str)
            or uploads is None
            or not os.path.normpath(path).startswith(uploads)
            for path in files
        ):
            return "only files uploaded to the runtime (its uploads folder) can be chosen"
    return None
