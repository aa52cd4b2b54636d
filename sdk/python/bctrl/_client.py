"""`Bctrl` and `AsyncBctrl`: the clients, configured by arguments or the environment.

client = Bctrl()                     # BCTRL_API_KEY, BCTRL_BASE_URL
client = Bctrl(api_key="bctrl_sk_…", base_url="http://127.0.0.1:8000",
               timeout=60, max_retries=2)
client.with_options(timeout=5, max_retries=0).runs.list()
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from bctrl import _resources as r
from bctrl._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, AsyncAPI, SyncAPI

if TYPE_CHECKING:
    from bctrl._recorder import LocalRecording

__all__ = ["AsyncBctrl", "Bctrl"]


class Bctrl:
    """The synchronous client of a bctrl server."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._api = SyncAPI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            http_client=http_client,
        )
        self.runtimes = r.Runtimes(self)
        self.runs = r.Runs(self)
        self.spaces = r.Spaces(self._api)
        self.profiles = r.Profiles(self._api)
        self.leases = r.LeaseActions(self._api)
        self.recordings = r.Recordings(self._api)
        self.rooms = r.Rooms(self._api)

    @property
    def base_url(self) -> str:
        return self._api.base_url

    @property
    def api_key(self) -> str:
        return self._api.api_key

    def with_options(
        self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None
    ) -> Bctrl:
        """A client like this one, with another timeout or number of retries (it shares
        this one's connections)."""
        return Bctrl(
            api_key=self._api.api_key,
            base_url=self._api.base_url,
            timeout=self._api.timeout if timeout is None else timeout,
            max_retries=self._api.max_retries if max_retries is None else max_retries,
            default_headers=self._api.default_headers,
            http_client=self._api._http,
        )

    def url(self, path: str) -> str:
        """An absolute URL on the server (for the paths the API answers, `/v1/…`)."""
        return self._api.url(path)

    # Any other call of the server, with the same auth, retries and errors: JSON answers.

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, **o: Any) -> Any:
        return self._api.json("GET", path, params=params, **o)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **o: Any,
    ) -> Any:
        """POST `json`, or `content` as it is (with its `headers`): the answer's JSON."""
        return self._api.json("POST", path, json=json, content=content, headers=headers, **o)

    def put(self, path: str, *, json: Any = None, **o: Any) -> Any:
        return self._api.json("PUT", path, json=json, **o)

    def patch(self, path: str, *, json: Any = None, **o: Any) -> Any:
        return self._api.json("PATCH", path, json=json, **o)

    def delete(self, path: str, **o: Any) -> Any:
        return self._api.json("DELETE", path, **o)

    def recorder_script(self) -> str:
        """The in-page recorder (rrweb and bctrl's glue) that this server's runtimes run."""
        response = self._api.send(
            "GET", "/v1/recorder.js", headers={"Accept": "application/javascript"}
        )
        return response.text

    def record(self, page_or_context: Any, *, name: str = "", **options: Any) -> LocalRecording:
        """Records a Playwright page or browser context that you launched: a run of its
        own, with the rrweb recording, page events and a last screenshot, as a hosted
        runtime records. Use it as a context manager (`with client.record(page) as run:`);
        see bctrl._recorder.LocalRecording for its options."""
        from bctrl._recorder import LocalRecording

        return LocalRecording(self, page_or_context, name=name, **options)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Bctrl:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncBctrl:
    """The asynchronous client: the same calls as `Bctrl`, awaited."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api = AsyncAPI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            http_client=http_client,
        )
        self.runtimes = r.AsyncRuntimes(self)
        self.runs = r.AsyncRuns(self)
        self.spaces = r.AsyncSpaces(self._api)
        self.profiles = r.AsyncProfiles(self._api)
        self.leases = r.AsyncLeaseActions(self._api)
        self.recordings = r.AsyncRecordings(self._api)
        self.rooms = r.AsyncRooms(self._api)

    @property
    def base_url(self) -> str:
        return self._api.base_url

    @property
    def api_key(self) -> str:
        return self._api.api_key

    def with_options(
        self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None
    ) -> AsyncBctrl:
        return AsyncBctrl(
            api_key=self._api.api_key,
            base_url=self._api.base_url,
            timeout=self._api.timeout if timeout is None else timeout,
            max_retries=self._api.max_retries if max_retries is None else max_retries,
            default_headers=self._api.default_headers,
            http_client=self._api._http,
        )

    def url(self, path: str) -> str:
        return self._api.url(path)

    async def get(self, path: str, *, params: Mapping[str, Any] | None = None, **o: Any) -> Any:
        return await self._api.json("GET", path, params=params, **o)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **o: Any,
    ) -> Any:
        return await self._api.json("POST", path, json=json, content=content, headers=headers, **o)

    async def put(self, path: str, *, json: Any = None, **o: Any) -> Any:
        return await self._api.json("PUT", path, json=json, **o)

    async def patch(self, path: str, *, json: Any = None, **o: Any) -> Any:
        return await self._api.json("PATCH", path, json=json, **o)

    async def delete(self, path: str, **o: Any) -> Any:
        return await self._api.json("DELETE", path, **o)

    async def recorder_script(self) -> str:
        response = await self._api.send(
            "GET", "/v1/recorder.js", headers={"Accept": "application/javascript"}
        )
        return response.text

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> AsyncBctrl:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
