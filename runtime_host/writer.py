"""Buffers a run's events, rrweb batches and video frames and writes them off the event loop.

Frames (runtime_host/video.py) go out per target in batches of about FRAMES_BATCH_BYTES
or FRAMES_BATCH_S seconds, whichever comes first, and all of them when the writer closes.
At most MAX_PENDING_FRAME_BYTES wait on the host: a recording that cannot keep up (a slow
storage) loses frames, never the host's memory; the video then holds the picture before.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from recordings.rrweb import EventType
from recordings.services import batch_ingest
from recordings.video import frames_ingest
from runs.errors import ApiError, Conflict
from runs.models import Run
from runs.services import events_append

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
MAX_BATCH_EVENTS = 500
MAX_RUN_EVENTS = 500
FRAMES_BATCH_BYTES = 1024 * 1024
FRAMES_BATCH_S = 5.0
MAX_PENDING_FRAME_BYTES = 32 * 1024 * 1024


@dataclass
class TargetBuffer:
    events: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 1


@dataclass
class FrameBuffer:
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0
    since: float = 0.0  # when its oldest frame came (monotonic)
    next_seq: int = 1


class RunWriter:
    """One per runtime. Writes are sequential (events keep their order) and run in a
    worker thread, so a slow database never stalls the CDP connection."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._events: list[dict[str, Any]] = []
        self._targets: dict[str, TargetBuffer] = {}
        self._frames: dict[str, FrameBuffer] = {}
        self.frame_bytes_pending = 0
        self.frames_dropped = 0
        self.frame_batches_written = 0
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
        if len(buffer.events) >= MAX_BATCH_EVENTS or any(
            e.get("type") == EventType.FullSnapshot for e in events
        ):
            self._wake.set()

    def frame(self, target: str, time_ms: int, jpeg: bytes) -> None:
        """Queues a video frame of a page target, shown at `time_ms` (epoch ms)."""
        if self.closed:
            return
        if self.frame_bytes_pending + len(jpeg) > MAX_PENDING_FRAME_BYTES:
            if not self.frames_dropped:
                logger.warning("Video frames of run %s are dropped: writes lag", self.run.id)
            self.frames_dropped += 1
            return
        buffer = self._frames.setdefault(target, FrameBuffer())
        if not buffer.frames:
            buffer.since = time.monotonic()
        buffer.frames.append((time_ms, jpeg))
        buffer.size += len(jpeg)
        self.frame_bytes_pending += len(jpeg)

    def _due_frames(self, everything: bool) -> list[tuple[str, int, list[tuple[int, bytes]], int]]:
        due = []
        now = time.monotonic()
        for target, buffer in self._frames.items():
            ripe = buffer.size >= FRAMES_BATCH_BYTES or now - buffer.since >= FRAMES_BATCH_S
            if buffer.frames and (everything or ripe):
                due.append((target, buffer.next_seq, buffer.frames, buffer.size))
                buffer.next_seq += 1
                buffer.frames, buffer.size = [], 0
        return due

    async def _loop(self) -> None:
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("Writing run %s failed", self.run.id)

    async def flush(self, all_frames: bool = False) -> None:
        """Writes everything buffered so far (the video frames once a batch is due, or
        all of them with `all_frames`)."""
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
            frames = self._due_frames(all_frames)
            if frames:
                try:
                    await sync_to_async(self._write_frames, thread_sensitive=False)(frames)
                finally:
                    self.frame_bytes_pending -= sum(size for *_, size in frames)

    def _write(
        self, batches: list[tuple[str, int, list[dict[str, Any]]]], events: list[dict[str, Any]]
    ) -> None:
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

    def _write_frames(self, batches: list[tuple[str, int, list[tuple[int, bytes]], int]]) -> None:
        close_old_connections()
        for target, seq, frames, _ in batches:
            try:
                frames_ingest(run=self.run, target=target, seq=seq, frames=frames)
                self.frame_batches_written += 1
            except ApiError as exc:  # refused (the recording stopped): said, not a crash
                logger.info("Frames %s/%s of run %s refused: %s", target, seq, self.run.id, exc)
            except Exception:
                logger.exception("Frames %s/%s of run %s failed", target, seq, self.run.id)

    async def close(self) -> None:
        """Writes what is left and stops."""
        await self.flush(all_frames=True)
        self.closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
