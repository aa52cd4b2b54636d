"""List answers, `{data, hasMore, nextCursor}`, and iteration that follows the cursors.

Iterating a page yields every item from it on, fetching the next pages as needed;
`page.data` is this page only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["AsyncOffsetPage", "AsyncPage", "OffsetPage", "Page"]


class Page(Generic[T]):
    def __init__(
        self,
        answer: dict[str, Any],
        item: Callable[[dict[str, Any]], T],
        fetch: Callable[[str], Page[T]],
    ) -> None:
        self.raw = answer
        self.data: list[T] = [item(row) for row in answer.get("data") or []]
        self.has_more: bool = bool(answer.get("hasMore"))
        self.next_cursor: str | None = answer.get("nextCursor")
        self._fetch = fetch

    def next_page(self) -> Page[T] | None:
        if not (self.has_more and self.next_cursor):
            return None
        return self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator[Page[T]]:
        page: Page[T] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Page(data={len(self.data)} items, has_more={self.has_more})"


class AsyncPage(Generic[T]):
    def __init__(
        self,
        answer: dict[str, Any],
        item: Callable[[dict[str, Any]], T],
        fetch: Callable[[str], Awaitable[AsyncPage[T]]],
    ) -> None:
        self.raw = answer
        self.data: list[T] = [item(row) for row in answer.get("data") or []]
        self.has_more: bool = bool(answer.get("hasMore"))
        self.next_cursor: str | None = answer.get("nextCursor")
        self._fetch = fetch

    async def next_page(self) -> AsyncPage[T] | None:
        if not (self.has_more and self.next_cursor):
            return None
        return await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        page: AsyncPage[T] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"AsyncPage(data={len(self.data)} items, has_more={self.has_more})"


class OffsetPage(Generic[T]):
    """A list answered as `{data, meta: {total, limit, offset}}` (seed 004); iterating it
    follows the offsets to the end."""

    def __init__(
        self,
        answer: dict[str, Any],
        item: Callable[[dict[str, Any]], T],
        fetch: Callable[[int], OffsetPage[T]],
    ) -> None:
        self.raw = answer
        meta = answer.get("meta") or {}
        self.data: list[T] = [item(row) for row in answer.get("data") or []]
        self.total: int = int(meta.get("total") or 0)
        self.limit: int = int(meta.get("limit") or len(self.data))
        self.offset: int = int(meta.get("offset") or 0)
        self._fetch = fetch

    def next_page(self) -> OffsetPage[T] | None:
        following = self.offset + len(self.data)
        if not self.data or following >= self.total:
            return None
        return self._fetch(following)

    def __iter__(self) -> Iterator[T]:
        page: OffsetPage[T] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    def __len__(self) -> int:
        return len(self.data)


class AsyncOffsetPage(Generic[T]):
    def __init__(
        self,
        answer: dict[str, Any],
        item: Callable[[dict[str, Any]], T],
        fetch: Callable[[int], Awaitable[AsyncOffsetPage[T]]],
    ) -> None:
        self.raw = answer
        meta = answer.get("meta") or {}
        self.data: list[T] = [item(row) for row in answer.get("data") or []]
        self.total: int = int(meta.get("total") or 0)
        self.limit: int = int(meta.get("limit") or len(self.data))
        self.offset: int = int(meta.get("offset") or 0)
        self._fetch = fetch

    async def next_page(self) -> AsyncOffsetPage[T] | None:
        following = self.offset + len(self.data)
        if not self.data or following >= self.total:
            return None
        return await self._fetch(following)

    async def __aiter__(self) -> AsyncIterator[T]:
        page: AsyncOffsetPage[T] | None = self
        while page is not None:
            for item in page.data:
                yield item
            page = await page.next_page()

    def __len__(self) -> int:
        return len(self.data)
