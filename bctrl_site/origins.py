"""The origins a space lets embed its viewers: what they may be, and whom they let in.

A space's embed origins (`Space.allowed_embed_origins`, `embedOrigins` in the API) are one
of:

- `["*"]`: any site may frame its embeds and open a live view's socket with a valid lease
  (a new space's default, as seed 000's `<iframe src={iframeUrl}>` assumes);
- a list of origins (`scheme://host[:port]`, http or https, a host possibly `*.` for its
  subdomains): only those;
- `[]`: none; viewer links open only as pages of their own.

The same list decides both: `frame-ancestors` of the embed pages (bctrl_site.middleware)
and the `Origin` a live view's websocket may come from (runtimes.liveview), matched the way
CSP matches `frame-ancestors` sources (`origin_allowed`).
"""

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

ANY_ORIGIN = "*"
MAX_EMBED_ORIGINS = 20  # each up to 300 characters: a CSP header still well under 8 KB
_DEFAULT_PORTS = {"http": 80, "https": 443}
# scheme://host[:port] of http(s), a host being a DNS name (optionally with one leading
# `*.` label, which CSP allows), an IPv4 address or a bracketed IPv6 address. Nothing
# else: no path, no quote, no `;` or whitespace that could end the directive.
_ORIGIN = re.compile(
    r"^https?://"
    r"(?:(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])"
    r"(?::[0-9]{1,5})?$"
)
_PORT = re.compile(r":([0-9]+)$")


class InvalidEmbedOrigins(ValueError):
    """Embed origins that cannot be kept; the message says which and why."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def valid_origin(value: Any) -> str | None:
    """`value` as a CSP source (lowercase `scheme://host[:port]`), or None when it is not one."""
    if not isinstance(value, str):
        return None
    origin = value.strip().lower().rstrip("/")
    if len(origin) > 300 or _ORIGIN.fullmatch(origin) is None:
        return None
    port = _PORT.search(origin)
    if port is not None and not 0 < int(port.group(1)) < 65536:
        return None
    return origin


def embed_origins_checked(values: Any) -> list[str]:
    """Embed origins as a person or a client gave them, normalized (lowercase, no trailing
    slash, each once, in their order): `["*"]`, `[]` or origins. Raises
    InvalidEmbedOrigins for anything else: nothing invalid is ever kept and dropped later."""
    if not isinstance(values, list):
        raise InvalidEmbedOrigins('Give a list: ["*"] for any site, or origins.')
    if len(values) > MAX_EMBED_ORIGINS:
        raise InvalidEmbedOrigins(f"At most {MAX_EMBED_ORIGINS} origins; this is {len(values)}.")
    origins: list[str] = []
    for index, value in enumerate(values):
        if isinstance(value, str) and value.strip() == ANY_ORIGIN:
            if len(values) > 1:
                raise InvalidEmbedOrigins(
                    '"*" (any site) stands alone: give ["*"] or a list of origins.', index
                )
            return [ANY_ORIGIN]
        origin = valid_origin(value)
        if origin is None:
            shown = repr(value) if not isinstance(value, str) else f'"{value[:80]}"'
            raise InvalidEmbedOrigins(
                f"{shown} is not an origin: write scheme://host[:port], such as "
                "https://app.example.com or http://localhost:3000 (no path).",
                index,
            )
        if origin not in origins:
            origins.append(origin)
    return origins


def allows_any_origin(origins: Sequence[Any]) -> bool:
    return list(origins) == [ANY_ORIGIN]


def _parts(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme]


def _source_matches(source: str, scheme: str, host: str, port: int) -> bool:
    wanted = _parts(source)
    if wanted is None:
        return False
    source_scheme, source_host, source_port = wanted
    # As CSP: an http source also matches https, a default port the other default port.
    if scheme != source_scheme and (source_scheme, scheme) != ("http", "https"):
        return False
    defaults = (_DEFAULT_PORTS[source_scheme], _DEFAULT_PORTS[scheme])
    if port != source_port and (source_port, port) != defaults:
        return False
    if source_host.startswith("*."):
        return host.endswith(source_host[1:])  # a subdomain, not the domain itself
    return host == source_host


def origin_allowed(origin: str, origins: Sequence[Any]) -> bool:
    """Whether a browser page of `origin` (an `Origin` header) is one the embed origins let
    in. `["*"]` lets in any http(s) page; no `Origin`, or an opaque one ("null"), is no
    page that frame-ancestors would let frame an embed either."""
    parts = _parts(origin.strip().lower())
    if parts is None:
        return False
    if allows_any_origin(origins):
        return True
    return any(
        _source_matches(source, *parts)
        for source in (valid_origin(value) for value in origins)
        if source is not None
    )
