"""`client.record(page_or_context)`: records a Playwright browser that the user launched.

    with client.record(page, name="checkout") as run:
        page.goto("https://shop.example/")
        ...
    print(run.id)

What a hosted runtime records, from the user's own machine: the rrweb capture of each page
(the server's own recorder script, fetched from `/v1/recorder.js`, so the versions match;
inputs masked), the page events (`target.created`, `navigation`, `console.message`,
`page.error`, `target.destroyed`) and a last screenshot, in a run of its own.

A background thread sends what the pages produce in batches. While the server cannot be
reached (restarting, a network blip) nothing is lost: batches wait in a bounded local buffer
and are sent again with the same seqs (both ingests keep a repeated batch once). When the
buffer is full, new batches are dropped, with a warning, and counted (`dropped_events`).
"""

from __future__ import annotations

import collections
import inspect
import json
import logging
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bctrl._errors import APIConnectionError, APIStatusError, ConflictError

if TYPE_CHECKING:
    from bctrl._client import Bctrl
    from bctrl._resources import Run

logger = logging.getLogger("bctrl.recorder")

BINDING = "__bctrlRecord"
END_SCRIPT = "globalThis.__bctrl ? (globalThis.__bctrl.end(), true) : false"
MAX_EVENTS_PER_POST = 500
RETRY_MAX_S = 5.0


@dataclass
class Pending:
    """One POST waiting to be sent: an rrweb batch of a target, or page events."""

    kind: str  # "rrweb" or "events"
    events: list[dict[str, Any]]
    target: str = ""
    seq: int = 0


@dataclass
class RecorderStats:
    sent_batches: int = 0
    sent_events: int = 0
    rrweb_events: int = 0
    dropped_events: int = 0
    rejected_events: int = 0
    retries: int = 0
    targets: dict[str, int] = field(default_factory=dict)  # target → last rrweb seq


class LocalRecording:
    """The context manager that `Bctrl.record` returns; entering it answers the run."""

    def __init__(
        self,
        client: Bctrl,
        page_or_context: Any,
        *,
        name: str = "",
        labels: dict[str, Any] | None = None,
        max_buffered_events: int = 100_000,
        screenshot: bool = True,
        drain_timeout: float = 120.0,
    ) -> None:
        self._client = client
        # The sender controls its own retries: a failed batch stays at the head of the queue.
        self._sender_client = client.with_options(max_retries=0, timeout=30.0)
        self._target = page_or_context
        self._context: Any = None
        self.name = name
        self.labels = labels or {}
        self.max_buffered_events = max_buffered_events
        self.screenshot = screenshot
        self.drain_timeout = drain_timeout
        self.stats = RecorderStats()
        self.run: Run | None = None
        self._queue: collections.deque[Pending] = collections.deque()
        self._buffered = 0
        self._lock = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._targets: dict[int, str] = {}  # id(page) → its target id
        self._next_seq: dict[str, int] = {}
        self._event_seq = 1
        self._pending_events: list[dict[str, Any]] = []
        self._warned_unreachable = False
        self._last_page: Any = None

    # The counts a caller may want -------------------------------------------------------------

    @property
    def dropped_events(self) -> int:
        return self.stats.dropped_events

    # Entering and leaving ---------------------------------------------------------------------

    def __enter__(self) -> Run:
        context = getattr(self._target, "context", None)  # a Page's; a context has none
        self._context = context if context is not None else self._target
        if not hasattr(self._context, "add_init_script"):
            raise TypeError("client.record() takes a Playwright Page or BrowserContext.")
        if inspect.iscoroutinefunction(self._context.add_init_script):
            raise TypeError("client.record() takes a page or context of Playwright's sync API.")
        script = self._client.recorder_script()
        self.run = self._client.runs.create(
            name=self.name or "Local recording",
            labels={"recorder": "local", **self.labels},
        )
        usage = self.run.usage
        self._event_seq = (usage.event_count if usage else 0) + 1
        self._context.expose_binding(BINDING, self._on_batch)
        self._context.add_init_script(script=script)
        self._context.on("page", self._watch)
        for page in list(self._context.pages):
            self._watch(page)
            try:
                page.evaluate(script)
            except Exception as exc:  # a page that is closing: it has nothing left to record
                logger.debug("Recorder not injected into %s: %s", page, exc)
        self._thread = threading.Thread(target=self._send_loop, name="bctrl-recorder", daemon=True)
        self._thread.start()
        return self.run

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self.run is not None
        for page in list(getattr(self._context, "pages", [])):
            try:
                page.evaluate(END_SCRIPT)  # a last event, and the page's buffer flushed
                page.evaluate("0")  # the binding's calls arrive before this answer
            except Exception as exc:
                logger.debug("Could not end the recorder of %s: %s", page, exc)
        shot: bytes | None = None
        page = self._last_page if self._last_page is not None else None
        if self.screenshot and page is not None and not page.is_closed():
            try:
                shot = page.screenshot()
            except Exception as exc:
                logger.warning("The last screenshot failed: %s", exc)
        self._flush_events()
        drained = self._drain()
        if shot is not None and drained:
            try:
                self._client.runs.artifacts.upload(
                    self.run.id,
                    shot,
                    kind="screenshot",
                    name="last-page.png",
                    content_type="image/png",
                )
            except (APIConnectionError, APIStatusError) as exc:
                logger.warning("The last screenshot was not stored: %s", exc)
        if self.stats.dropped_events:
            warnings.warn(
                f"bctrl: {self.stats.dropped_events} recorded events of run {self.run.id} "
                "were dropped (the server was unreachable and the local buffer was full).",
                RuntimeWarning,
                stacklevel=2,
            )
        failed = kind is not None and not issubclass(kind, KeyboardInterrupt)
        try:
            self.run = self._client.runs.stop(
                self.run.id,
                status="failed" if failed else "completed",
                error={"message": f"{kind.__name__}: {error}"} if failed and kind else None,
            )
        except (APIConnectionError, APIStatusError) as exc:
            logger.warning("Run %s could not be stopped: %s", self.run.id, exc)

    # What the browser gives -------------------------------------------------------------------

    def _target_id(self, page: Any) -> str:
        key = id(page)
        known = self._targets.get(key)
        if known is None:
            try:
                session = self._context.new_cdp_session(page)
                known = str(session.send("Target.getTargetInfo")["targetInfo"]["targetId"])
                session.detach()
            except Exception:  # not Chromium: an id of our own
                known = uuid.uuid4().hex.upper()
            self._targets[key] = known
        return known

    def _watch(self, page: Any) -> None:
        target = self._target_id(page)
        self._last_page = page
        self._event("target.created", {"targetId": target, "type": "page", "url": page.url}, page)

        def navigated(frame: Any) -> None:
            if frame == page.main_frame:
                self._last_page = page
                self._event("navigation", {"url": frame.url, "frameId": ""}, page)

        def console(message: Any) -> None:
            level = {"warning": "warn"}.get(message.type, message.type)
            self._event("console.message", {"level": level, "text": message.text[:2000]}, page)

        def page_error(exc: Any) -> None:
            text = str(getattr(exc, "message", "") or exc)
            data: dict[str, Any] = {"message": text.split("\n", 1)[0][:2000]}
            stack = getattr(exc, "stack", None)
            if stack:
                data["stack"] = str(stack)[:2000]
            self._event("page.error", data, page)

        def closed(_: Any) -> None:
            self._event("target.destroyed", {"targetId": target, "type": "page"}, page)
            if self._last_page is page:
                self._last_page = next(
                    (p for p in reversed(self._context.pages) if not p.is_closed()), None
                )

        page.on("framenavigated", navigated)
        page.on("console", console)
        page.on("pageerror", page_error)
        page.on("close", closed)

    def _on_batch(self, source: dict[str, Any], payload: str) -> None:
        page, frame = source.get("page"), source.get("frame")
        if page is None or (frame is not None and frame != page.main_frame):
            return  # a cross-origin frame's recorder: the page's own records it
        try:
            events = json.loads(payload)
        except ValueError:
            return
        if not isinstance(events, list) or not events:
            return
        target = self._target_id(page)
        self._flush_events()  # page events before the rrweb batch that follows them
        with self._lock:
            if not self._fits(len(events)):
                return
            seq = self._next_seq.get(target, 0) + 1
            self._next_seq[target] = seq
            self._queue.append(Pending("rrweb", events, target=target, seq=seq))
            self._buffered += len(events)
            self._lock.notify()

    def _event(self, type: str, data: dict[str, Any], page: Any) -> None:
        event = {
            "type": type,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "pageId": self._target_id(page),
            "data": data,
        }
        with self._lock:
            self._pending_events.append(event)
            if len(self._pending_events) >= MAX_EVENTS_PER_POST:
                self._queue_events()

    def _flush_events(self) -> None:
        with self._lock:
            self._queue_events()

    def _queue_events(self) -> None:
        """Moves the page events gathered so far to the queue (the lock is held)."""
        if not self._pending_events:
            return
        events, self._pending_events = self._pending_events, []
        if not self._fits(len(events)):
            return
        self._queue.append(Pending("events", events))
        self._buffered += len(events)
        self._lock.notify()

    def _fits(self, count: int) -> bool:
        """Whether `count` more events fit in the buffer; if not, they are dropped."""
        if self._buffered + count <= self.max_buffered_events:
            return True
        if not self.stats.dropped_events:
            warnings.warn(
                f"bctrl: the local recording buffer is full ({self._buffered} events waiting "
                "for the server); new events are dropped until it drains.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.stats.dropped_events += count
        return False

    # Sending ----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                if not self._queue and not self._pending_events:
                    if self._closing:
                        return
                    self._lock.wait(0.25)
                if not self._queue:
                    self._queue_events()
                if not self._queue:
                    continue
                item = self._queue[0]
            try:
                self._send(item)
            except (APIConnectionError, APIStatusError) as exc:
                if _transient(exc):
                    failures += 1
                    self.stats.retries += 1
                    if not self._warned_unreachable:
                        logger.warning(
                            "bctrl server unreachable (%s); keeping %d events to send again",
                            exc,
                            self._buffered,
                        )
                        self._warned_unreachable = True
                    time.sleep(min(0.25 * 2 ** min(failures, 5), RETRY_MAX_S))
                    continue
                logger.warning("The server refused a recorded batch: %s", exc)
                self.stats.rejected_events += len(item.events)
            else:
                if failures:
                    logger.info("bctrl server reachable again; sending what was kept")
                failures = 0
                self._warned_unreachable = False
                self.stats.sent_batches += 1
                self.stats.sent_events += len(item.events)
                if item.kind == "rrweb":
                    self.stats.rrweb_events += len(item.events)
                    self.stats.targets[item.target] = item.seq
            with self._lock:
                self._queue.popleft()
                self._buffered -= len(item.events)
                self._lock.notify_all()

    def _send(self, item: Pending) -> None:
        assert self.run is not None
        runs = self._sender_client.runs
        if item.kind == "rrweb":
            runs.recording_events.ingest(
                self.run.id, target=item.target, seq=item.seq, events=item.events
            )
            return
        if "seq" not in item.events[0]:
            for offset, event in enumerate(item.events):
                event["seq"] = self._event_seq + offset
        try:
            answer = runs.events.append(self.run.id, item.events)
        except ConflictError as exc:
            # The server numbered events of its own meanwhile: continue after them.
            expected = (exc.details or {}).get("expectedSeq") if exc.code else None
            if not isinstance(expected, int):
                latest = runs.events.list(self.run.id, after=self._event_seq - 1, limit=1000)
                expected = max([e.seq for e in latest] or [self._event_seq - 1]) + 1
            for offset, event in enumerate(item.events):
                event["seq"] = expected + offset
            answer = runs.events.append(self.run.id, item.events)
        self._event_seq = answer.next_seq

    def _drain(self) -> bool:
        """Waits until everything was sent (or `drain_timeout`); True when it was."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(self.drain_timeout)
            if self._thread.is_alive():
                with self._lock:
                    left = self._buffered
                warnings.warn(
                    f"bctrl: {left} recorded events were not sent within "
                    f"{self.drain_timeout:g} s (is the server reachable?).",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.stats.dropped_events += left
                return False
        return True


def _transient(exc: BaseException) -> bool:
    """Worth sending again: no answer, or an answer that says "later"."""
    if isinstance(exc, APIConnectionError):
        return True
    status = getattr(exc, "status_code", 0)
    return status in (408, 429) or status >= 500
