"""Buffers a run's events and rrweb batches and writes them off the event loop."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from runs.api.errors import ApiError, Conflict
from runs.models import Run

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
MAX_BATCH_EVENTS = 500
MAX_RUN_EVENTS = 500


@dataclass
class TargetBuffer:
    events: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 1


class RunWriter:
    """One per runtime. Writes are sequential (events keep their order) and run in a
    worker thread, so a slow database never stalls the CDP connection."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._events: list[dict[str, Any]] = []
        self._targets: dict[str, TargetBuffer] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.closed = False
        self.batches_written = 0
        self.events_written = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def event(
        self, type: str, data: dict[str, Any], page_id: str = "", time: datetime | None = None
    ) -> None:
        """Queues an event, timed now or at `time` (when it happened, if that was earlier
        than the host could say what it was)."""
        if self.closed:
            return
        self._events.append(
            {"type": type, "data": data, "page_id": page_id, "time": time or timezone.now()}
        )
        if len(self._events) >= MAX_RUN_EVENTS:
            self._wake.set()

    def rrweb(self, target: str, events: list[dict[str, Any]]) -> None:
        if self.closed or not events:
            return
        buffer = self._targets.setdefault(target, TargetBuffer())
        buffer.events.extend(events)
        if len(buffer.events) >= MAX_BATCH_EVENTS or any(e.get("type") == 2 for e in events):
            self._wake.set()

    async def _loop(self) -> None:
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("Writing run %s failed", self.run.id)

    async def flush(self) -> None:
        """Writes everything buffered so far."""
        async with self._lock:
            batches: list[tuple[str, int, list[dict[str, Any]]]] = []
            for target, buffer in self._targets.items():
                while buffer.events:
                    chunk = buffer.events[:MAX_BATCH_EVENTS]
                    buffer.events = buffer.events[MAX_BATCH_EVENTS:]
                    batches.append((target, buffer.next_seq, chunk))
                    buffer.next_seq += 1
            events, self._events = self._events, []
            if batches or events:
                await sync_to_async(self._write, thread_sensitive=False)(batches, events)

    def _write(
        self, batches: list[tuple[str, int, list[dict[str, Any]]]], events: list[dict[str, Any]]
    ) -> None:
        from recordings.services import batch_ingest
        from runs.services import events_append

        close_old_connections()
        for target, seq, chunk in batches:
            try:
                batch_ingest(run=self.run, target=target, seq=seq, events=chunk)
                self.batches_written += 1
            except ApiError as exc:  # refused (run ended, limits): said once, not a crash
                logger.warning("Batch %s/%s of run %s refused: %s", target, seq, self.run.id, exc)
            except Exception:
                logger.exception("Batch %s/%s of run %s failed", target, seq, self.run.id)
        for start in range(0, len(events), MAX_RUN_EVENTS):
            try:
                events_append(run=self.run, events=events[start : start + MAX_RUN_EVENTS])
                self.events_written += len(events[start : start + MAX_RUN_EVENTS])
            except Conflict as exc:
                logger.info("Events of run %s refused: %s", self.run.id, exc)
                break

    async def close(self) -> None:
        """Writes what is left and stops."""
        await self.flush()
        self.closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
