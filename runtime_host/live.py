"""The host end of the live view: screencasts the tabs someone watches and sends the
frames over a link to a web process, which hands them to viewers through the channel
layer (runtimes.liveview); viewers' input comes back over the same link.

- A tab is screencast only while a viewer said "watching" within
  BCTRL_LIVE_WATCH_TTL_S: the tab the automation last used for viewers that follow it,
  and any tab a viewer pinned. Every frame is acked to Chromium at once, so viewers
  never slow the browser; frames go out at most BCTRL_LIVE_MAX_FPS per tab, one at a
  time (the web process says when it has handed a frame on), and meanwhile only the
  newest frame of a tab waits: a busy web process gets fewer frames, never old ones.
- Input is sent to the browser only as runs.control.INPUT_METHODS, on the tab's own
  CDP session; anything else is dropped and logged.
- A file chooser a page opens is told to the viewers, and the files a person in control
  picks are set on its input (runtime_host.choosers).
- The link reconnects after a drop; without it the browser runs and records as usual.
- One screencast per tab serves both the viewers and the run's video
  (runtime_host/video.py): a tab is screencast while viewers watch it or while the video
  wants it, and each frame goes to the video and, when watched, to the viewers at their
  own rate. A tab the video keeps cast also gives a new viewer its picture at once.
  A tab that only the video wants is throttled at the source: its frames are acked when
  the video's next slot comes (Chromium sends nothing more while two frames wait), so
  Chromium encodes about BCTRL_VIDEO_FPS pictures a second instead of up to 60. A change
  that came while frames waited would be lost once the page goes still, so a quiet
  SETTLE_S after held frames restarts the screencast, which sends the picture as it is.
- Chromium pays for a screencast on every picture it composites while the screencast is
  on, whether or not it sends it: a tab that keeps changing (an animation, a page
  loading, a canvas) costs it about as much at 5 frames/s as at 60. So a tab only the
  video wants that is busy (BUSY_SLOTS slots in a row with a new frame the moment the
  last was acked) is taken in pulses instead: at each video slot the screencast starts,
  sends the picture as it is, and stops. Once STILL_PULSES pictures in a row are the
  same, the tab is still and goes back to the screencast, which costs nothing until the
  page changes. (Measured on a page animating at 60 frames/s: Chromium's CPU with the
  held screencast ~1.0 core, with pulses ~0.55; a still page costs ~0 on the screencast,
  ~0.18 in pulses.)
"""

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

import orjson
import websockets
from django.conf import settings

from runs.cdp import json_object
from runs.control import INPUT_METHODS
from runtime_host.choosers import FileChoosers
from runtime_host.parts import HostedBrowser
from runtime_host.targets import Target
from runtime_host.video import VideoCapture
from runtimes.hostlink import host_link_token, pack_frame

logger = logging.getLogger(__name__)

# Chromium's default of three frames in flight is kept: with one (`maxFramesInFlight: 1`,
# which saves JPEG encodings of frames the video replaces) a watched tab's screencast
# stopped sending now and then under load, as if an ack had gone uncounted.
SCREENCAST = {"format": "jpeg", "quality": 60, "maxWidth": 1280, "maxHeight": 1280}
RECONCILE_S = 0.2
TITLES_S = 1.0
RELAY_TIMEOUT_S = 1.0
RECONNECT_S = (0.2, 0.5, 1.0, 2.0, 5.0)
FOLLOW = ""  # the watch key of viewers that follow the automation's tab
SETTLE_S = 0.5
BUSY_GAP_S = 0.05  # a frame this soon after the held ones were acked: the tab kept changing
BUSY_SLOTS = 3  # that many slots in a row: the tab is busy, its video is taken in pulses
STILL_PULSES = 3  # that many pulses in a row with the same picture: still, screencast again
PULSE_WAIT_S = 1.0  # how long a pulse waits for its picture


class LiveLink:
    def __init__(self, browser: HostedBrowser, video: VideoCapture | None = None) -> None:
        self.browser = browser
        self.video = video
        self.ws: Any = None
        self.watch_until: dict[str, float] = {}  # FOLLOW or a pinned target → deadline
        self.casting: set[str] = set()  # target ids being screencast
        self.watched: set[str] = set()  # those of them that viewers watch
        self.held_acks: dict[str, list[tuple[Any, str]]] = {}  # target → (ack id, session)
        self.frames_of: dict[str, int] = {}  # target → frames received
        self.refreshing: set[str] = set()  # targets whose screencast was just restarted
        self.released_at: dict[str, float] = {}  # target → when its held acks were sent
        self.busy_slots: dict[str, int] = {}  # target → busy slots in a row
        # Targets taken in pulses (their loop runs) → whether the loop is to go on.
        self.pulses: dict[str, bool] = {}
        self.pulse_seen: dict[str, asyncio.Event] = {}  # target → its pulse's picture came
        self.pulsed_once: set[str] = set()  # targets taken in pulses at least once
        self.last_frame: dict[str, tuple[dict[str, Any], bytes]] = {}  # header, JPEG
        # The newest message per key not yet sent: text, or a frame (header, JPEG, to).
        self.outbox: dict[str, str | tuple[dict[str, Any], bytes, str]] = {}
        self._scheduled: set[str] = set()
        self.wake = asyncio.Event()
        self.relayed = asyncio.Event()
        self.next_send_at: dict[str, float] = {}
        self.frame_seq = 0
        self.tabs_sent = b""
        self.closed = False
        self.interval = 1.0 / max(settings.BCTRL_LIVE_MAX_FPS, 0.1)
        self.choosers = FileChoosers(browser, self._queue)

    # The link -----------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        url = (
            f"{settings.BCTRL_HOST_LINK_URL.rstrip('/')}/ws/host/runtimes/{self.browser.runtime.id}"
        )
        reconcile = asyncio.ensure_future(self._reconcile_loop())
        try:
            while not self.closed:
                token = host_link_token(self.browser.runtime.id, self.browser.runtime.host_id)
                try:
                    async with websockets.connect(
                        url,
                        additional_headers={"Authorization": f"Bearer {token}"},
                        max_size=2**20,
                        compression=None,
                        open_timeout=10,
                        ping_interval=20,
                    ) as ws:
                        attempt = 0
                        self.ws = ws
                        self.tabs_sent = b""
                        sender = asyncio.ensure_future(self._send_loop(ws))
                        try:
                            async for raw in ws:
                                self._received(raw)
                        finally:
                            sender.cancel()
                            with contextlib.suppress(BaseException):
                                await sender
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                    if attempt == 0:
                        logger.warning("Live link of %s: %s", self.browser.runtime.id, exc)
                self.ws = None
                if self.closed:
                    break
                await asyncio.sleep(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
                attempt += 1
        finally:
            reconcile.cancel()
            with contextlib.suppress(BaseException):
                await reconcile

    async def close(self) -> None:
        """Stops every screencast (before pages close) and the link."""
        self.closed = True
        await asyncio.gather(
            *(self._stop_cast(target_id) for target_id in {*self.casting, *self.pulses}),
            return_exceptions=True,
        )
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)

    def _queue(self, key: str, message: str | tuple[dict[str, Any], bytes, str]) -> None:
        self.outbox[key] = message
        self.wake.set()

    async def _send_loop(self, ws: Any) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                key = next(iter(self.outbox))
                message = self.outbox.pop(key)
                if isinstance(message, tuple):
                    header, image, to = message
                    # Stamped as it leaves the host: viewers measure the delivery from here.
                    stamped = {**header, "sentAt": time.time() * 1000, **({"to": to} if to else {})}
                    self.relayed.clear()
                    await ws.send(pack_frame(stamped, image))
                    # One frame on the way at a time: a busy web process gets the newest
                    # frame next, never a backlog (frames meanwhile replace each other).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.relayed.wait(), RELAY_TIMEOUT_S)
                else:
                    await ws.send(message)

    def _received(self, raw: str | bytes) -> None:
        message = json_object(raw)
        if message is None:
            return
        kind = message.get("type")
        if kind == "relayed":
            self.relayed.set()
        elif kind == "watch":
            target = message.get("target")
            key = target if isinstance(target, str) else FOLLOW
            self.watch_until[key] = time.monotonic() + settings.BCTRL_LIVE_WATCH_TTL_S
            reply = message.get("reply")
            if isinstance(reply, str) and reply:
                self._reply(reply, key)
            self._reconcile()
        elif kind == "input":
            self._input(message)
        elif kind == "recording":
            self.browser.spawn(self._switch_recording(message))
        elif kind == "chooseFiles":
            self.browser.spawn(self.choosers.choose(message))
        elif kind == "active":
            target = message.get("target")
            if isinstance(target, str) and target in self.browser.targets.page_infos:
                self.browser.targets.touch(target)
                self._reconcile()

    def _reply(self, channel: str, key: str) -> None:
        """The tab list and the newest picture of the watched tab, for one new viewer."""
        tabs, active = self._tabs()
        self._queue(
            f"tabs:{channel}",
            orjson.dumps({"type": "tabs", "tabs": tabs, "active": active, "to": channel}).decode(),
        )
        target = key or active
        frame = self.last_frame.get(target or "")
        if frame is not None:
            self._queue(f"frame:{channel}", (*frame, channel))
        self.choosers.tell(channel)

    async def _switch_recording(self, message: dict[str, Any]) -> None:
        """A client's `recording=` option, applied before the proxy lets it in."""
        await self.browser.set_recording(bool(message.get("enabled")))
        reply = message.get("reply")
        if isinstance(reply, str) and reply:
            self._queue(f"done:{reply}", orjson.dumps({"type": "done", "to": reply}).decode())

    # Input ---------------------------------------------------------------------------

    def _input(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params")
        if method not in INPUT_METHODS or not isinstance(params, dict):
            logger.warning("Live link of %s dropped a non-input call", self.browser.runtime.id)
            return
        target = message.get("target")
        session = (
            self.browser.targets.sessions_by_target.get(target) if isinstance(target, str) else None
        )
        cdp = self.browser.cdp
        if session is None or cdp is None:
            return
        cdp.send_nowait(str(method), params, session)

    # Screencasts ----------------------------------------------------------------------

    def _active(self) -> str | None:
        page = self.browser.targets.last_active_page()
        return page.target_id if page else None

    def _tabs(self) -> tuple[list[dict[str, Any]], str | None]:
        tabs = [
            {"id": target_id, "url": info.get("url", ""), "title": info.get("title", "")}
            for target_id, info in self.browser.targets.page_infos.items()
            if target_id in self.browser.targets.sessions_by_target
        ]
        return tabs, self._active()

    def _wanted(self) -> set[str]:
        now = time.monotonic()
        for key in [k for k, until in self.watch_until.items() if until < now]:
            del self.watch_until[key]
        wanted = {key for key in self.watch_until if key != FOLLOW}
        if FOLLOW in self.watch_until and (active := self._active()):
            wanted.add(active)
        return {t for t in wanted if t in self.browser.targets.sessions_by_target}

    def _reconcile(self) -> None:
        if self.closed or self.browser.cdp is None:
            return
        self.watched = self._wanted()
        wanted = self.watched | (self.video.wanted() if self.video is not None else set())
        self.pulsed_once &= self.browser.targets.sessions_by_target.keys()  # open tabs only
        for tab in self.choosers.open.keys() - self.browser.targets.sessions_by_target.keys():
            self.choosers.gone(tab)  # its tab closed
        for target_id in self.pulses.keys() - (wanted - self.watched):
            self.pulses[target_id] = False  # watched (screencast at once) or not wanted
        for target_id in wanted - self.casting - self.pulses.keys():
            if target_id not in self.watched and target_id not in self.pulsed_once:
                self._start_pulses(target_id)  # a new tab: its first page is loading
                continue
            self.casting.add(target_id)
            session = self.browser.targets.sessions_by_target[target_id]
            self.browser.cdp.send_nowait("Page.startScreencast", SCREENCAST, session)
        for target_id in self.casting - wanted:
            self.browser.spawn(self._stop_cast(target_id))
        if self.watch_until:
            tabs, active = self._tabs()
            encoded = orjson.dumps({"type": "tabs", "tabs": tabs, "active": active})
            if encoded != self.tabs_sent:
                self.tabs_sent = encoded
                self._queue("tabs", encoded.decode())

    async def _stop_cast(self, target_id: str) -> None:
        self.casting.discard(target_id)
        self.last_frame.pop(target_id, None)
        await self._stop_screencast(target_id)

    async def _reconcile_loop(self) -> None:
        last_titles = 0.0
        while not self.closed:
            if self.watch_until and time.monotonic() - last_titles >= TITLES_S:
                last_titles = time.monotonic()
                await self._refresh_titles()
            self._reconcile()
            await asyncio.sleep(RECONCILE_S)

    async def _refresh_titles(self) -> None:
        """Titles and addresses of the tabs, for the tab strip (a page's title change is
        not always announced)."""
        cdp = self.browser.cdp
        if cdp is None:
            return
        with contextlib.suppress(Exception):
            answer = await cdp.send("Target.getTargets", {}, timeout=2)
            for info in answer.get("targetInfos") or []:
                known = self.browser.targets.page_infos.get(info.get("targetId", ""))
                if known is not None:
                    known["title"] = info.get("title", "")
                    known["url"] = info.get("url", known.get("url", ""))

    def frame(self, target: Target, params: dict[str, Any]) -> None:
        """A `Page.screencastFrame`: acked at once, handed to the video, and sent to
        viewers at most every `interval`."""
        cdp = self.browser.cdp
        if cdp is None:
            return
        target_id = target.target_id
        self.frames_of[target_id] = self.frames_of.get(target_id, 0) + 1
        pulsed = target_id in self.pulses
        delay = 0.0
        if self.video is not None and target_id not in self.watched and not pulsed:
            delay = 0.0 if target_id in self.refreshing else self.video.ack_delay(target_id)
            self._pace(target_id)
        self.refreshing.discard(target_id)
        if delay > 0:
            self._hold_ack(target_id, params.get("sessionId"), target.session_id, delay)
        else:
            cdp.send_nowait(
                "Page.screencastFrameAck", {"sessionId": params.get("sessionId")}, target.session_id
            )
        if target_id not in self.casting and not pulsed:
            return
        metadata = params.get("metadata") or {}
        image = base64.b64decode(params.get("data") or "")
        if pulsed:
            if (seen := self.pulse_seen.get(target_id)) is not None:
                seen.set()
            previous = self.last_frame.get(target_id)
            if previous is not None and previous[1] == image:
                return  # the same picture: the video holds it already
        if self.video is not None:
            shown_at = metadata.get("timestamp")
            self.video.frame(
                target.target_id, shown_at if isinstance(shown_at, int | float) else None, image
            )
        self.frame_seq += 1
        header = {
            "target": target.target_id,
            "seq": self.frame_seq,
            "w": metadata.get("deviceWidth"),
            "h": metadata.get("deviceHeight"),
        }
        self.last_frame[target.target_id] = (header, image)
        if target.target_id not in self.watched:
            return
        now = time.monotonic()
        due = self.next_send_at.get(target.target_id, 0.0)
        if now >= due:
            self._send_latest(target.target_id)
        elif target.target_id not in self._scheduled:
            self._scheduled.add(target.target_id)
            asyncio.get_running_loop().call_later(due - now, self._send_latest, target.target_id)

    def _hold_ack(self, target_id: str, ack: Any, session: str, delay: float) -> None:
        held = self.held_acks.setdefault(target_id, [])
        held.append((ack, session))
        if len(held) == 1:
            asyncio.get_running_loop().call_later(delay, self._release_acks, target_id)

    def _release_acks(self, target_id: str) -> None:
        cdp = self.browser.cdp
        held = self.held_acks.pop(target_id, [])
        if cdp is None or self.closed:
            return
        for ack, session in held:
            cdp.send_nowait("Page.screencastFrameAck", {"sessionId": ack}, session)
        self.released_at[target_id] = time.monotonic()
        seen = self.frames_of.get(target_id, 0)
        asyncio.get_running_loop().call_later(SETTLE_S, self._settle, target_id, seen)

    def _settle(self, target_id: str, seen: int) -> None:
        """No frame since held ones were acked: restart the screencast for the picture as
        it is now (a change made while frames waited was not sent)."""
        cdp = self.browser.cdp
        session = self.browser.targets.sessions_by_target.get(target_id)
        if self.frames_of.get(target_id, 0) != seen or target_id not in self.casting:
            return
        if cdp is None or session is None or self.closed:
            return
        self.refreshing.add(target_id)
        cdp.send_nowait("Page.stopScreencast", {}, session)
        cdp.send_nowait("Page.startScreencast", SCREENCAST, session)

    def _pace(self, target_id: str) -> None:
        """A frame of a tab only the video wants, on its screencast: a tab whose next frame
        came the moment the held ones were acked, BUSY_SLOTS slots in a row, is taken in
        pulses from now on."""
        released = self.released_at.pop(target_id, None)
        if released is None or time.monotonic() - released > BUSY_GAP_S:
            self.busy_slots.pop(target_id, None)
            return
        self.busy_slots[target_id] = self.busy_slots.get(target_id, 0) + 1
        if self.busy_slots[target_id] >= BUSY_SLOTS:
            self._start_pulses(target_id)

    def navigated(self, target_id: str) -> None:
        """A tab's page navigated: it is about to load and paint, which makes a tab that
        only the video wants busy for a while; a file chooser of its last page is gone."""
        self.choosers.gone(target_id)
        if target_id in self.casting and target_id not in self.watched:
            self._start_pulses(target_id)

    def _start_pulses(self, target_id: str) -> None:
        if self.video is None or self.closed or not self.video.enabled:
            return
        self.busy_slots.pop(target_id, None)
        logger.debug("Tab %s of %s: its video in pulses", target_id, self.browser.runtime.id)
        self.casting.discard(target_id)
        self.pulses[target_id] = True
        self.pulsed_once.add(target_id)
        self.browser.spawn(self._pulse(target_id))

    async def _pulse(self, target_id: str) -> None:
        """Takes the tab's picture at each video slot (the screencast started, its first
        frame, stopped) until STILL_PULSES pictures in a row are the same, or the tab is
        watched or no longer wanted; then hands it back to `_reconcile`."""
        assert self.video is not None
        same = 0
        try:
            await self._stop_screencast(target_id)
            while self.pulses.get(target_id) and not self.closed:
                started = time.monotonic()
                session = self.browser.targets.sessions_by_target.get(target_id)
                cdp = self.browser.cdp
                if session is None or cdp is None:
                    break
                seen = self.pulse_seen[target_id] = asyncio.Event()
                before = self.last_frame.get(target_id)
                with contextlib.suppress(Exception):
                    await cdp.send("Page.startScreencast", SCREENCAST, session, timeout=2)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(seen.wait(), PULSE_WAIT_S)
                await self._stop_screencast(target_id)
                # No picture at all (a tab that does not paint) counts as the same.
                same = 0 if self.last_frame.get(target_id) is not before else same + 1
                if same >= STILL_PULSES:
                    runtime = self.browser.runtime.id
                    logger.debug(
                        "Tab %s of %s is still: its video on the screencast", target_id, runtime
                    )
                    break
                await asyncio.sleep(max(0.0, self.video.interval - (time.monotonic() - started)))
        finally:
            self.pulses.pop(target_id, None)
            self.pulse_seen.pop(target_id, None)
        self._reconcile()  # the screencast again, if the tab is still wanted

    async def _stop_screencast(self, target_id: str) -> None:
        session = self.browser.targets.sessions_by_target.get(target_id)
        if session is not None and self.browser.cdp is not None:
            with contextlib.suppress(Exception):
                await self.browser.cdp.send("Page.stopScreencast", {}, session, timeout=2)

    def _send_latest(self, target_id: str) -> None:
        self._scheduled.discard(target_id)
        frame = self.last_frame.get(target_id)
        if frame is not None and target_id in self.watched:
            self.next_send_at[target_id] = time.monotonic() + self.interval
            self._queue(f"frame:{target_id}", (*frame, ""))
