"""Change notices for a run over the channel layer, so streams wake at once.

Streams still poll the database on a slow timer: a notice is a hint to look now,
the database stays the source of truth, and a lost notice costs one poll interval.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


# Kinds sent often enough to be thinned out: at most one notice per run per interval
# (seconds) and process. A recorder sends a batch every 250 ms per page; listeners poll
# anyway, so a notice dropped here is seen at the next one or the next poll.
THROTTLED_KINDS: dict[str, float] = {"recording.batch": 0.25}
_last_sent: dict[tuple[str, str], float] = {}
_last_sent_lock = threading.Lock()
_LAST_SENT_MAX = 10_000


def notify_run_changed(run_id: str, kind: str, **detail: Any) -> None:
    """Tells every open stream of the run that something changed, once the write commits."""
    interval = THROTTLED_KINDS.get(kind)
    message = {"type": "run.changed", "kind": kind, **detail}
    _publish_on_commit(
        run_group(run_id),
        message,
        due=(lambda: _due(run_id, kind, interval)) if interval is not None else None,
    )


def host_group_of(host_id: str) -> str:
    return f"runtime-host.{host_id}"


def notify_host(host_id: str) -> None:
    """Tells a runtime host, once the write commits, that a start was placed on it or a
    stop asked of one of its runtimes: it acts now rather than at its next poll of the
    database (runtimes.hostlink.HostStartsConsumer)."""
    _publish_on_commit(host_group_of(host_id), {"type": "host.wake"})


def _publish_on_commit(
    group: str, message: dict[str, Any], due: Callable[[], bool] | None = None
) -> None:
    """Sends `message` to the channel-layer group once the current write commits; a
    notice that cannot go out is logged, never raised (the listeners poll as well)."""

    def deliver() -> None:
        if due is not None and not due():
            return
        layer = get_channel_layer()
        if layer is None:
            return
        loop = _server_loop()
        if loop is not None:
            # A sync caller on a thread of an event loop's (a view under ASGI, an ingest
            # thread): hand the publish to that loop and go on, rather than block on it.
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
            future.add_done_callback(_log_failure)
            return
        publish = async_to_sync(layer.group_send)
        if _loop_running_here():
            # A sync caller on a thread that runs an event loop (Playwright's sync API
            # does this) cannot block on the loop; publish from a thread of its own.
            thread = threading.Thread(target=publish, args=(group, message))
            thread.start()
            thread.join(5)
        else:
            publish(group, message)

    def send() -> None:
        try:
            deliver()
        except Exception as exc:
            # The write is committed: a notice that cannot go out (Redis down) is only
            # logged, and streams see the change at their next poll.
            logger.warning("Could not publish a run change notice: %r", exc)

    transaction.on_commit(send)


def _due(run_id: str, kind: str, interval: float) -> bool:
    """True (and noted) when no notice of this kind went out for the run in `interval`."""
    now = time.monotonic()
    key = (run_id, kind)
    with _last_sent_lock:
        last = _last_sent.get(key)
        if last is not None and now - last < interval:
            return False
        if len(_last_sent) >= _LAST_SENT_MAX:
            horizon = now - max(THROTTLED_KINDS.values())
            for stale in [k for k, at in _last_sent.items() if at < horizon]:
                del _last_sent[stale]
        _last_sent[key] = now
    return True


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop that this sync thread works for (asgiref's sync_to_async
    notes it per thread), if any and if it is not this thread's own."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != (
        os.getpid()
    ):
        return None
    if loop.is_closed() or not loop.is_running() or _loop_running_here():
        return None
    return loop


def _log_failure(future: "concurrent.futures.Future[Any]") -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("Could not publish a run change notice: %r", future.exception())


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.asynccontextmanager
async def run_change_listener(run_id: str) -> AsyncIterator["RunChangeListener"]:
    """Change notices of the run; without them (the channel layer's Redis is down) the
    listener only waits, and its stream sees changes at each database poll."""
    layer = get_channel_layer()
    listener = RunChangeListener(None, "")
    if layer is not None:
        try:
            channel = await layer.new_channel()
            await layer.group_add(run_group(run_id), channel)
            listener = RunChangeListener(layer, channel)
        except Exception as exc:
            logger.warning("Run %s: no change notices, polling only: %r", run_id, exc)
    try:
        yield listener
    finally:
        listener.close()
        if listener.layer is not None:
            with contextlib.suppress(Exception):
                await listener.layer.group_discard(run_group(run_id), listener.channel)


class RunChangeListener:
    """Waits for change notices on one channel of the layer.

    One receive stays pending across waits: a timed-out wait must not cancel it, since
    cancelling a receive makes the Redis pub/sub layer drop the channel's subscription.
    """

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self._pending: asyncio.Future[Any] | None = None

    async def wait(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for a change notice; True if one came."""
        if self.layer is None or not self.channel:
            await asyncio.sleep(timeout)
            return False
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.layer.receive(self.channel))
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return False
        pending, self._pending = self._pending, None
        try:
            pending.result()
        except Exception as exc:
            logger.warning("Change notices stopped, polling only: %r", exc)
            self.layer = None
        return True

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
