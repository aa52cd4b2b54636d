"""Change notices for a run over the channel layer, so streams wake at once.

Streams still poll the database on a slow timer: a notice is a hint to look now,
the database stays the source of truth, and a lost notice costs one poll interval.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


def notify_run_changed(run_id: str, kind: str) -> None:
    """Tells every open stream of the run that something changed, once the write commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.changed", "kind": kind})

    transaction.on_commit(send)


@contextlib.asynccontextmanager
async def run_change_listener(run_id: str) -> AsyncIterator["RunChangeListener"]:
    layer = get_channel_layer()
    channel = await layer.new_channel() if layer is not None else ""
    if layer is not None:
        await layer.group_add(run_group(run_id), channel)
    try:
        yield RunChangeListener(channel)
    finally:
        if layer is not None:
            await layer.group_discard(run_group(run_id), channel)


class RunChangeListener:
    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def wait(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for a change notice; True if one came."""
        layer = get_channel_layer()
        if layer is None or not self.channel:
            await asyncio.sleep(timeout)
            return False
        try:
            await asyncio.wait_for(layer.receive(self.channel), timeout)
        except TimeoutError:
            return False
        return True
