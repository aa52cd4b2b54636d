"""Change notices reach open streams through the channel layer, in memory or on Redis."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.db import connections

from runs import services
from runs.live import run_change_listener
from runs.models import Space


async def _notice_reaches_a_listener() -> None:
    space = await Space.objects.acreate(name="Live", slug="live")
    run = await sync_to_async(services.run_create)(space=space)
    async with run_change_listener(run.id) as listener:
        assert await listener.wait(0.2) is False
        await sync_to_async(services.events_append)(run=run, events=[{"type": "navigation"}])
        assert await listener.wait(5) is True
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_a_write_wakes_a_listener_in_memory(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    try:
        await _notice_reaches_a_listener()
    finally:
        channel_layers.backends.clear()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_write_wakes_a_listener_through_redis(settings: Any, redis_url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": "bctrl-test-live"},
        }
    }
    channel_layers.backends.clear()
    try:
        await _notice_reaches_a_listener()
    finally:
        channel_layers.backends.clear()
