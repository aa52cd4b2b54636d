"""Viewer links of a run (its leases): listed per run, revoked one by one. The links
themselves are asked of the run (`client.runs.live`, `client.runs.recording`).

client.runs.leases.list/iter          client.leases.revoke
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI
from bctrl._models import Lease
from bctrl._pagination import AsyncPage, Page


class Leases:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Page[Lease]:
        """A run's viewer links (never their tokens)."""
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", f"/v1/runs/{run_id}/leases", params=params, **o)
        return Page(
            answer, Lease.from_json, lambda next_: self.list(run_id, limit=limit, cursor=next_, **o)
        )

    def iter(self, run_id: str, **filters: Any) -> Iterator[Lease]:
        return iter(self.list(run_id, **filters))


class AsyncLeases:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def list(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **o: Unpack[CallOptions],
    ) -> AsyncPage[Lease]:
        """A run's viewer links (never their tokens)."""
        params = {"limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/leases", params=params, **o)
        return AsyncPage(
            answer, Lease.from_json, lambda next_: self.list(run_id, limit=limit, cursor=next_, **o)
        )

    async def iter(self, run_id: str, **filters: Any) -> AsyncIterator[Lease]:
        page = await self.list(run_id, **filters)
        async for item in page:
            yield item


class LeaseActions:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def revoke(self, lease_id: str, **o: Unpack[CallOptions]) -> Lease:
        """Ends the lease and closes every viewer open on it."""
        path = f"/v1/leases/{lease_id}/revoke"
        return Lease.from_json(self._api.json("POST", path, idempotent=True, **o))


class AsyncLeaseActions:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def revoke(self, lease_id: str, **o: Unpack[CallOptions]) -> Lease:
        """Ends the lease and closes every viewer open on it."""
        path = f"/v1/leases/{lease_id}/revoke"
        return Lease.from_json(await self._api.json("POST", path, idempotent=True, **o))
