"""bctrl's recording format, stated once: rrweb's numbers, the chunk index, where files live.

Three parties share it: the recorders and the runtime host write rrweb events
(runtime_host/writer.py, recordings/services.py), processing turns them into a target's
chunk file and its index (recordings/processing.py), and the readers serve them: the
replay and chunk views, downloads, the replay file (recordings/views.py, storage.py,
exports.py) and the player in the browser (static/js/replay.js, which reads the index
out of the replay manifest). tests/test_recording_contract.py has processing write an
index and replay.js's own index-reading code find the chunks in it.

This module imports nothing of Django, so the runtime host, benchmarks and tests can
import it without an app registry.

The chunk file of a target (`target_path`) is its chunks, each the JSON array of its
events compressed as one gzip member, concatenated in time order. Every chunk begins
with a Meta event followed by a FullSnapshot, so a player can start at any chunk. The
index (`ChunkIndex`, stored in `RecordingTarget.index`) gives each chunk's byte range in
the file and its time span; times are rrweb's epoch milliseconds.
"""

from enum import IntEnum
from typing import Any, Literal, NotRequired, TypedDict

# --- rrweb's numbers ----------------------------------------------------------------------


class EventType(IntEnum):
    """An rrweb event's `type` (rrweb's EventType). bctrl's recorders emit no others."""

    DomContentLoaded = 0
    Load = 1
    FullSnapshot = 2
    IncrementalSnapshot = 3
    Meta = 4
    Custom = 5
    Plugin = 6


# The `type` values an ingested event may have (a set of plain ints: a batch's events are
# checked one by one, and this is the cheapest lookup).
EVENT_TYPES = frozenset(int(kind) for kind in EventType)


class IncrementalSource(IntEnum):
    """`data.source` of an IncrementalSnapshot event (rrweb's IncrementalSource)."""

    Mutation = 0
    MouseMove = 1
    MouseInteraction = 2
    Scroll = 3
    ViewportResize = 4
    Input = 5
    TouchMove = 6
    MediaInteraction = 7
    StyleSheetRule = 8
    CanvasMutation = 9
    Font = 10
    Log = 11
    Drag = 12
    StyleDeclaration = 13
    Selection = 14
    AdoptedStyleSheet = 15
    CustomElement = 16


class MouseInteraction(IntEnum):
    """`data.type` of a MouseInteraction event (rrweb's MouseInteractions), those bctrl reads."""

    MouseUp = 0
    MouseDown = 1
    Click = 2
    ContextMenu = 3
    DblClick = 4


class NodeType(IntEnum):
    """`type` of a serialized node in a FullSnapshot (rrweb-snapshot's NodeType)."""

    Document = 0
    DocumentType = 1
    Element = 2
    Text = 3
    CDATA = 4
    Comment = 5


# --- The chunk index ----------------------------------------------------------------------


class ChunkEntry(TypedDict):
    """One chunk: the timestamps of its first and last event, its byte range in the
    target's chunk file (one gzip member) and how many events it holds."""

    start: int
    end: int
    offset: int
    length: int
    events: int


MarkerKind = Literal["navigation", "click", "input", "custom", "console.error", "network.failed"]


class Marker(TypedDict):
    """A point on the player's timeline."""

    time: int
    kind: MarkerKind
    label: str


class InactivityPeriod(TypedDict):
    """A span without mutations or user interaction, which the player can skip."""

    start: int
    end: int


class Page(TypedDict):
    """What a full snapshot showed, when it differs from the page before: the player
    names the tab by the page at the playhead."""

    time: int
    url: str
    title: str
    icon: str


class ChunkIndex(TypedDict):
    """`RecordingTarget.index` of a playable target (an unplayable one has `{}`), and the
    `index` of a target in the replay manifest. Chunks and markers are in time order."""

    chunks: list[ChunkEntry]
    markers: list[Marker]
    inactivity: list[InactivityPeriod]
    # Targets processed before pages were kept have none (recordings.views fills them in).
    pages: NotRequired[list[Page]]


def chunk_index_of(stored: Any) -> ChunkIndex:
    """A stored index (`RecordingTarget.index`: `{}` for an unplayable target, no `pages`
    when it was processed before they were kept) with every key present."""
    stored = stored if isinstance(stored, dict) else {}
    return {
        "chunks": stored.get("chunks") or [],
        "markers": stored.get("markers") or [],
        "inactivity": stored.get("inactivity") or [],
        "pages": stored.get("pages") or [],
    }


# --- Where a recording's files live ------------------------------------------------------
# Names in the storage of the recording's tier (recordings.storage): an archive moves the
# files to cold storage under the same names.


def recording_dir(recording_id: str) -> str:
    return f"recordings/{recording_id}"


def batch_path(recording_id: str, target: str, seq: int, digest: str) -> str:
    """A batch as ingested: the gzip of its events' JSON array."""
    return f"{recording_dir(recording_id)}/batches/{target}/{seq:010d}-{digest[:16]}.json.gz"


def target_path(recording_id: str, target: str) -> str:
    """A processed target's chunk file, which its ChunkIndex describes."""
    return f"{recording_dir(recording_id)}/targets/{target}.chunks.gz"
