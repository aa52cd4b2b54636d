"""The host end of a recorded run's video: keeps each page target's screencast frames at
BCTRL_VIDEO_FPS at most while the run records, and hands them to the run's writer, which
sends them to the recording in batches (recordings.video.frames_ingest).

The screencast is the live view's (runtime_host/live.py starts one per target, for
whichever of the two wants it): Chromium sends a frame only when the picture changed, so
a still tab costs nothing and the encoder holds its last picture. Frames that come
faster than the rate replace each other: the newest is kept when the next slot comes,
with the time it was shown (the frame's own timestamp), so the last picture of a burst
is never lost.
"""

import asyncio
import time

from recordings.video import video_fps
from runtime_host.parts import HostedBrowser


class VideoCapture:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser
        fps = video_fps()
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self.kept_at: dict[str, float] = {}  # target → when its last frame was kept
        self.latest: dict[str, tuple[int, bytes]] = {}  # target → newest frame not kept
        self._scheduled: set[str] = set()
        self.closed = False

    @property
    def enabled(self) -> bool:
        browser = self.browser
        return (
            self.interval > 0
            and not self.closed
            and browser.bound
            and browser.recording_enabled
            and not browser.stopping
        )

    def wanted(self) -> set[str]:
        """The page targets to screencast for the video: every open page while the run
        records with video on, none otherwise."""
        if not self.enabled:
            return set()
        return {
            target_id
            for target_id, info in self.browser.targets.page_infos.items()
            if info.get("type") == "page" and target_id in self.browser.targets.sessions_by_target
        }

    def ack_delay(self, target_id: str) -> float:
        """Seconds until this target's next frame is kept: a screencast that only the
        video wants acks a frame then (runtime_host/live.py), so Chromium waits too."""
        if not self.enabled:
            return 0.0
        return max(0.0, self.kept_at.get(target_id, 0.0) + self.interval - time.monotonic())

    def frame(self, target_id: str, shown_at: float | None, jpeg: bytes) -> None:
        """A screencast frame of `target_id`, shown at `shown_at` (seconds since the
        epoch, the frame's metadata; now when it has none)."""
        if not self.enabled or not jpeg:
            return
        time_ms = round((shown_at or time.time()) * 1000)
        self.latest[target_id] = (time_ms, jpeg)
        now = time.monotonic()
        due = self.kept_at.get(target_id, 0.0) + self.interval
        if now >= due:
            self._keep(target_id)
        elif target_id not in self._scheduled:
            self._scheduled.add(target_id)
            asyncio.get_running_loop().call_later(due - now, self._keep, target_id)

    def _keep(self, target_id: str) -> None:
        self._scheduled.discard(target_id)
        frame = self.latest.pop(target_id, None)
        if frame is None or self.closed:
            return
        self.kept_at[target_id] = time.monotonic()
        self.browser.writer.frame(target_id, *frame)

    def close(self) -> None:
        """Keeps the frames still waiting for their slot (the last pictures) and stops."""
        for target_id in list(self.latest):
            self._keep(target_id)
        self.closed = True
