"""One error hierarchy for every call: what went wrong, with the server's own words.

    BctrlError
    ├── APIConnectionError          the server could not be reached
    │   └── APITimeoutError         it did not answer in time
    └── APIStatusError              it answered with an error status
        ├── BadRequestError            400
        ├── AuthenticationError        401
        ├── PermissionDeniedError      403
        ├── NotFoundError              404
        │   └── NoActiveRunError       404 runtime.no_active_run
        ├── ConflictError              409
        ├── UnprocessableEntityError   422
        ├── RateLimitError             429
        └── InternalServerError        5xx

Every APIStatusError carries the server's `code`, `message` and `details` (its error shape
is `{"error": {"code", "message", "details"?}}`), the HTTP `status_code` and the
`response`.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BctrlError",
    "ConflictError",
    "InternalServerError",
    "NoActiveRunError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
]


class BctrlError(Exception):
    """Anything the client raises about a call."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(BctrlError):
    """The request did not get an answer: refused, reset, a name that does not resolve."""

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    def __init__(self, *, request: httpx.Request) -> None:
        super().__init__("The request timed out.", request=request)


class APIStatusError(BctrlError):
    """The server answered an error status; `code` is its machine-readable reason."""

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        code: str,
        details: Any = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.request = response.request
        self.status_code = response.status_code
        self.code = code
        self.details = details
        self.body = body

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class NoActiveRunError(NotFoundError):
    """`runtime.no_active_run`: the runtime is not running a run now (seed 002)."""


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (its `Retry-After`), if it said."""
        return retry_after_seconds(self.response)


class InternalServerError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
_BY_CODE: dict[str, type[APIStatusError]] = {"runtime.no_active_run": NoActiveRunError}


def status_error(response: httpx.Response) -> APIStatusError:
    """The error for an answer of status 400 or more, from its JSON error body."""
    body: Any = None
    code, message, details = "", "", None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = str(error.get("message") or "")
        details = error.get("details")
    elif isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]  # Cloudflare's envelope (the /client/v4 surface)
        code, message = str(first.get("type") or first.get("code")), str(first.get("message"))
    if not message:
        text = body if isinstance(body, str) else ""
        message = text.strip()[:300] or response.reason_phrase or "error"
    if not code:
        code = f"http_{response.status_code}"
    kind = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = InternalServerError if response.status_code >= 500 else APIStatusError
    return kind(message, response=response, code=code, details=details, body=body)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date), or None."""
    raw = response.headers.get("retry-after-ms")
    if raw:
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
