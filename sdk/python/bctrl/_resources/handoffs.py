"""Handoffs of a run: ask a person to do a step (`create`), then wait for them.

client.runs.handoffs.create/retrieve/wait/list/complete/cancel
"""

from __future__ import annotations

import time
from typing import Any, Unpack

from bctrl._base import AsyncAPI, CallOptions, SyncAPI, long_poll_timeout
from bctrl._models import Handoff
from bctrl._pagination import AsyncPage, Page

# The longest a single `GET …/handoff/{id}?waitMs=` waits on the server; `wait` repeats it.
HANDOFF_WAIT_MAX_MS = 60_000


def handoff_body(instructions: str, timeout_ms: int | None, notify: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"instructions": instructions}
    if timeout_ms is not None:
        body["timeoutMs"] = timeout_ms
    if notify is not None:
        body["notify"] = notify
    return body


def retrieve_options(wait_ms: int | None, options: CallOptions) -> CallOptions:
    """A retrieve's call options: one the server holds for `wait_ms` waits that long."""
    if wait_ms is not None:
        options.setdefault("timeout", long_poll_timeout(wait_ms / 1000))
    return options


class HandoffWait:
    """How `wait` splits a wait of `timeout` seconds into waits the server holds (each up
    to HANDOFF_WAIT_MAX_MS), until the handoff is no longer open or the time is up."""

    def __init__(self, timeout: float) -> None:
        self._deadline = time.monotonic() + timeout
        self._left_ms = 0

    def next_wait_ms(self) -> int:
        self._left_ms = int((self._deadline - time.monotonic()) * 1000)
        return max(0, min(self._left_ms, HANDOFF_WAIT_MAX_MS))

    def over(self, handoff: Handoff) -> bool:
        return not handoff.is_open or self._left_ms <= HANDOFF_WAIT_MAX_MS


class Handoffs:
    """Handoffs of a run: ask a person to do a step (`create`), then wait for them."""

    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(
        self,
        run_id: str,
        *,
        instructions: str,
        timeout_ms: int | None = None,
        notify: bool | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """Opens a handoff on a running run (409 handoff.open when one is open, 409
        run.ended once the run ended); its `live_url` is for the person."""
        body = handoff_body(instructions, timeout_ms, notify)
        path = f"/v1/runs/{run_id}/handoff"
        return Handoff.from_json(self._api.json("POST", path, json=body, **o))

    def retrieve(
        self,
        run_id: str,
        handoff_id: str,
        *,
        wait_ms: int | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """The handoff; with `wait_ms` (up to 60,000) the server answers once it is no
        longer open, or when that time has passed (still open)."""
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}"
        options = retrieve_options(wait_ms, o)
        return Handoff.from_json(self._api.json("GET", path, params={"waitMs": wait_ms}, **options))

    def wait(self, run_id: str, handoff_id: str, *, timeout: float = 300.0) -> Handoff:
        """The handoff once it is no longer open, or still open after `timeout` seconds."""
        waiting = HandoffWait(timeout)
        while True:
            handoff = self.retrieve(run_id, handoff_id, wait_ms=waiting.next_wait_ms())
            if waiting.over(handoff):
                return handoff

    def list(self, run_id: str, **o: Unpack[CallOptions]) -> Page[Handoff]:
        """The run's handoffs, newest first."""
        answer = self._api.json("GET", f"/v1/runs/{run_id}/handoffs", **o)
        return Page(answer, Handoff.from_json, lambda next_: self.list(run_id, **o))

    def complete(
        self, run_id: str, handoff_id: str, *, note: str | None = None, **o: Unpack[CallOptions]
    ) -> Handoff:
        """Marks the step done (`completed_by` is the key's name); 409 handoff.ended if
        it is no longer open."""
        body = {} if note is None else {"note": note}
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/complete"
        return Handoff.from_json(self._api.json("POST", path, json=body, **o))

    def cancel(self, run_id: str, handoff_id: str, **o: Unpack[CallOptions]) -> Handoff:
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/cancel"
        return Handoff.from_json(self._api.json("POST", path, **o))


class AsyncHandoffs:
    """Handoffs of a run: ask a person to do a step (`create`), then wait for them."""

    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def create(
        self,
        run_id: str,
        *,
        instructions: str,
        timeout_ms: int | None = None,
        notify: bool | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """Opens a handoff on a running run (409 handoff.open when one is open, 409
        run.ended once the run ended); its `live_url` is for the person."""
        body = handoff_body(instructions, timeout_ms, notify)
        path = f"/v1/runs/{run_id}/handoff"
        return Handoff.from_json(await self._api.json("POST", path, json=body, **o))

    async def retrieve(
        self,
        run_id: str,
        handoff_id: str,
        *,
        wait_ms: int | None = None,
        **o: Unpack[CallOptions],
    ) -> Handoff:
        """The handoff; with `wait_ms` (up to 60,000) the server answers once it is no
        longer open, or when that time has passed (still open)."""
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}"
        options = retrieve_options(wait_ms, o)
        answer = await self._api.json("GET", path, params={"waitMs": wait_ms}, **options)
        return Handoff.from_json(answer)

    async def wait(self, run_id: str, handoff_id: str, *, timeout: float = 300.0) -> Handoff:
        """The handoff once it is no longer open, or still open after `timeout` seconds."""
        waiting = HandoffWait(timeout)
        while True:
            handoff = await self.retrieve(run_id, handoff_id, wait_ms=waiting.next_wait_ms())
            if waiting.over(handoff):
                return handoff

    async def list(self, run_id: str, **o: Unpack[CallOptions]) -> AsyncPage[Handoff]:
        """The run's handoffs, newest first."""
        answer = await self._api.json("GET", f"/v1/runs/{run_id}/handoffs", **o)
        return AsyncPage(answer, Handoff.from_json, lambda next_: self.list(run_id, **o))

    async def complete(
        self, run_id: str, handoff_id: str, *, note: str | None = None, **o: Unpack[CallOptions]
    ) -> Handoff:
        """Marks the step done (`completed_by` is the key's name); 409 handoff.ended if
        it is no longer open."""
        body = {} if note is None else {"note": note}
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/complete"
        return Handoff.from_json(await self._api.json("POST", path, json=body, **o))

    async def cancel(self, run_id: str, handoff_id: str, **o: Unpack[CallOptions]) -> Handoff:
        path = f"/v1/runs/{run_id}/handoff/{handoff_id}/cancel"
        return Handoff.from_json(await self._api.json("POST", path, **o))
