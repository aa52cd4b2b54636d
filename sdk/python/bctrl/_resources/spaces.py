"""What a space keeps besides its runs: its settings (which sites may embed its viewer
links), its upstream Browser Run account, and its browser profiles.

client.spaces.retrieve/update, client.spaces.upstream.retrieve/set/delete
client.profiles.create/retrieve/list/delete
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI
from bctrl._models import Profile, Space, Upstream
from bctrl._pagination import AsyncPage, Page


def upstream_body(base_url: str, account_id: str, api_token: str | None) -> dict[str, Any]:
    body = {"baseUrl": base_url, "accountId": account_id}
    if api_token is not None:
        body["apiToken"] = api_token
    return body


# Spaces --------------------------------------------------------------------------------------


class SpaceUpstream:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("GET", path, **o))

    def set(
        self,
        space_id: str,
        *,
        base_url: str,
        account_id: str,
        api_token: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Upstream:
        body = upstream_body(base_url, account_id, api_token)
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("PUT", path, json=body, **o))

    def delete(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(self._api.json("DELETE", path, **o))


class AsyncSpaceUpstream:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(await self._api.json("GET", path, **o))

    async def set(
        self,
        space_id: str,
        *,
        base_url: str,
        account_id: str,
        api_token: str | None = None,
        **o: Unpack[CallOptions],
    ) -> Upstream:
        body = upstream_body(base_url, account_id, api_token)
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(await self._api.json("PUT", path, json=body, **o))

    async def delete(self, space_id: str, **o: Unpack[CallOptions]) -> Upstream:
        path = f"/v1/spaces/{space_id}/upstream"
        return Upstream.from_json(await self._api.json("DELETE", path, **o))


class Spaces:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api
        self.upstream = SpaceUpstream(api)

    def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Space:
        return Space.from_json(self._api.json("GET", f"/v1/spaces/{space_id}", **o))

    def update(
        self, space_id: str, *, embed_origins: Sequence[str], **o: Unpack[CallOptions]
    ) -> Space:
        """Which sites may embed the space's viewer links: ["*"], [] or origins."""
        body = {"embedOrigins": list(embed_origins)}
        path = f"/v1/spaces/{space_id}"
        return Space.from_json(self._api.json("PATCH", path, json=body, idempotent=True, **o))


class AsyncSpaces:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api
        self.upstream = AsyncSpaceUpstream(api)

    async def retrieve(self, space_id: str, **o: Unpack[CallOptions]) -> Space:
        return Space.from_json(await self._api.json("GET", f"/v1/spaces/{space_id}", **o))

    async def update(
        self, space_id: str, *, embed_origins: Sequence[str], **o: Unpack[CallOptions]
    ) -> Space:
        """Which sites may embed the space's viewer links: ["*"], [] or origins."""
        body = {"embedOrigins": list(embed_origins)}
        path = f"/v1/spaces/{space_id}"
        return Space.from_json(await self._api.json("PATCH", path, json=body, idempotent=True, **o))


# Profiles ------------------------------------------------------------------------------------


class Profiles:
    """Browser profiles of the key's space: cookies and local storage that a start loads
    (`profile_id=`) and, with `persist=True`, saves back when its run stops."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(self, *, name: str, **o: Unpack[CallOptions]) -> Profile:
        answer = self._api.json("POST", "/v1/profiles", json={"name": name}, **o)
        return Profile.from_json(answer)

    def retrieve(self, profile_id: str, **o: Unpack[CallOptions]) -> Profile:
        return Profile.from_json(self._api.json("GET", f"/v1/profiles/{profile_id}", **o))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, **o: Unpack[CallOptions]
    ) -> Page[Profile]:
        params = {"limit": limit, "cursor": cursor}
        answer = self._api.json("GET", "/v1/profiles", params=params, **o)
        return Page(
            answer, Profile.from_json, lambda next_: self.list(limit=limit, cursor=next_, **o)
        )

    def delete(self, profile_id: str, **o: Unpack[CallOptions]) -> None:
        """Deletes it (409 profile.in_use while a running run will save into it)."""
        self._api.send("DELETE", f"/v1/profiles/{profile_id}", **o)


class AsyncProfiles:
    """Browser profiles of the key's space: cookies and local storage that a start loads
    (`profile_id=`) and, with `persist=True`, saves back when its run stops."""

    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def create(self, *, name: str, **o: Unpack[CallOptions]) -> Profile:
        answer = await self._api.json("POST", "/v1/profiles", json={"name": name}, **o)
        return Profile.from_json(answer)

    async def retrieve(self, profile_id: str, **o: Unpack[CallOptions]) -> Profile:
        return Profile.from_json(await self._api.json("GET", f"/v1/profiles/{profile_id}", **o))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None, **o: Unpack[CallOptions]
    ) -> AsyncPage[Profile]:
        params = {"limit": limit, "cursor": cursor}
        answer = await self._api.json("GET", "/v1/profiles", params=params, **o)
        return AsyncPage(
            answer, Profile.from_json, lambda next_: self.list(limit=limit, cursor=next_, **o)
        )

    async def delete(self, profile_id: str, **o: Unpack[CallOptions]) -> None:
        """Deletes it (409 profile.in_use while a running run will save into it)."""
        await self._api.send("DELETE", f"/v1/profiles/{profile_id}", **o)
