"""Sign-in throttling, for the dashboard's login and the admin's.

- Per client address: BCTRL_RATE_SIGN_IN_PER_IP attempts (the rule of
  runs/api/throttles.py).
- Per username and address: after BCTRL_SIGN_IN_MAX_FAILURES failed attempts, that
  username is locked out from that address for BCTRL_SIGN_IN_LOCKOUT_S. Meanwhile even
  the right password does not sign in: the login pages answer 429 with the time left
  (`guard_sign_in`), and `ThrottledModelBackend` refuses whatever form asks.

Failures are counted from Django's `user_login_failed` signal, so every sign-in form
counts them; a successful sign-in clears them. Counts live in Django's cache (Redis with
REDIS_URL); when it cannot be reached, sign-in works unthrottled (logged).
"""

import hashlib
import logging
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from runs.api import throttles
from runs.api.throttles import SIGN_IN, RateLimited, check, client_ip

logger = logging.getLogger(__name__)


def _keys(username: str, ip: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{username.strip().lower()}\0{ip}".encode()).hexdigest()[:32]
    return f"sign-in:failures:{digest}", f"sign-in:locked:{digest}"


def lockout_remaining(username: str, ip: str) -> int | None:
    """Seconds until `username` may sign in again from `ip`, or None."""
    _, locked_key = _keys(username, ip)
    try:
        until = cache.get(locked_key)
    except Exception:
        logger.warning("Sign-in lockout not checked: the cache failed", exc_info=True)
        return None
    if until is None:
        return None
    remaining = math.ceil(float(until) - throttles.clock())
    return remaining if remaining > 0 else None


def record_failure(username: str, ip: str) -> None:
    failures_key, locked_key = _keys(username, ip)
    lockout_s = int(settings.BCTRL_SIGN_IN_LOCKOUT_S)
    try:
        if cache.add(failures_key, 1, timeout=lockout_s):
            failures = 1
        else:
            try:
                failures = cache.incr(failures_key)
            except ValueError:  # expired between the two calls
                cache.set(failures_key, 1, timeout=lockout_s)
                failures = 1
        if failures >= int(settings.BCTRL_SIGN_IN_MAX_FAILURES):
            cache.add(locked_key, throttles.clock() + lockout_s, timeout=lockout_s)
    except Exception:
        logger.warning("Sign-in failure not counted: the cache failed", exc_info=True)


def clear_failures(username: str, ip: str) -> None:
    try:
        cache.delete_many(list(_keys(username, ip)))
    except Exception:
        logger.warning("Sign-in failures not cleared: the cache failed", exc_info=True)


@receiver(user_login_failed)
def _count_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = credentials.get("username")
    if request is not None and isinstance(username, str):
        record_failure(username, client_ip(request.META))


@receiver(user_logged_in)
def _clear_on_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        clear_failures(user.get_username(), client_ip(request.META))


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing a username locked out from the request's address
    (PermissionDenied stops every backend: authenticate() answers None)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if (
            request is not None
            and username
            and lockout_remaining(username, client_ip(request.META))
        ):
            raise PermissionDenied("Locked out after too many failed sign-ins.")
        return super().authenticate(request, username=username, password=password, **kwargs)


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def refused(request: HttpRequest, seconds: int, message: str) -> HttpResponse:
    response = render(
        request, "registration/sign_in_refused.html", {"message": message}, status=429
    )
    response["Retry-After"] = str(seconds)
    return response


def guard_sign_in(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """A login view whose POSTs are refused with 429 while their username is locked out
    from the client's address, or past the address's rate."""

    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            ip = client_ip(request.META)
            remaining = lockout_remaining(request.POST.get("username", ""), ip)
            if remaining is not None:
                return refused(
                    request,
                    remaining,
                    "Too many failed sign-ins for this username. Try again in "
                    f"{_minutes(remaining)}.",
                )
            try:
                check(SIGN_IN, api_key_id=None, meta=request.META)
            except RateLimited as exc:
                wait = exc.retry_after or 1
                return refused(
                    request, wait, f"Too many sign-in attempts. Try again in {_minutes(wait)}."
                )
        return view(request, *args, **kwargs)

    return guarded
