"""Rate limits: one rule for the DRF views, the rrweb ingest's own route and sign-in.

Each limited action (`Scope`) has a rate per API key and a rate per client address,
settings of the form "<count>/<s|min|hour|day>" ("off": no limit). A request is counted
against both in fixed windows of the rate's period (a counter per window in Django's
cache: Redis when REDIS_URL is set, so every web process shares the counts, else the
process's memory); past either, it is answered 429 `rate_limited` with Retry-After, the
seconds until the window ends. The cache is a limiter, not a store: when it cannot be
reached the request goes through (logged), rather than the product going down with it.

The client address is REMOTE_ADDR, or behind BCTRL_TRUSTED_PROXIES reverse proxies the
address the nearest of them saw (X-Forwarded-For), as DRF's NUM_PROXIES reads it.
"""

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from runs.errors import ApiError

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES)
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    def __str__(self) -> str:
        period = {1: "a second", 60: "a minute", 3600: "an hour", 86400: "a day"}[self.seconds]
        return f"{self.count} {period}"


def parse_rate(name: str, text: str) -> Rate | None:
    """A rate setting: "120/min", or "off" (None); anything else is a configuration
    error, never read as no limit."""
    if text.strip().lower() == "off":
        return None
    match = _RATE.match(text.lower())
    if match is None or match[2] not in _PERIODS:
        raise ImproperlyConfigured(
            f"{name}={text!r}: write <count>/<s|min|hour|day>, e.g. 60/min, or off."
        )
    return Rate(int(match[1]), _PERIODS[match[2]])


@dataclass(frozen=True)
class Scope:
    """A limited action: its name in messages and cache keys, and its two settings."""

    name: str
    what: str  # "runtime starts", in "Too many runtime starts"
    per_key_setting: str
    per_ip_setting: str

    def per_key(self) -> Rate | None:
        return parse_rate(self.per_key_setting, getattr(settings, self.per_key_setting))

    def per_ip(self) -> Rate | None:
        return parse_rate(self.per_ip_setting, getattr(settings, self.per_ip_setting))


RUNTIME_START = Scope(
    "runtime_start",
    "runtime starts",
    "BCTRL_RATE_RUNTIME_START_PER_KEY",
    "BCTRL_RATE_RUNTIME_START_PER_IP",
)
LEASE = Scope(
    "lease", "viewer and download links", "BCTRL_RATE_LEASE_PER_KEY", "BCTRL_RATE_LEASE_PER_IP"
)
INGEST = Scope("ingest", "rrweb batches", "BCTRL_RATE_INGEST_PER_KEY", "BCTRL_RATE_INGEST_PER_IP")
SIGN_IN = Scope("sign_in", "sign-in attempts", "", "BCTRL_RATE_SIGN_IN_PER_IP")


clock = time.time  # the limiter's time (tests hold it still)


class RateLimited(ApiError):
    status_code = 429
    default_code = "rate_limited"


def client_ip(meta: Mapping[str, Any]) -> str:
    """The client's address (see the module's docstring)."""
    proxies = int(settings.BCTRL_TRUSTED_PROXIES)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
        if addresses:
            return addresses[-min(proxies, len(addresses))]
    return str(meta.get("REMOTE_ADDR") or "unknown")


def hit(scope_name: str, who: str, rate: Rate) -> int | None:
    """Counts one request of `who` in the current window of `rate`: None while within
    it, else the seconds until the window ends."""
    now = clock()
    window = int(now // rate.seconds)
    key = f"rate:{scope_name}:{who}:{rate.seconds}:{window}"
    try:
        if cache.add(key, 1, timeout=rate.seconds + 1):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # the window's key expired between the two calls
                cache.set(key, 1, timeout=rate.seconds + 1)
                count = 1
    except Exception:
        logger.warning("Rate limit %s not checked: the cache failed", scope_name, exc_info=True)
        return None
    if count <= rate.count:
        return None
    return max(1, math.ceil((window + 1) * rate.seconds - now))


def check(scope: Scope, *, api_key_id: str | None, meta: Mapping[str, Any]) -> None:
    """Counts the request against the scope's rates; 429 past either."""
    refusals: list[tuple[int, str]] = []
    per_key = scope.per_key() if scope.per_key_setting and api_key_id else None
    if per_key is not None and api_key_id:
        wait = hit(scope.name, f"key:{api_key_id}", per_key)
        if wait is not None:
            refusals.append((wait, f"at most {per_key} per API key"))
    per_ip = scope.per_ip()
    if per_ip is not None:
        wait = hit(scope.name, f"ip:{client_ip(meta)}", per_ip)
        if wait is not None:
            refusals.append((wait, f"at most {per_ip} per client address"))
    if refusals:
        wait, limit = max(refusals)
        raise RateLimited(
            f"Too many {scope.what}: {limit}. Retry in {wait} s.",
            details={"retryAfter": wait},
            retry_after=wait,
        )


class ScopedThrottle(BaseThrottle):
    """The rule above as DRF's throttle of every view (DEFAULT_THROTTLE_CLASSES): a view
    whose `rate_scope` names a Scope is limited. DRF runs it after authentication, so an
    API key's requests count against the key."""

    def allow_request(self, request: Request, view: "APIView") -> bool:
        scope: Scope | None = getattr(view, "rate_scope", None)
        if scope is None:
            return True
        api_key = getattr(request, "auth", None)
        check(scope, api_key_id=getattr(api_key, "id", None), meta=request.META)
        return True
