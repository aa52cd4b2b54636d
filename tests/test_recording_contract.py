"""The recording format (recordings/rrweb.py) holds across the two languages that use it:
processing writes a small recording's chunk files and their ChunkIndex, and the replay
page's own index-reading code (static/js/replay.js, its "Recording format" functions, run
in Node) finds in the manifest and the chunk files the chunks and events that were
recorded."""

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from recordings.chunking import CHUNK_MIN_MS
from recordings.models import Recording
from recordings.processing import recording_process
from recordings.rrweb import EventType, IncrementalSource, MouseInteraction
from recordings.services import batch_ingest, recording_stop
from runs.models import Run
from runs.services import run_create

from .conftest import Tenant, started_at_ms

T0 = 1_700_000_000_000
HREF = "https://shop.example/"

# Loads replay.js as the page would (it stops where it looks for its player element) and
# reads every target of the manifest (stdin) with the functions the player reads it with.
READ_WITH_REPLAY_JS = r"""
const fs = require("fs");
const vm = require("vm");
const context = vm.createContext({
  document: { querySelector: () => null },
  Blob,
  Response,
  DecompressionStream,
});
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context, { filename: "replay.js" });
const format = context.bctrlRecordingFormat;
const input = JSON.parse(fs.readFileSync(0, "utf8"));

async function readTarget(target) {
  const file = new Blob([Buffer.from(input.files[target.id] || "", "base64")]);
  const chunks = format.chunksOf(target);
  const read = [];
  for (const chunk of chunks) {
    const { first, last } = format.byteRange(chunk);
    read.push({
      at: [format.chunkAt(chunks, chunk.start), format.chunkAt(chunks, chunk.end)],
      range: [first, last],
      events: await format.inflate(file.slice(first, last + 1)),
    });
  }
  return {
    chunks: read,
    markers: format.markersOf(target),
    inactivity: format.inactivityOf(target),
    pages: format.pagesOf(target),
  };
}

(async () => {
  const targets = {};
  for (const target of input.manifest.targets) targets[target.id] = await readTarget(target);
  process.stdout.write(JSON.stringify({ eventType: format.EventType, targets }));
})().catch((error) => {
  process.stderr.write(String((error && error.stack) || error));
  process.exit(1);
});
"""


def read_with_replay_js(manifest: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    replay_js = Path(settings.BASE_DIR) / "static" / "js" / "replay.js"
    stdin = {
        "manifest": manifest,
        "files": {target: base64.b64encode(data).decode() for target, data in files.items()},
    }
    done = subprocess.run(
        ["node", "-e", READ_WITH_REPLAY_JS, str(replay_js)],
        input=json.dumps(stdin).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


# --- A small recording, in rrweb's numbers as recordings.rrweb states them ----------------


def page_start(ts: int, href: str = HREF) -> list[dict[str, Any]]:
    """A Meta and a FullSnapshot, as rrweb emits them at its start and at every checkout."""
    body = {"type": 2, "tagName": "body", "attributes": {}, "childNodes": [], "id": 3}
    html = {"type": 2, "tagName": "html", "attributes": {}, "childNodes": [body], "id": 2}
    return [
        {
            "type": int(EventType.Meta),
            "timestamp": ts,
            "data": {"href": href, "width": 1280, "height": 720},
        },
        {
            "type": int(EventType.FullSnapshot),
            "timestamp": ts + 1,
            "data": {
                "node": {"type": 0, "childNodes": [html], "id": 1},
                "initialOffset": {"left": 0, "top": 0},
            },
        },
    ]


def incremental(ts: int, source: IncrementalSource, **data: Any) -> dict[str, Any]:
    return {
        "type": int(EventType.IncrementalSnapshot),
        "timestamp": ts,
        "data": {"source": int(source), **data},
    }


def mutation(ts: int, n: int) -> dict[str, Any]:
    attributes = [{"id": 3, "attributes": {"data-n": str(n)}}]
    return incremental(
        ts, IncrementalSource.Mutation, texts=[], attributes=attributes, removes=[], adds=[]
    )


def click(ts: int) -> dict[str, Any]:
    return incremental(
        ts, IncrementalSource.MouseInteraction, type=int(MouseInteraction.Click), id=3, x=1, y=2
    )


def checkout_every(every_ms: int, count: int, start: int) -> list[dict[str, Any]]:
    """`count` chunks' worth of events: a checkout, then a mutation and a click."""
    events = []
    for n in range(count):
        at = start + n * every_ms
        events += [*page_start(at, f"{HREF}{n}"), mutation(at + 500, n), click(at + 1000)]
    return events


@pytest.fixture(autouse=True)
def _own_media_root(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "files")


@pytest.fixture
def member_client(client: Client, member: Any) -> Client:
    client.force_login(member)
    return client


def test_the_replay_player_finds_the_chunks_that_processing_wrote(
    tenant: Tenant, member_client: Client
) -> None:
    run: Run = started_at_ms(run_create(space=tenant.space), T0 - 60_000)
    recorded = {
        "page-a": checkout_every(CHUNK_MIN_MS + 1000, 3, T0),
        "page-b": checkout_every(CHUNK_MIN_MS + 1000, 1, T0 + 2000),
        "page-c": [mutation(T0 + 100, 0)],  # no snapshot: unplayable, an empty index
    }
    for target, events in recorded.items():
        batch_ingest(run=run, target=target, seq=0, events=events)
    recording = recording_stop(recording=Recording.objects.get(run=run))
    recording_process(recording_id=recording.id)
    stored = {row.target: row for row in recording.targets.all()}
    assert len(stored["page-a"].index["chunks"]) == 3

    # What the replay page fetches: its manifest, and each tab's chunk file.
    manifest = member_client.get(f"/runs/{run.id}/replay/manifest").json()
    files = {}
    for target in manifest["targets"]:
        if target["chunksUrl"]:
            answer = member_client.get(target["chunksUrl"])
            files[target["id"]] = b"".join(answer.streaming_content)  # type: ignore[attr-defined]
    read = read_with_replay_js(manifest, files)

    assert read["eventType"] == {name: EventType[name] for name in read["eventType"]}
    assert set(read["targets"]) == set(recorded)
    for target in ["page-a", "page-b"]:
        index = stored[target].index
        chunks = read["targets"][target]["chunks"]
        assert len(chunks) == len(index["chunks"])
        for position, (chunk, written) in enumerate(zip(chunks, index["chunks"], strict=True)):
            assert chunk["at"] == [position, position]  # its start and end are in it
            assert chunk["range"] == [written["offset"], written["offset"] + written["length"] - 1]
            events = chunk["events"]
            assert len(events) == written["events"]
            assert [event["type"] for event in events[:2]] == [
                EventType.Meta,
                EventType.FullSnapshot,
            ]
            assert (events[0]["timestamp"], events[-1]["timestamp"]) == (
                written["start"],
                written["end"],
            )
        assert [event for chunk in chunks for event in chunk["events"]] == recorded[target]
        assert read["targets"][target]["markers"] == index["markers"]
        assert [marker["kind"] for marker in index["markers"]].count("click") == len(chunks)
        assert read["targets"][target]["inactivity"] == index["inactivity"]
        assert read["targets"][target]["pages"] == index["pages"]
    assert stored["page-c"].index == {}
    assert read["targets"]["page-c"] == {"chunks": [], "markers": [], "inactivity": [], "pages": []}
