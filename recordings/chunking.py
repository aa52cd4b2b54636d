"""From one target's rrweb events to its replay chunks and index: each step one function,
pure (no database, no storage), which recordings.processing runs per target.

Per target (batches grouped by target, ordered by seq)
------------------------------------------------------
1. Read every batch file (gzip → orjson). A batch whose file is missing or unreadable is
   treated as missing; any other storage error is raised (the attempt is retried).
2. Gaps: seqs missing between the lowest and highest seq, and the seqs below the lowest
   one when it is above 1 (recorders number batches from 0 or from 1, so a target that
   starts at 1 is complete, and one that starts at 3 is missing 1 and 2). Stored in
   `Recording.gaps` as `[{"target", "missing": [seq, …]}]`, never hidden; an
   `"unreadable": [seq, …]` list is added for batches whose file could not be read.
3. Concatenate, stable sort by timestamp, drop exact repeats (same type, timestamp and
   data, compared by a digest of their orjson bytes among events of equal timestamp:
   recorders re-send a batch after a timeout).
4. Playable start: the stream must begin with a Meta event immediately followed by a
   FullSnapshot. Events before the first such pair are dropped when the pair comes at most
   LEADING_DROP_MAX_MS after the first event (rrweb's DomContentLoaded/Load events, or a
   few events flushed just before the recorder's first snapshot); otherwise the target is
   not playable and `problem` says why (e.g. "no full snapshot before the first
   incremental event"). A target is never played blank.
5. Chunks: a new chunk starts at a Meta+FullSnapshot pair that occurs in the stream
   (rrweb's `checkoutEveryNms`; nothing is synthesized), but only once the current chunk
   is at least CHUNK_MIN_MS long or holds CHUNK_MIN_EVENTS events. Each chunk is the
   orjson JSON array of its events compressed as one gzip member; all chunks of a target
   are concatenated in one file `recordings/<rec_id>/targets/<target>.chunks.gz`.
6. Index (`RecordingTarget.index`, the contract with the replay player): a
   `recordings.rrweb.ChunkIndex` of chunks, markers, inactivity and pages, whose types
   state its keys; times are rrweb's epoch ms. A chunk's `start`/`end` are its first and
   last event's timestamps; `offset`/`length` its byte range in the file. Markers
   (sorted by time, at most MAX_MARKERS): kinds `navigation` (a Meta whose href differs
   from the previous one; label the href), `click` ("Click" / "Double-click"), `input`
   (one per burst of Input events on one node, each at most INPUT_BURST_GAP_MS after the
   previous; "Input" or "Input (N changes)", never the text), `custom` (the tag), and
   from the run's Events of this page
   (`Event.page_id == target`, times within the target's span): `console.error`
   (console errors and page errors) and `network.failed`. Inactivity: spans longer than
   INACTIVITY_MIN_MS without mutations or user interaction (from the target's start and
   up to its end included). Pages (`target_pages`): one per full snapshot that shows
   another URL, title or favicon than the one before; the player names the tab by the
   page at the playhead.
"""

import gzip
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from recordings.rrweb import (
    ChunkEntry,
    EventType,
    InactivityPeriod,
    IncrementalSource,
    Marker,
    MarkerKind,
    MouseInteraction,
    NodeType,
    Page,
)

# Chunking. A new chunk starts at a natural Meta+FullSnapshot only once the current one is
# this long or this big. A 2 h recording (~1 M events, ~140 events/s) with a checkout every
# 10 s gets a chunk per checkout: ~720 chunks of ~1,400 events, i.e. a few hundred KB of
# raw JSON each (one full snapshot plus 10 s of incremental events).
CHUNK_MIN_MS = 5_000
CHUNK_MIN_EVENTS = 2_000
GZIP_LEVEL = 9  # 9.3x smaller than the raw JSON on the 2 h benchmark recording; 6: 8.7x

# Events before the first Meta+FullSnapshot are dropped if the pair follows this soon.
LEADING_DROP_MAX_MS = 1_000

# Markers and inactivity.
INPUT_BURST_GAP_MS = 5_000
INACTIVITY_MIN_MS = 5_000
MAX_MARKERS = 10_000
LABEL_MAX = 200
MAX_PAGES = 1_000
PAGE_ICON_MAX = 2_000  # a favicon URL longer than this (a big data: URL) is left out

# Sweeps.
# The rrweb numbers that the loops over every event compare, as plain ints: an enum
# member costs about three times as much to look up and compare (on a million events,
# markers, inactivity, pages and chunk starts took 1.7 s instead of 0.9 s).
META = int(EventType.Meta)
FULL_SNAPSHOT = int(EventType.FullSnapshot)
INCREMENTAL = int(EventType.IncrementalSnapshot)
CUSTOM = int(EventType.Custom)
SOURCE_MOUSE_INTERACTION = int(IncrementalSource.MouseInteraction)
SOURCE_INPUT = int(IncrementalSource.Input)
# What counts as activity for inactivity periods: mutations and user interaction.
ACTIVE_SOURCES = frozenset(
    int(source)
    for source in (
        IncrementalSource.Mutation,
        IncrementalSource.MouseMove,
        IncrementalSource.MouseInteraction,
        IncrementalSource.Scroll,
        IncrementalSource.ViewportResize,
        IncrementalSource.Input,
        IncrementalSource.TouchMove,
        IncrementalSource.MediaInteraction,
        IncrementalSource.Drag,
    )
)


def is_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and type(event.get("type")) is int
        and type(event.get("timestamp")) in (int, float)
        and isinstance(event.get("data"), dict)
    )


def missing_seqs(seqs: Sequence[int]) -> list[int]:
    """Seqs missing from a target's batches: holes, and the start when it is above 1."""
    if not seqs:
        return []
    present = set(seqs)
    first = min(1, min(present))
    return [seq for seq in range(first, max(present) + 1) if seq not in present]


def sort_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by timestamp: events with the same timestamp keep their arrival order."""
    events.sort(key=lambda event: event["timestamp"])
    return events


def dedup_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drops exact repeats; only events of equal timestamp are compared (and hashed)."""
    kept: list[dict[str, Any]] = []
    for _, group in itertools.groupby(events, key=lambda event: event["timestamp"]):
        same_time = list(group)
        if len(same_time) == 1:
            kept.append(same_time[0])
            continue
        seen: set[bytes] = set()
        for event in same_time:
            digest = hashlib.blake2b(
                orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16
            ).digest()
            if digest not in seen:
                seen.add(digest)
                kept.append(event)
    return kept


def _is_snapshot_start(events: Sequence[dict[str, Any]], position: int) -> bool:
    return (
        events[position]["type"] == META
        and position + 1 < len(events)
        and events[position + 1]["type"] == FULL_SNAPSHOT
    )


def playable_start(events: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """(position of the Meta+FullSnapshot the replay starts at, "") or (0, the problem)."""
    if not events:
        return 0, "no readable events"
    first = next((i for i in range(len(events)) if _is_snapshot_start(events, i)), None)
    if first is None:
        if not any(event["type"] == FULL_SNAPSHOT for event in events):
            return 0, f"no full snapshot in {len(events)} events"
        if not any(event["type"] == META for event in events):
            return 0, "no Meta event before the full snapshot"
        return 0, "no Meta event immediately followed by a full snapshot"
    if first == 0:
        return 0, ""
    late_ms = event_ms(events[first]) - event_ms(events[0])
    if late_ms <= LEADING_DROP_MAX_MS:
        return first, ""
    leading = events[:first]
    what = (
        "the first incremental event"
        if any(event["type"] == INCREMENTAL for event in leading)
        else f"the first {len(leading)} events"
    )
    return 0, (
        f"no full snapshot before {what} (the first Meta and full snapshot come "
        f"{late_ms / 1000:.1f} s after the first event)"
    )


def chunk_starts(events: Sequence[dict[str, Any]]) -> list[int]:
    """Where each chunk begins: the first event, then natural Meta+FullSnapshot pairs once
    the current chunk holds CHUNK_MIN_EVENTS events or spans CHUNK_MIN_MS."""
    starts = [0]
    for position in range(1, len(events) - 1):
        if not _is_snapshot_start(events, position):
            continue
        begin = starts[-1]
        long_enough = event_ms(events[position]) - event_ms(events[begin]) >= CHUNK_MIN_MS
        if long_enough or position - begin >= CHUNK_MIN_EVENTS:
            starts.append(position)
    return starts


def write_chunks(events: Sequence[dict[str, Any]], out: Any) -> list[ChunkEntry]:
    """Writes each chunk as one gzip member to `out`; returns the index's chunk entries."""
    starts = chunk_starts(events)
    chunks: list[ChunkEntry] = []
    offset = 0
    for begin, stop in itertools.pairwise([*starts, len(events)]):
        part = events[begin:stop]
        member = gzip.compress(orjson.dumps(part), compresslevel=GZIP_LEVEL, mtime=0)
        out.write(member)
        chunks.append(
            {
                "start": event_ms(part[0]),
                "end": event_ms(part[-1]),
                "offset": offset,
                "length": len(member),
                "events": len(part),
            }
        )
        offset += len(member)
    return chunks


def _label(text: Any) -> str:
    label = " ".join(str(text).split())
    return label if len(label) <= LABEL_MAX else label[: LABEL_MAX - 1] + "…"


# The custom event a hosted page's recorder adds when its run stops (static/js/recorder.js),
# so a page that stood still until then still spans its whole time on the timeline.
END_TAG = "bctrl.end"


def make_marker(time: int, kind: MarkerKind, label: Any) -> Marker:
    return {"time": time, "kind": kind, "label": _label(label)}


def rrweb_markers(events: Iterable[dict[str, Any]]) -> list[Marker]:
    """Navigation (a Meta whose href differs from the previous Meta's), click and
    double-click, one marker per burst of Input events on one node (never its text),
    custom events (their tag)."""
    markers: list[Marker] = []
    href: str | None = None
    burst: dict[str, Any] | None = None  # {"node", "last", "count", "marker"}
    for event in events:
        kind, data, time = event["type"], event["data"], event_ms(event)
        if kind == META:
            new_href = data.get("href")
            if href is not None and new_href and new_href != href:
                markers.append(make_marker(time, "navigation", new_href))
            href = new_href or href
        elif kind == CUSTOM:
            if data.get("tag") != END_TAG:
                markers.append(make_marker(time, "custom", data.get("tag") or "custom event"))
        elif kind != INCREMENTAL:
            continue
        elif data.get("source") == SOURCE_MOUSE_INTERACTION:
            if data.get("type") == MouseInteraction.Click:
                markers.append(make_marker(time, "click", "Click"))
            elif data.get("type") == MouseInteraction.DblClick:
                markers.append(make_marker(time, "click", "Double-click"))
        elif data.get("source") == SOURCE_INPUT:
            node = data.get("id")
            if burst and burst["node"] == node and time - burst["last"] <= INPUT_BURST_GAP_MS:
                burst["last"] = time
                burst["count"] += 1
                burst["marker"]["label"] = f"Input ({burst['count']} changes)"
            else:
                marker = make_marker(time, "input", "Input")
                markers.append(marker)
                burst = {"node": node, "last": time, "count": 1, "marker": marker}
    return markers


def _element_children(node: Any, tag: str) -> Iterable[dict[str, Any]]:
    for child in (node or {}).get("childNodes") or []:
        if (
            isinstance(child, dict)
            and child.get("type") == NodeType.Element
            and child.get("tagName") == tag
        ):
            yield child


def _snapshot_head(node: Any) -> dict[str, Any] | None:
    for html in _element_children(node, "html"):
        for head in _element_children(html, "head"):
            return head
    return None


def snapshot_page(node: Any) -> tuple[str, str]:
    """(title, favicon URL) of an rrweb full snapshot's document: the text of its
    `<head><title>` and the href of its first `<link rel="icon">` (or "shortcut icon");
    "" when it has none."""
    head = _snapshot_head(node)
    title = icon = ""
    for child in (head or {}).get("childNodes") or []:
        if not isinstance(child, dict) or child.get("type") != NodeType.Element:
            continue
        attributes = child.get("attributes") or {}
        if child.get("tagName") == "title" and not title:
            title = " ".join(
                str(text.get("textContent") or "")
                for text in child.get("childNodes") or []
                if isinstance(text, dict) and text.get("type") == NodeType.Text
            )
        elif child.get("tagName") == "link" and not icon:
            rel = str(attributes.get("rel") or "").lower().split()
            if "icon" in rel and isinstance(attributes.get("href"), str):
                icon = attributes["href"]
    return " ".join(title.split())[:LABEL_MAX], icon if len(icon) <= PAGE_ICON_MAX else ""


def target_pages(events: Iterable[dict[str, Any]]) -> list[Page]:
    """The pages a target showed, from its full snapshots: `{"time", "url", "title",
    "icon"}` for each snapshot whose url, title or icon differs from the previous one
    (at most MAX_PAGES). The player names its tabs by them."""
    pages: list[Page] = []
    href = ""
    for event in events:
        if event["type"] == META:
            href = str(event["data"].get("href") or "")[:PAGE_ICON_MAX]
        elif event["type"] == FULL_SNAPSHOT:
            title, icon = snapshot_page(event["data"].get("node"))
            page: Page = {"time": event_ms(event), "url": href, "title": title, "icon": icon}
            last = pages[-1] if pages else None
            if last is None or (last["url"], last["title"], last["icon"]) != (href, title, icon):
                pages.append(page)
                if len(pages) >= MAX_PAGES:
                    break
    return pages


def inactivity_periods(events: Sequence[dict[str, Any]]) -> list[InactivityPeriod]:
    """Spans longer than INACTIVITY_MIN_MS without user interaction or mutation (a
    navigation counts as activity; periodic checkout snapshots do not)."""
    if not events:
        return []
    periods: list[InactivityPeriod] = []
    start, end = event_ms(events[0]), event_ms(events[-1])
    previous = start
    href = None
    for event in events:
        kind, data = event["type"], event["data"]
        navigated = kind == META and href is not None and data.get("href") != href
        if kind == META:
            href = data.get("href")
        if not navigated and not (kind == INCREMENTAL and data.get("source") in ACTIVE_SOURCES):
            continue
        time = event_ms(event)
        if time - previous > INACTIVITY_MIN_MS:
            periods.append({"start": previous, "end": time})
        previous = max(previous, time)
    if end - previous > INACTIVITY_MIN_MS:
        periods.append({"start": previous, "end": end})
    return periods


def event_ms(event: dict[str, Any]) -> int:
    return int(event["timestamp"])
