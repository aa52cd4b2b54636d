"""The HTTP core shared by `Bctrl` and `AsyncBctrl`: configuration, requests, retries.

A call is retried, up to `max_retries` times, when the server could not be reached (a
refused connection; a reset or a timeout for idempotent calls), or answered 408, 429, 5xx
(for a call that is not idempotent, only a 5xx with Retry-After), or 409 for an idempotent
call. The wait honours the server's `Retry-After` (429 and 503 send it), else backs off
exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypedDict

import httpx

from bctrl._errors import (
    APIConnectionError,
    APITimeoutError,
    BctrlError,
    retry_after_seconds,
    status_error,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "CallOptions"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
# The longest Retry-After honoured; a longer one is the caller's decision (the error says it).
MAX_RETRY_AFTER_S = 60.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

Params = Mapping[str, str | int | float | bool | None]
Timeout = float | httpx.Timeout | None


def joined(values: str | Sequence[str] | None) -> str | None:
    """A filter of several values as the API reads it from a query: comma-separated."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


def long_poll_timeout(wait_s: float) -> httpx.Timeout:
    """The timeout of a call that the server holds for up to `wait_s` seconds before it
    answers: that long, and time to answer."""
    return httpx.Timeout(wait_s + 30.0, connect=10.0)


class CallOptions(TypedDict, total=False):
    """Per-call settings, taken by every method: `timeout` (seconds) and `max_retries`."""

    timeout: float | httpx.Timeout | None
    max_retries: int


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bctrl")
    except Exception:
        return "0"


class BaseClient:
    """What both clients hold: where the server is, the key, and how patient to be."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("BCTRL_API_KEY")
        if not api_key:
            raise BctrlError(
                "No API key: pass api_key= or set BCTRL_API_KEY (a key looks like "
                "bctrl_sk_…; `manage.py create_api_key` prints one)."
            )
        self.api_key = api_key
        base = base_url or os.environ.get("BCTRL_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})
        # What waits between retries; a test may watch it (the waits it was asked for).
        self._sleep: Callable[[float], None] = time.sleep

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"bctrl-python/{_version()}",
            **self.default_headers,
            **(extra or {}),
        }

    def url(self, path: str) -> str:
        """An absolute URL on the server for a path the API answered (`/v1/…`)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        *,
        params: Params | None,
        json: Any,
        content: bytes | None,
        files: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        timeout: Timeout | object,
    ) -> httpx.Request:
        clean = {key: value for key, value in (params or {}).items() if value is not None}
        return http.build_request(
            method,
            self.url(path),
            params=clean or None,
            json=json,
            content=content,
            files=files,
            data=data,
            headers=self._headers(headers),
            timeout=self.timeout if timeout is _UNSET else timeout,  # type: ignore[arg-type]
        )

    @staticmethod
    def _retryable(response: httpx.Response, idempotent: bool) -> bool:
        """408 and 429 always; 5xx for an idempotent call, or when the server says when to
        come back (a 503 runtime.no_host with Retry-After has done nothing; a start that
        timed out on the server has cancelled what it began); 409 for an idempotent call."""
        status = response.status_code
        if status in (408, 429):
            return True
        if status >= 500:
            return idempotent or retry_after_seconds(response) is not None
        return status == 409 and idempotent

    @staticmethod
    def _delay(attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            asked = retry_after_seconds(response)
            if asked is not None and asked <= MAX_RETRY_AFTER_S:
                return asked
        backoff = min(INITIAL_RETRY_DELAY_S * 2**attempt, MAX_RETRY_DELAY_S)
        return float(backoff * (1 - 0.25 * random.random()))


class _Unset:
    pass


_UNSET: Any = _Unset()


class SyncAPI(BaseClient):
    """Requests through an `httpx.Client`."""

    def __init__(self, *, http_client: httpx.Client | None = None, **config: Any) -> None:
        super().__init__(**config)
        self._owns_http = http_client is None  # a client given (or shared) is its owner's
        self._http = http_client or httpx.Client(follow_redirects=False)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        timeout: Timeout | object = _UNSET,
        max_retries: int | None = None,
    ) -> httpx.Response:
        """Sends one call, with retries; raises a BctrlError for anything but success.
        With `stream`, the answer's body is left unread (close it)."""
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        retries = self.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            request = self._build(
                self._http,
                method,
                path,
                params=params,
                json=json,
                content=content,
                files=files,
                data=data,
                headers=headers,
                timeout=timeout,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if attempt < retries and (safe or isinstance(exc, httpx.ConnectTimeout)):
                    self._sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise APITimeoutError(request=request) from exc
            except httpx.TransportError as exc:
                # A connection that never opened sent nothing: safe to try again.
                if attempt < retries and (safe or isinstance(exc, httpx.ConnectError)):
                    self._sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(
                    f"No answer from {self.base_url}: {exc}", request=request
                ) from exc
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            if attempt < retries and self._retryable(response, safe):
                self._sleep(self._delay(attempt, response))
                attempt += 1
                continue
            raise status_error(response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        return response.json() if response.content else None

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        response = self.send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()


class AsyncAPI(BaseClient):
    """Requests through an `httpx.AsyncClient`."""

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **config: Any) -> None:
        super().__init__(**config)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(follow_redirects=False)
        self._async_sleep: Callable[[float], Any] = asyncio.sleep

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        timeout: Timeout | object = _UNSET,
        max_retries: int | None = None,
    ) -> httpx.Response:
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        retries = self.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            request = self._build(
                self._http,
                method,
                path,
                params=params,
                json=json,
                content=content,
                files=files,
                data=data,
                headers=headers,
                timeout=timeout,
            )
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if attempt < retries and (safe or isinstance(exc, httpx.ConnectTimeout)):
                    await self._async_sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise APITimeoutError(request=request) from exc
            except httpx.TransportError as exc:
                if attempt < retries and (safe or isinstance(exc, httpx.ConnectError)):
                    await self._async_sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(
                    f"No answer from {self.base_url}: {exc}", request=request
                ) from exc
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            if attempt < retries and self._retryable(response, safe):
                await self._async_sleep(self._delay(attempt, response))
                attempt += 1
                continue
            raise status_error(response)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.send(method, path, **kwargs)
        return response.json() if response.content else None

    @asynccontextmanager
    async def stream(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        response = await self.send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            await response.aclose()
