"""Security headers of every response, and the framing rules of viewer embeds.

Every response gets the strict policy (`STRICT_POLICY`) unless the view set its own
`Content-Security-Policy`; Django's XFrameOptionsMiddleware adds `X-Frame-Options:
DENY` and SecurityMiddleware `Referrer-Policy: same-origin`.

Embeds (`/embed/…`, viewers/embeds.py) are opened by a lease URL, inside a third-party
iframe. Their responses:

- all of them: `Referrer-Policy: no-referrer`, so the token in the URL never leaves in
  a Referer header;
- a page that may be framed calls `allow_embed_framing(response, origins)` with its
  space's embed origins (bctrl_site.origins): the middleware then rewrites the page's
  own policy (or the strict one) with `frame-ancestors <origins>` (`*` for `["*"]`,
  `'none'` for an empty list; every origin is validated again here, at rendering: see
  `frame_ancestors`) and sends no `X-Frame-Options`;
- the rest (JSON data endpoints, SSE) keep `frame-ancestors 'none'` and DENY.
"""

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from bctrl_site.origins import ANY_ORIGIN, allows_any_origin, valid_origin

STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


EMBED_PREFIX = "/embed/"
# A response attribute set by allow_embed_framing: the origins that may frame it.
_FRAMING_ATTR = "bctrl_frame_ancestors"
ANY_ANCESTOR = ANY_ORIGIN
_FRAME_ANCESTORS = re.compile(r"(^|;)\s*frame-ancestors[^;]*")


def frame_ancestors(origins: Iterable[Any] | str) -> str:
    """The source list of a `frame-ancestors` directive: `*` for `["*"]` (bctrl_site.origins),
    else the valid origins, or 'none'.

    Invalid values are dropped, never passed through: a space's origins are checked when
    they are saved, but a value such as "https://a.com; script-src *" written around that
    check must not add a directive, nor a "*" among origins widen them to any site.
    """
    if origins == ANY_ANCESTOR:
        return ANY_ANCESTOR
    listed = list(origins)
    if allows_any_origin(listed):
        return ANY_ANCESTOR
    valid = []
    for value in listed:
        origin = valid_origin(value)
        if origin is not None and origin not in valid:
            valid.append(origin)
    return " ".join(valid) if valid else "'none'"


def with_frame_ancestors(policy: str, sources: str) -> str:
    """`policy` with its frame-ancestors directive replaced (or added)."""
    stripped = _FRAME_ANCESTORS.sub(r"\1", policy)
    parts = [part.strip() for part in stripped.split(";") if part.strip()]
    parts.append(f"frame-ancestors {sources}")
    return "; ".join(parts)


def allow_embed_framing(response: HttpResponse, origins: Iterable[Any] | str) -> HttpResponse:
    """Lets `origins` (a space's allowed_embed_origins, or ANY_ANCESTOR) frame this embed
    response; the middleware turns it into the CSP and drops X-Frame-Options."""
    setattr(response, _FRAMING_ATTR, frame_ancestors(origins))
    return response


def _apply_policy(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    policy = response.get("Content-Security-Policy") or STRICT_POLICY
    sources = getattr(response, _FRAMING_ATTR, None)
    if sources is not None:
        policy = with_frame_ancestors(policy, sources)
        response.xframe_options_exempt = True
        if "X-Frame-Options" in response:
            del response["X-Frame-Options"]
    response["Content-Security-Policy"] = policy
    if request.path.startswith(EMBED_PREFIX):
        response["Referrer-Policy"] = "no-referrer"
    return response


class _SyncOrAsync:
    """A middleware that runs in a sync or an async chain, as its `get_response` does:
    async views (streams, long-polls) then stay on the event loop instead of being
    pushed into a thread each. Subclasses give `_call` and `_acall`."""

    sync_capable = True
    async_capable = True

    def _follow(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        return self._acall(request) if self.is_async else self._call(request)

    def _call(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError


class ContentSecurityPolicyMiddleware(_SyncOrAsync):
    """Sends the strict policy on every response that has not chosen its own, and the
    framing and referrer rules of embeds (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._follow(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        return _apply_policy(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        return _apply_policy(request, response)


class StaticFilesMiddleware(_SyncOrAsync, WhiteNoiseMiddleware):
    """WhiteNoise, able to sit in an async middleware chain.

    Serving a static file is the same sync work either way; what changes is that a
    request it does not serve reaches async views without a hop through a thread.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        WhiteNoiseMiddleware.__init__(self, get_response)
        self._follow(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = WhiteNoiseMiddleware.__call__(self, request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        static_file = (
            self.find_file(request.path_info)
            if self.autorefresh
            else self.files.get(request.path_info)
        )
        if static_file is not None:
            return self.serve(static_file, request)
        response: Awaitable[HttpResponse] = self.get_response(request)
        return await response
