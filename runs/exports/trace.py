"""The run as a Playwright trace (trace.zip), for Playwright's own trace viewer
(`playwright show-trace`): each activity step is an action (its words, page, duration and
error), console messages are console entries and the network log is the trace's
`trace.network` (the HAR entries of runs/exports/har.py as resource snapshots).

The format is the one Playwright's tracing writes (trace.trace and trace.network, JSON
lines), at version 8, which the viewer brings up to date on load. The ZIP is written as a
stream (zipfile with data descriptors on a sink that is emptied after each line), so a
long run is not held in memory. The pictures of its pages come from the caller (the
recording's videos: recordings.video.screencast_frames): each is a `resources/<sha1>` JPEG
and a `screencast-frame` line, from which the viewer draws its filmstrip and each
action's before and after screenshots (the frames of its page nearest its start and end).
"""

import hashlib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from runs.activity import activity_items
from runs.exports.har import har_entries
from runs.models import Run
from runs.selectors import events_of

TRACE_VERSION = 8
CONTENT_TYPE = "application/zip"
FAILED_STATUSES = frozenset({"failed", "error"})


@dataclass(frozen=True)
class ScreencastFrame:
    """A picture of one page at one moment."""

    page_id: str
    time: datetime
    jpeg: bytes
    width: int
    height: int


def trace_filename(run: Run) -> str:
    return f"{run.id}-trace.zip"


class _Sink:
    """A write-only stream whose bytes are taken out as they come (zipfile copes with
    a stream it cannot seek)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _ms(run: Run, moment: datetime) -> float:
    return round((moment - run.started_at).total_seconds() * 1000, 3)


def _lines(run: Run, named: bool) -> Iterator[dict[str, Any]]:
    options = run.browser_options or {}
    yield {
        "version": TRACE_VERSION,
        "type": "context-options",
        "origin": "library",
        "browserName": "chromium",
        "platform": "linux",
        "wallTime": run.started_at.timestamp() * 1000,
        "monotonicTime": 0,
        "sdkLanguage": "javascript",
        "title": (run.name or run.id) if named else "Replay",
        "options": {"viewport": options.get("viewport") or {"width": 1280, "height": 720}},
        "contextId": run.id if named else "context",
    }
    for number, item in enumerate(activity_items(run), start=1):
        call = f"call@{number}"
        start = _ms(run, datetime.fromisoformat(item["time"]))
        end = start + (item.get("durationMs") or 0)
        page = item.get("pageId") or ""
        yield {
            "type": "before",
            "callId": call,
            "stepId": call,
            "startTime": start,
            "title": item["message"],
            "class": "Page",
            "method": item["type"],
            "params": {},
            "pageId": page,
        }
        after: dict[str, Any] = {"type": "after", "callId": call, "endTime": end, "result": {}}
        if item.get("status") in FAILED_STATUSES or item.get("severity") == "error":
            after["error"] = {"name": "Error", "message": item["message"]}
        yield after
    for event in events_of(run, types=["console.message"]).iterator(chunk_size=500):
        data = event.data if isinstance(event.data, dict) else {}
        yield {
            "type": "console",
            "time": _ms(run, event.time),
            "pageId": event.page_id,
            "messageType": str(data.get("level") or "log"),
            "text": str(data.get("text") or ""),
            "args": [],
            "location": {"url": str(data.get("url") or ""), "lineNumber": 0, "columnNumber": 0},
        }


def trace_chunks(
    run: Run, frames: Iterable[ScreencastFrame] = (), *, named: bool = True
) -> Iterator[bytes]:
    """The trace.zip in pieces. `named`: whether it says the run's name and id (a lease's
    viewer is not told them)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        shown: list[dict[str, Any]] = []  # the frames' lines: small, the pictures are not
        for frame in frames:
            name = hashlib.sha1(frame.jpeg, usedforsecurity=False).hexdigest() + ".jpeg"
            archive.writestr(f"resources/{name}", frame.jpeg, zipfile.ZIP_STORED)
            shown.append(
                {
                    "type": "screencast-frame",
                    "pageId": frame.page_id,
                    "sha1": name,
                    "width": frame.width,
                    "height": frame.height,
                    "timestamp": _ms(run, frame.time),
                    "frameSwapWallTime": frame.time.timestamp() * 1000,
                }
            )
            yield sink.take()
        with archive.open("trace.trace", "w") as trace:
            for line in _lines(run, named):
                trace.write(orjson.dumps(line) + b"\n")
                yield sink.take()
            for line in shown:
                trace.write(orjson.dumps(line) + b"\n")
            yield sink.take()
        with archive.open("trace.network", "w") as network:
            for entry in har_entries(run):
                started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
                snapshot = {**entry, "_monotonicTime": _ms(run, started)}
                network.write(orjson.dumps({"type": "resource-snapshot", "snapshot": snapshot}))
                network.write(b"\n")
                yield sink.take()
    yield sink.take()
