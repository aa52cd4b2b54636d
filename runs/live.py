"""Change notices for a run over the channel layer, so streams wake at once.

Streams still poll the database on a slow timer: a notice is a hint to look now,
the database stays the source of truth, and a lost notice costs one poll interval.
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


def notify_run_changed(run_id: str, kind: str, **detail: Any) -> None:
    """Tells every open stream of the run that something changed, once the write commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "run.changed", "kind": kind, **detail}
        publish = async_to_sync(layer.group_send)
        if _loop_running_here():
            # A sync caller on a thread that runs an event loop (Playwright's sync API
            # does this) cannot block on the loop; publish from a thread of its own.
            thread = threading.Thread(target=publish, args=(run_group(run_id), message))
            thread.start()
            thread.join(5)
        else:
            publish(run_group(run_id), message)

    transaction.on_commit(send)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.asynccontextmanager
async def run_change_listener(run_id: str) -> AsyncIterator["RunChangeListener"]:
    layer = get_channel_layer()
    listener = RunChangeListener(layer, await layer.new_channel() if layer is not None else "")
    if layer is not None:
        await layer.group_add(run_group(run_id), listener.channel)
    try:
        yield listener
    finally:
        listener.close()
        if layer is not None:
            await layer.group_discard(run_group(run_id), listener.channel)


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
        pending.result()
        return True

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
