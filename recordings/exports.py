"""The self-contained replay file: one HTML file with the replay player (static/js/
replay.js and rrweb's player, inlined), its CSS, the run's activity and inspector rows and
every tab's processed chunks in base64, which plays from file:// with no network
(static/js/replay-offline.js answers the player's fetches from the file).

The file goes out as a stream: the page around the chunks is rendered once (small), and
each tab's chunk file is read and encoded READ_BYTES at a time, so a 2-hour recording is
never held in memory. Its size is known before a byte is read (base64 of known file
sizes), for HEAD and Content-Length. Inputs were masked when they were recorded; the file
holds the same events the replay page plays.
"""

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

import orjson
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils.html import escape

from recordings.inspector import SECTIONS, inspector_data
from recordings.models import Recording, RecordingTarget
from recordings.selectors import latest_recording_of, targets_of
from recordings.storage import recording_files
from recordings.views import ReplayUrls, manifest_data, shown_to_viewer
from runs.errors import Conflict
from runs.models import Run

OFFLINE = "bctrl-offline:"
CHUNKS_MARK = "<!--bctrl-offline-chunks-->"
READ_BYTES = 3 * 64 * 1024  # a multiple of 3: the base64 of each read joins up
CONTENT_TYPE = "text/html; charset=utf-8"
# The panels a replay file shows: all of them, unless a viewer's lease shows fewer.
ALL_TABS = ("activity", *SECTIONS)
# A viewer's download is not named after the run: the viewer is not told its id.
VIEWER_FILENAME = "replay.html"
STYLES = ("css/dashboard.css", "css/embed.css", "vendor/rrweb/dist/style.css", "css/replay.css")


@cache
def _static(path: str) -> str:
    found = finders.find(path)
    if not found:
        raise FileNotFoundError(path)
    return Path(str(found)).read_text(encoding="utf-8")


def _script(path: str) -> str:
    return _static(path).replace("</script", "<\\/script")


def _json(data: object) -> str:
    # Inside <script>: no "<" at all, so no "</script>" nor "<!--" in recorded text.
    return orjson.dumps(data).decode().replace("<", "\\u003c")


@dataclass(frozen=True)
class ReplayFile:
    recording: Recording
    head: bytes
    tail: bytes
    targets: list[tuple[RecordingTarget, int, bytes, bytes]]  # target, file size, open, close

    @property
    def size(self) -> int:
        encoded = sum(4 * ((size + 2) // 3) + len(a) + len(b) for _, size, a, b in self.targets)
        return len(self.head) + encoded + len(self.tail)

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        files = recording_files(self.recording)
        for target, _, opening, closing in self.targets:
            yield opening
            with files.open(target.path) as handle:
                while block := handle.read(READ_BYTES):
                    yield base64.b64encode(block)
            yield closing
        yield self.tail


def replay_filename(run: Run) -> str:
    return f"{run.id}-replay.html"


def replay_check(run: Run) -> None:
    """409 when the run has no processed recording to put in a replay file."""
    recording = latest_recording_of(run)
    if recording is None or not targets_of(recording).exclude(path="").exists():
        raise Conflict(
            "This run has no processed recording to save: a recording is processed once "
            "its run ends.",
            code="recording.not_ready",
        )


def replay_file(
    run: Run, *, tabs: Sequence[str] = ALL_TABS, for_viewer: bool = False
) -> ReplayFile:
    """The run's replay file, ready to stream; 409 when its recording is not processed.

    `tabs`: the panels beside the player (activity, and the inspector's sections), and the
    only records of the run besides its recording that the file holds. `for_viewer`: for
    a lease's viewer, who sees the recording and not the names and ids of the space's
    records (recordings.views.shown_to_viewer).
    """
    replay_check(run)
    recording = latest_recording_of(run)
    urls = ReplayUrls(chunks=lambda target: f"{OFFLINE}chunks/{quote(target, safe='')}", live=str)
    manifest = manifest_data(run, urls)
    if recording is None or manifest["mode"] != "chunks":
        raise Conflict("This run's recording is not ready to save.", code="recording.not_ready")
    if for_viewer:
        manifest = shown_to_viewer(manifest, activity="activity" in tabs)
    elif "activity" not in tabs:
        manifest["activity"] = []
    sections = [section for section in SECTIONS if section in tabs]
    page = render_to_string(
        "replay/offline.html",
        {
            "run": run,
            "named": not for_viewer,
            "show_activity": bool(tabs),
            "css": "\n".join(_static(path) for path in STYLES),
            "manifest": _json(manifest),
            "inspector": _json(inspector_data(run, sections)),
            "inspector_tabs": [tab for tab in ALL_TABS if tab in tabs],
            "offline_js": _script("js/replay-offline.js"),
            "rrweb_js": _script("vendor/rrweb/umd/rrweb.min.js"),
            "replay_js": _script("js/replay.js"),
        },
    )
    head, tail = page.split(CHUNKS_MARK, 1)
    targets = []
    files = recording_files(recording)
    for target in targets_of(recording).exclude(path=""):
        with files.open(target.path) as handle:
            size = handle.size
        name = escape(target.target)
        opening = f'<script type="application/octet-stream" data-offline-chunks="{name}">'
        targets.append((target, size, opening.encode(), b"</script>\n"))
    return ReplayFile(recording, head.encode(), tail.encode(), targets)
