"""Screenshots of a run's pages taken by the host: on demand, a recent one of the last
loaded page kept in memory, and the run's final screenshot stored as an artifact when
it stops."""

import asyncio
import contextlib
import io
import time

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from runs.models import Artifact
from runs.services import artifact_store
from runtime_host.parts import HostedBrowser
from runtime_host.targets import Target

SHOT_CACHE_INTERVAL_S = 2.0


class Screenshots:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser
        self._last_shot_at = 0.0
        self._shot_scheduled = False
        self._shot_target: Target | None = None
        self._cached_shot: tuple[bytes, str, str] | None = None  # PNG, target id, URL

    async def take(self, target_id: str | None = None) -> tuple[bytes, Target] | None:
        """A PNG of that page (of the page used last when none is named or it is gone)."""
        cdp = self.browser.cdp
        assert cdp is not None
        targets = self.browser.targets
        session = targets.sessions_by_target.get(target_id) if target_id else None
        target = targets.by_session.get(session) if session else targets.last_active_page()
        if target is None:
            return None
        return await cdp.capture_png(target.session_id, timeout=10), target

    def page_loaded(self, target: Target) -> None:
        """A page finished loading: its picture is kept soon (at most one every
        SHOT_CACHE_INTERVAL_S)."""
        self._shot_target = target
        if not self._shot_scheduled:
            self._shot_scheduled = True
            waited = time.monotonic() - self._last_shot_at
            self.browser.spawn(self._keep_recent(max(0.3, SHOT_CACHE_INTERVAL_S - waited)))

    async def _keep_recent(self, delay: float) -> None:
        """Keeps a recent picture of the last loaded page: a client that closes its pages
        before the runtime stops leaves nothing else for the run's final screenshot."""
        await asyncio.sleep(delay)  # also lets the page paint
        self._shot_scheduled = False
        self._last_shot_at = time.monotonic()
        target = self._shot_target
        if target is None or self.browser.stopping:
            return
        with contextlib.suppress(Exception):
            shot = await self.take(target.target_id)
            if shot is not None:
                self._cached_shot = (shot[0], target.target_id, target.url)

    async def store_final(self) -> None:
        """The run's final screenshot: the page used last, or the picture kept of the last
        loaded page when none is open any more."""
        with contextlib.suppress(Exception):
            shot = None
            with contextlib.suppress(Exception):
                shot = await self.take()
            if shot is not None:
                data, target_id, url = shot[0], shot[1].target_id, shot[1].url
            elif self._cached_shot is not None:
                data, target_id, url = self._cached_shot
            else:
                return
            run = self.browser.run

            def store() -> None:
                close_old_connections()
                artifact_store(
                    run=run,
                    kind=Artifact.Kind.SCREENSHOT,
                    name="final.png",
                    content=io.BytesIO(data),
                    content_type="image/png",
                    metadata={"targetId": target_id, "url": url, "final": True},
                )

            await sync_to_async(store, thread_sensitive=False)()
