"""The runtime host's end of the live view (runtime_host/live.py) against a recording
stand-in for the browser's CDP connection: screencasts only while watched, frames acked
at once and thinned to the newest, input only as Input.* calls. (Real Chromium and a
real link are in tests/test_live_browser.py.)"""

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest

from runtime_host.live import LiveLink
from runtime_host.targets import Target


@dataclass
class FakeCdp:
    sent: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def send_nowait(self, method: str, params: dict[str, Any], session: str = "") -> Any:
        self.sent.append((method, params, session))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        future.set_result({})
        return future

    async def send(self, method: str, params: dict[str, Any], session: str = "", **_: Any) -> Any:
        return await self.send_nowait(method, params, session)

    def methods(self, name: str) -> list[tuple[dict[str, Any], str]]:
        return [(params, session) for method, params, session in self.sent if method == name]


@dataclass
class FakeTarget:
    target_id: str
    session_id: str


@dataclass
class FakeRuntime:
    id: str = "rt_live"
    host_id: str = "host-a"


class FakeTargets:
    def __init__(self) -> None:
        self.page_infos = {
            "T1": {"url": "https://a.test/", "title": "A"},
            "T2": {"url": "", "title": ""},
        }
        self.sessions_by_target = {"T1": "S1", "T2": "S2"}
        self.active = "T1"

    def last_active_page(self) -> FakeTarget | None:
        return FakeTarget(self.active, self.sessions_by_target[self.active])

    def touch(self, target_id: str) -> None:
        self.active = target_id


class FakeBrowser:
    def __init__(self) -> None:
        self.runtime = FakeRuntime()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.cdp = FakeCdp()
        self.targets = FakeTargets()

    def spawn(self, coroutine: Any) -> None:
        self.tasks.add(asyncio.ensure_future(coroutine))


def fake(link: LiveLink) -> FakeBrowser:
    return cast(FakeBrowser, link.browser)


@pytest.fixture
def link(settings: Any) -> LiveLink:
    settings.BCTRL_LIVE_WATCH_TTL_S = 0.2
    settings.BCTRL_LIVE_MAX_FPS = 10
    return LiveLink(FakeBrowser())  # type: ignore[arg-type]


def watch(link: LiveLink, target: str | None = None, reply: str = "") -> None:
    link._received(orjson.dumps({"type": "watch", "target": target, "reply": reply}))


async def test_screencasts_only_the_watched_tabs_and_only_while_watched(link: LiveLink) -> None:
    cdp = fake(link).cdp
    link._reconcile()
    assert cdp.methods("Page.startScreencast") == []  # nobody watches: nothing runs
    watch(link)
    assert [s for _, s in cdp.methods("Page.startScreencast")] == ["S1"]  # the automation's tab
    watch(link, "T2")  # a viewer pins the other tab
    assert [s for _, s in cdp.methods("Page.startScreencast")] == ["S1", "S2"]
    link._received(orjson.dumps({"type": "active", "target": "T2"}))
    await asyncio.sleep(0.3)  # past the watch TTL with no new "watching"
    link._reconcile()
    await asyncio.sleep(0)
    assert sorted(s for _, s in cdp.methods("Page.stopScreencast")) == ["S1", "S2"]
    assert link.casting == set()


async def test_frames_are_acked_at_once_and_thinned_to_the_newest(link: LiveLink) -> None:
    cdp = fake(link).cdp
    watch(link)
    target = FakeTarget("T1", "S1")
    for number in range(5):
        encoded = base64.b64encode(b"jpeg%d" % number).decode()
        metadata = {"deviceWidth": 800, "deviceHeight": 600}
        link.frame(target, {"data": encoded, "sessionId": number, "metadata": metadata})  # type: ignore[arg-type]
    # Every frame acked to Chromium right away, whatever happens to it after.
    assert [p["sessionId"] for p, _ in cdp.methods("Page.screencastFrameAck")] == [0, 1, 2, 3, 4]
    queued = [m for k, m in link.outbox.items() if k == "frame:T1"]
    assert len(queued) == 1 and queued[0][1] == b"jpeg0"  # sent at once; the rest wait
    link.outbox.clear()
    await asyncio.sleep(0.15)  # the next slot at 10 fps: only the newest goes
    queued_frame = link.outbox["frame:T1"]
    assert isinstance(queued_frame, tuple)
    header, image, to = queued_frame
    assert image == b"jpeg4" and header["w"] == 800 and to == ""


async def test_a_new_viewer_gets_the_tabs_and_the_newest_picture(link: LiveLink) -> None:
    watch(link)
    image = base64.b64encode(b"picture").decode()
    link.frame(FakeTarget("T1", "S1"), {"data": image, "sessionId": 1, "metadata": {}})  # type: ignore[arg-type]
    watch(link, reply="viewer-channel")
    tabs = orjson.loads(link.outbox["tabs:viewer-channel"])  # type: ignore[arg-type]
    assert tabs["to"] == "viewer-channel" and tabs["active"] == "T1"
    assert [t["id"] for t in tabs["tabs"]] == ["T1", "T2"]
    assert link.outbox["frame:viewer-channel"][1:] == (b"picture", "viewer-channel")


@pytest.mark.parametrize(
    ("method", "forwarded"),
    [
        ("Input.dispatchMouseEvent", True),
        ("Input.insertText", True),
        ("Runtime.evaluate", False),
        ("Page.navigate", False),
        ("Input.dispatchTouchEvent", False),
    ],
)
async def test_only_input_calls_reach_the_browser(
    link: LiveLink, method: str, forwarded: bool
) -> None:
    link._received(
        orjson.dumps({"type": "input", "target": "T1", "method": method, "params": {"x": 1}})
    )
    assert fake(link).cdp.methods(method) == ([({"x": 1}, "S1")] if forwarded else [])


async def test_a_clients_recording_switch_is_applied_then_confirmed(link: LiveLink) -> None:
    switched: list[bool] = []

    async def set_recording(enabled: bool) -> None:
        switched.append(enabled)

    fake(link).set_recording = set_recording  # type: ignore[attr-defined]
    link._received(orjson.dumps({"type": "recording", "enabled": False, "reply": "proxy-1"}))
    await asyncio.gather(*fake(link).tasks)
    assert switched == [False]
    done = link.outbox["done:proxy-1"]
    assert isinstance(done, str) and orjson.loads(done) == {"type": "done", "to": "proxy-1"}


def on_the_screencast(link: LiveLink) -> LiveLink:
    """A link whose tab T1 has been taken in pulses while its first page loaded and is on
    the screencast since."""
    link.pulsed_once.add("T1")
    return link


class FakeVideo:
    """The run's video wanting every tab, its next slot 0.05 s away."""

    interval = 0.05
    enabled = True

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []

    def wanted(self) -> set[str]:
        return {"T1"}

    def ack_delay(self, target_id: str) -> float:
        return 0.05

    def frame(self, target_id: str, shown_at: float | None, jpeg: bytes) -> None:
        self.frames.append((target_id, jpeg))


async def test_a_tab_only_the_video_wants_is_throttled_and_refreshed_once_still(
    settings: Any,
) -> None:
    """Its frames are acked at the video's next slot, not at once; once it is quiet
    after held frames, its screencast restarts (the picture as it is now), and that
    frame is acked at once, so a still tab is not restarted again and again."""
    link = on_the_screencast(LiveLink(FakeBrowser(), video=FakeVideo()))  # type: ignore[arg-type]
    cdp = fake(link).cdp
    link._reconcile()
    assert [s for _, s in cdp.methods("Page.startScreencast")] == ["S1"]  # nobody watches
    target = FakeTarget("T1", "S1")
    image = base64.b64encode(b"jpeg").decode()
    link.frame(target, {"data": image, "sessionId": 1, "metadata": {"timestamp": 1.0}})  # type: ignore[arg-type]
    assert cdp.methods("Page.screencastFrameAck") == []
    assert link.video.frames == [("T1", b"jpeg")]  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    assert [p["sessionId"] for p, _ in cdp.methods("Page.screencastFrameAck")] == [1]
    await asyncio.sleep(0.6)  # quiet past SETTLE_S
    assert [s for _, s in cdp.methods("Page.stopScreencast")] == ["S1"]
    assert [s for _, s in cdp.methods("Page.startScreencast")] == ["S1", "S1"]
    link.frame(target, {"data": image, "sessionId": 2, "metadata": {}})  # type: ignore[arg-type]
    assert [p["sessionId"] for p, _ in cdp.methods("Page.screencastFrameAck")] == [1, 2]
    await asyncio.sleep(0.7)
    assert len(cdp.methods("Page.startScreencast")) == 2  # not restarted again


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def test_a_busy_tab_only_the_video_wants_is_taken_in_pulses_until_it_is_still(
    settings: Any,
) -> None:
    """A tab whose next frame comes the moment its held ones are acked, three slots in a
    row, leaves the screencast (which costs Chromium every picture it composites) for a
    pulse per slot: the screencast started, its first picture taken and acked, stopped.
    A repeated picture is not sent to the video again; three in a row, and the tab is
    back on the screencast."""
    link = on_the_screencast(LiveLink(FakeBrowser(), video=FakeVideo()))  # type: ignore[arg-type]
    cdp = fake(link).cdp
    link._reconcile()
    target = FakeTarget("T1", "S1")
    acks = 0

    def send(picture: bytes) -> None:
        nonlocal acks
        acks += 1
        data = base64.b64encode(picture).decode()
        link.frame(target, {"data": data, "sessionId": acks, "metadata": {}})  # type: ignore[arg-type]

    def starts() -> int:
        return len(cdp.methods("Page.startScreencast"))

    send(b"a")  # held until the video's next slot
    for _ in range(3):
        await until(lambda: "T1" not in link.held_acks)  # acked…
        send(b"a")  # …and the next frame at once: busy
    assert link.pulses == {"T1": True} and "T1" not in link.casting
    await until(lambda: len(cdp.methods("Page.stopScreencast")) == 1)

    for pulse, picture in enumerate((b"b", b"c", b"c", b"c", b"c"), start=2):
        await until(lambda pulse=pulse: starts() == pulse)  # it began
        send(picture)
    await until(lambda: not link.pulses)
    assert "T1" in link.casting  # the screencast again
    assert starts() == 1 + 5 + 1
    assert len(cdp.methods("Page.stopScreencast")) == 1 + 5
    # Each pulse's picture acked at once; the video got each new picture once.
    assert len(cdp.methods("Page.screencastFrameAck")) >= 4 + 5 - 1
    assert [picture for _, picture in link.video.frames][-2:] == [b"b", b"c"]  # type: ignore[union-attr]


async def test_a_new_tab_and_a_navigated_one_are_taken_in_pulses(settings: Any) -> None:
    """A tab the video starts to want is loading its first page: pulses from the start.
    A tab on the screencast whose page navigates: pulses again. A watched tab stays on
    its screencast."""
    link = LiveLink(FakeBrowser(), video=FakeVideo())  # type: ignore[arg-type]
    cdp = fake(link).cdp
    link._reconcile()
    assert link.pulses == {"T1": True} and link.casting == set()
    link.pulses["T1"] = False  # as if its pulses found it still
    await until(lambda: not link.pulses)
    assert link.casting == {"T1"}
    link.navigated("T1")
    assert link.pulses == {"T1": True} and link.casting == set()
    link.pulses["T1"] = False
    await until(lambda: not link.pulses)
    watch(link, "T1")
    link.navigated("T1")
    assert link.pulses == {} and link.casting == {"T1"}
    assert cdp.methods("Page.startScreencast")


async def test_a_file_chooser_is_told_to_viewers_and_answered_with_placed_files_only(
    link: LiveLink, tmp_path: Any
) -> None:
    browser = fake(link)
    browser.upload_dir = tmp_path / "uploads"  # type: ignore[attr-defined]
    browser.upload_dir.mkdir()  # type: ignore[attr-defined]
    placed = browser.upload_dir / "scan.pdf"  # type: ignore[attr-defined]
    placed.write_bytes(b"%PDF")
    (tmp_path / "secret.txt").write_text("host file")
    tab = Target("T1", "page", "https://a.test/", "S1", "T1")
    link.choosers.opened(tab, {"backendNodeId": 7, "mode": "selectMultiple", "frameId": "F"})
    told = orjson.loads(link.outbox["chooser:T1"])  # type: ignore[arg-type]
    assert told == {"type": "fileChooser", "target": "T1", "open": True, "multiple": True}
    watch(link, reply="viewer-channel")  # a viewer who comes later hears of it too
    assert orjson.loads(link.outbox["chooser:T1:viewer-channel"])["to"] == "viewer-channel"  # type: ignore[arg-type]

    def choose(*paths: str, target: str = "T1") -> None:
        link._received(orjson.dumps({"type": "chooseFiles", "target": target, "paths": paths}))

    # Nothing outside the browser's uploads folder, nothing for a tab with no chooser.
    choose(str(tmp_path / "secret.txt"))
    choose(str(browser.upload_dir / ".." / "secret.txt"))  # type: ignore[attr-defined]
    choose(str(placed), target="T2")
    choose()
    await asyncio.gather(*browser.tasks)
    assert browser.cdp.methods("DOM.setFileInputFiles") == []
    assert link.choosers.open.keys() == {"T1"}

    choose(str(placed))
    await asyncio.gather(*browser.tasks)
    assert browser.cdp.methods("DOM.setFileInputFiles") == [
        ({"files": [str(placed)], "backendNodeId": 7}, "S1")
    ]
    assert orjson.loads(link.outbox["chooser:T1"])["open"] is False  # type: ignore[arg-type]

    # A chooser whose page navigated away is gone.
    link.choosers.opened(tab, {"backendNodeId": 9, "mode": "selectSingle"})
    link.navigated("T1")
    assert link.choosers.open == {}
    assert orjson.loads(link.outbox["chooser:T1"])["open"] is False  # type: ignore[arg-type]
