"""A space's upstream Browser Run-compatible account (seed 004's sync reads it): its rules,
its writes, and the HTTP client that lists its sessions and reads their recordings.

The upstream is Cloudflare's API (`https://api.cloudflare.com/client/v4`) or another
bctrl's `/client/v4`: `GET {base}/accounts/{accountId}/browser-rendering/devtools/session
?limit=&offset=` answers a bare JSON array of sessions, and seed 003's
`GET {base}/accounts/{accountId}/browser-rendering/recording/{sessionId}` a recording
document (404 while there is none to view). Both with `Authorization: Bearer <token>`.

Where it may point (`base_url_problem`, and `runs.confinement.server_fetch_refusal` at
each connection, on the addresses the name resolves to then, so a name that later
resolves elsewhere gains nothing): http or https, no credentials, query or fragment in
the URL; never a link-local, multicast or unspecified address (cloud metadata services)
nor the platform's database, Redis or broker. Loopback and private networks are allowed:
our server fetches the URL, not a hosted browser, and another bctrl on the same host or
network is a real upstream. Redirects are not followed, and an upstream's answer is never
relayed to the caller (errors say what was wrong with it, not what it said).

How its failures are answered (`{"error": {"code", "message"}}`):
- 409 `upstream.not_configured`: no upstream account; the message says how to set one.
- 502 `upstream.unreachable`: refused, reset, timed out, name not resolved, TLS failed.
- 424 `upstream.unauthorized`: the upstream answered 401 or 403 to the stored token.
  424 (Failed Dependency) and not 401/403, which would tell the caller that *their* key
  was refused; a 4xx and not a 502 since only the space's settings can fix it.
- 424 `upstream.account_not_found`: a JSON 404 to the session list (wrong account id).
- 424 `upstream.address_refused`: the base URL resolves to an address named above.
- 502 `upstream.error`: 5xx or 429 from the upstream (`details.upstreamStatus`).
- 502 `upstream.invalid_response`: not JSON, not the expected shape, a redirect, another
  status, an HTML 404, or a body that stops before its end.
"""

import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from recordings.models import UpstreamAccount, UpstreamSessionSkip
from runs.confinement import never_reachable, parse_address
from runs.errors import ApiError, Conflict, Invalid
from runs.fetch import FetchRefused, checked_connection, failure_reason
from runs.models import Space

PAGE_SIZE = 100
MAX_LISTED_SESSIONS = 10_000
MAX_LIST_PAGE_BYTES = 8 * 1024 * 1024
USER_AGENT = "bctrl-sync/1"
ID_MAX = 100
BASE_URL_MAX = 500
TOKEN_MAX = 500


# --- Rules ----------------------------------------------------------------------------------


def base_url_problem(value: str) -> str | None:
    """Why `value` cannot be an upstream base URL, or None."""
    if not value or len(value) > BASE_URL_MAX:
        return f"Give the API's base URL, at most {BASE_URL_MAX} characters."
    if any(ord(char) <= 32 or ord(char) == 127 for char in value):
        return "The base URL cannot contain spaces or control characters."
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "The base URL is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The base URL must start with https:// (or http://)."
    if not parts.hostname:
        return "The base URL has no host."
    if parts.username is not None or parts.password is not None:
        return "The base URL cannot carry credentials; give the API token on its own."
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "The base URL cannot have a query or a fragment."
    if port == 0:
        return "The base URL's port is not valid."
    address = parse_address(parts.hostname)
    if address is not None and never_reachable(address):
        return "The base URL cannot be a link-local, multicast or unspecified address."
    return None


def account_id_problem(value: str) -> str | None:
    if not value or len(value) > ID_MAX or not value.isascii():
        return f"Give the account id, 1 to {ID_MAX} ASCII characters."
    if not all(char.isalnum() or char in "-_" for char in value):
        return "The account id has only letters, digits, '-' and '_'."
    return None


def api_token_problem(value: str) -> str | None:
    # Printable ASCII without spaces: it goes into an HTTP header as it is.
    if not value or len(value) > TOKEN_MAX:
        return f"Give the API token, 1 to {TOKEN_MAX} characters."
    if not all(33 <= ord(char) <= 126 for char in value):
        return "The API token has only printable ASCII characters, without spaces."
    return None


def normalized_base_url(value: str) -> str:
    return value.rstrip("/")


def token_last_four(token: str) -> str:
    """The last four characters, shown to say which token is set; none of a short token."""
    return token[-4:] if len(token) >= 16 else ""


# --- Writes and reads -----------------------------------------------------------------------


def upstream_account_of(space: Space) -> UpstreamAccount | None:
    return UpstreamAccount.objects.filter(space=space).first()


def upstream_account_set(
    *, space: Space, base_url: str, account_id: str, api_token: str | None
) -> UpstreamAccount:
    """Links the space to an upstream account, or changes it. `api_token` None keeps the
    stored token (a change of URL or account id without typing the token again).
    An invalid value is a 422 naming its field (`details.field`, camelCase)."""
    account = upstream_account_of(space) or UpstreamAccount(space=space)
    if api_token is None and not account.api_token:
        raise Invalid("apiToken: Give the API token.", details={"field": "apiToken"})
    problems = [
        ("baseUrl", base_url_problem(base_url)),
        ("accountId", account_id_problem(account_id)),
        ("apiToken", api_token_problem(api_token) if api_token is not None else None),
    ]
    for name, problem in problems:
        if problem:
            raise Invalid(f"{name}: {problem}", details={"field": name})
    base_url = normalized_base_url(base_url)
    if (account.base_url, account.account_id) != (base_url, account_id):
        # Another account: its sessions are checked afresh.
        UpstreamSessionSkip.objects.filter(space=space).delete()
    if api_token is not None:
        account.api_token = api_token
        account.token_last_four = token_last_four(api_token)
    account.base_url = base_url
    account.account_id = account_id
    account.save()
    return account


def upstream_account_clear(*, space: Space) -> None:
    """Unlinks the space's upstream account; recordings it imported stay."""
    UpstreamAccount.objects.filter(space=space).delete()
    UpstreamSessionSkip.objects.filter(space=space).delete()


def upstream_account_json(space: Space, account: UpstreamAccount | None) -> dict[str, Any]:
    """The account as answers and pages show it: never the token, only whether it is set."""
    return {
        "spaceId": space.id,
        "configured": account is not None,
        "baseUrl": account.base_url if account else None,
        "accountId": account.account_id if account else None,
        "apiTokenSet": bool(account and account.api_token),
        "apiTokenLastFour": (account.token_last_four or None) if account else None,
        "updatedAt": account.updated_at.isoformat().replace("+00:00", "Z") if account else None,
    }


# --- Errors ---------------------------------------------------------------------------------


class UpstreamNotConfigured(Conflict):
    default_code = "upstream.not_configured"


class UpstreamUnreachable(ApiError):
    status_code = 502
    default_code = "upstream.unreachable"


class UpstreamRefused(ApiError):
    status_code = 424
    default_code = "upstream.unauthorized"


class UpstreamInvalid(ApiError):
    status_code = 502
    default_code = "upstream.invalid_response"


# --- Client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """What the client needs of an account; the token stays out of its repr."""

    base_url: str
    account_id: str
    api_token: str = field(repr=False)

    @classmethod
    def of(cls, account: UpstreamAccount) -> "Upstream":
        return cls(account.base_url, account.account_id, account.api_token)

    def path(self, *parts: str) -> str:
        prefix = urlsplit(self.base_url).path.rstrip("/")
        account = quote(self.account_id, safe="")
        tail = "/".join(quote(part, safe="") for part in parts)
        return f"{prefix}/accounts/{account}/browser-rendering/{tail}"


@dataclass(frozen=True)
class UpstreamSession:
    """One session of the upstream's list; times are epoch milliseconds."""

    id: str
    start_ms: int | None
    end_ms: int | None
    close_reason: str
    close_reason_text: str

    @property
    def closed(self) -> bool:
        return self.end_ms is not None


def timeout_s() -> float:
    return float(settings.BCTRL_UPSTREAM_TIMEOUT_S)


def _reason(error: BaseException) -> str:
    return failure_reason(error, timeout_s())


class Body:
    """An upstream answer's body, read with the per-request deadline and every failure
    of the transport turned into the API's errors."""

    def __init__(self, response: http.client.HTTPResponse, deadline: float, what: str) -> None:
        self.response = response
        self.deadline = deadline
        self.what = what

    def read(self, size: int, /) -> bytes:
        if time.monotonic() > self.deadline:
            raise UpstreamUnreachable(
                f"The upstream took longer than {settings.BCTRL_UPSTREAM_REQUEST_MAX_S} s "
                f"to send {self.what}."
            )
        try:
            data = self.response.read(size)
        except http.client.IncompleteRead as exc:
            raise UpstreamInvalid(f"The upstream's {self.what} stopped before its end.") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnreachable(
                f"The upstream failed while sending {self.what}: {_reason(exc)}."
            ) from exc
        if not data and self.response.length:  # fewer bytes than its Content-Length said
            raise UpstreamInvalid(f"The upstream's {self.what} stopped before its end.")
        return data


@sensitive_variables("token", "headers")
def _send(
    connection: http.client.HTTPConnection, target: str, token: str
) -> http.client.HTTPResponse:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": USER_AGENT,
    }
    connection.request("GET", target, headers=headers)
    return connection.getresponse()


@contextmanager
def _get(
    upstream: Upstream,
    path: str,
    *,
    what: str,
    query: dict[str, Any] | None = None,
    missing_ok: bool = False,
) -> Iterator[Body | None]:
    """GET `path` on the upstream: the body of a 200 answer, None for a JSON 404 when
    `missing_ok`, or the API's error."""
    parts = urlsplit(upstream.base_url)
    connection = checked_connection(parts, timeout_s())
    target = path + (f"?{urlencode(query)}" if query else "")
    try:
        try:
            response = _send(connection, target, upstream.api_token)
        except FetchRefused as exc:
            raise UpstreamRefused(
                f"The upstream's host {exc.host!r} resolves to an address bctrl does not "
                f"fetch ({exc.reason}).",
                code="upstream.address_refused",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnreachable(
                f"Could not reach the upstream at {upstream.base_url}: {_reason(exc)}."
            ) from exc
        if _check_status(response, what, missing_ok=missing_ok):
            yield Body(response, time.monotonic() + settings.BCTRL_UPSTREAM_REQUEST_MAX_S, what)
        else:
            yield None
    finally:
        connection.close()


def _check_status(response: http.client.HTTPResponse, what: str, *, missing_ok: bool) -> bool:
    """True for a 200, False for a JSON 404 that `missing_ok` allows; else the error."""
    status = response.status
    if status == 200:
        return True
    json_answer = (response.getheader("Content-Type") or "").startswith("application/json")
    if status in (401, 403):
        raise UpstreamRefused(
            f"The upstream refused the space's API token (HTTP {status}); set a valid token "
            "in the space settings."
        )
    if status == 404 and json_answer:
        if missing_ok:
            return False
        raise UpstreamRefused(
            "The upstream has no such account (HTTP 404): check the base URL and the "
            "account id in the space settings.",
            code="upstream.account_not_found",
        )
    if status >= 500 or status == 429:
        raise ApiError(
            f"The upstream failed to answer {what} (HTTP {status}); try again later.",
            code="upstream.error",
            status_code=502,
            details={"upstreamStatus": status},
        )
    raise UpstreamInvalid(
        f"The upstream answered {what} with HTTP {status}"
        + (" and no JSON" if not json_answer else "")
        + ": is the base URL a Browser Run API?",
        details={"upstreamStatus": status},
    )


def list_sessions(upstream: Upstream) -> list[UpstreamSession]:
    """Every session the upstream lists, page after page (`limit`/`offset`), until a page
    brings nothing new; at most MAX_LISTED_SESSIONS."""
    sessions: dict[str, UpstreamSession] = {}
    offset = 0
    while len(sessions) < MAX_LISTED_SESSIONS:
        with _get(
            upstream,
            upstream.path("devtools", "session"),
            what="the session list",
            query={"limit": PAGE_SIZE, "offset": offset},
        ) as body:
            assert body is not None
            raw = _read_whole(body, MAX_LIST_PAGE_BYTES)
        page = _session_page(raw)
        fresh = [session for session in page if session.id not in sessions]
        for session in fresh:
            sessions[session.id] = session
        # A server may cap `limit` below ours, so only an empty page (or one that repeats
        # what it said, an upstream that ignores `offset`) ends the list.
        if not fresh:
            break
        offset += len(page)
    return list(sessions.values())


def _read_whole(body: Body, limit: int) -> bytes:
    parts = []
    size = 0
    while chunk := body.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UpstreamInvalid(f"The upstream's session list is larger than {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


def _session_page(raw: bytes) -> list[UpstreamSession]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamInvalid("The upstream's session list is not JSON.") from None
    if isinstance(value, dict) and value.get("success") is True:
        value = value.get("result")  # Cloudflare's envelope, if an upstream wraps it
    if not isinstance(value, list):
        raise UpstreamInvalid("The upstream's session list is not a JSON array of sessions.")
    return [_session(item, position) for position, item in enumerate(value)]


def _session(item: Any, position: int) -> UpstreamSession:
    where = f"session {position} of the upstream's list"
    if not isinstance(item, dict):
        raise UpstreamInvalid(f"The {where} is not an object.")
    session_id = item.get("sessionId")
    if (
        not isinstance(session_id, str)
        or not 0 < len(session_id) <= ID_MAX
        or not session_id.isascii()
        or not all(char.isalnum() or char in "-_.:" for char in session_id)
    ):
        raise UpstreamInvalid(f"The {where} has no valid sessionId.")
    return UpstreamSession(
        id=session_id,
        start_ms=_epoch_ms(item.get("startTime"), where),
        end_ms=_epoch_ms(item.get("endTime"), where),
        close_reason=_text(item.get("closeReason")),
        close_reason_text=_text(item.get("closeReasonText")),
    )


def _epoch_ms(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 2**53:
        raise UpstreamInvalid(f"The {where} has a time that is not epoch milliseconds.")
    return int(value)


def _text(value: Any) -> str:
    return str(value)[:500] if isinstance(value, str | int) and not isinstance(value, bool) else ""


@contextmanager
def open_recording(upstream: Upstream, session_id: str) -> Iterator[Body | None]:
    """The body of the session's recording document (seed 003), or None when the upstream
    has no viewable recording of it (404: not ready yet, or shorter than a second)."""
    with _get(
        upstream, upstream.path("recording", session_id), what="a recording", missing_ok=True
    ) as body:
        yield body
