"""The calls of both clients, grouped by resource as the API is: one module per family,
holding the synchronous class (`Runs`, what `Bctrl` has) and the asynchronous one
(`AsyncRuns`, what `AsyncBctrl` has) side by side, with what they share (a body, a
query, how an answer is read, how a wait is paced) written once above them. The two
differ only in their I/O: a change to a call is made in one place and seen in both.

client.runtimes.create/retrieve/list/iter/start/stop/current_run      runtimes
client.runs.retrieve/list/iter/create/stop/screenshot/live/recording  runs
client.runs.events.list/iter/append/stream/wait                       events
client.runs.commands.list/iter/create                                 events
client.runs.activity.list/stream                                      activity
client.runs.artifacts.list/iter/upload/download                       files
client.runs.files.list/iter/export/retrieve_export/download_export    files
client.runs.handoffs.create/retrieve/wait/list/complete/cancel        handoffs
client.runs.leases.list/iter          client.leases.revoke            viewers
client.runs.recording_events.ingest, client.recordings, client.rooms  recordings
client.spaces.retrieve/update, .upstream, client.profiles             spaces
"""

from bctrl._base import joined
from bctrl._resources.activity import Activity, AsyncActivity, AsyncRunActivity, RunActivity
from bctrl._resources.events import (
    AsyncCommands,
    AsyncEvents,
    AsyncRunCommands,
    AsyncRunEvents,
    Commands,
    Events,
    RunCommands,
    RunEvents,
)
from bctrl._resources.files import (
    EXPORT_POLL_S,
    Artifacts,
    AsyncArtifacts,
    AsyncFiles,
    AsyncRunArtifacts,
    AsyncRunFiles,
    Files,
    Progress,
    RunArtifacts,
    RunFiles,
    file_form,
)
from bctrl._resources.handoffs import HANDOFF_WAIT_MAX_MS, AsyncHandoffs, Handoffs, handoff_body
from bctrl._resources.recordings import (
    AsyncRecordingEvents,
    AsyncRecordings,
    AsyncRoomRecordings,
    AsyncRooms,
    RecordingEvents,
    Recordings,
    RoomRecordings,
    Rooms,
)
from bctrl._resources.runs import AsyncRun, AsyncRuns, Run, Runs
from bctrl._resources.runtimes import (
    START_TIMEOUT_S,
    AsyncRuntime,
    AsyncRuntimes,
    Runtime,
    Runtimes,
    start_body,
)
from bctrl._resources.spaces import (
    AsyncProfiles,
    AsyncSpaces,
    AsyncSpaceUpstream,
    Profiles,
    Spaces,
    SpaceUpstream,
)
from bctrl._resources.viewers import AsyncLeaseActions, AsyncLeases, LeaseActions, Leases
from bctrl._sse import sse_timeout

__all__ = [
    "EXPORT_POLL_S",
    "HANDOFF_WAIT_MAX_MS",
    "START_TIMEOUT_S",
    "Activity",
    "Artifacts",
    "AsyncActivity",
    "AsyncArtifacts",
    "AsyncCommands",
    "AsyncEvents",
    "AsyncFiles",
    "AsyncHandoffs",
    "AsyncLeaseActions",
    "AsyncLeases",
    "AsyncProfiles",
    "AsyncRecordingEvents",
    "AsyncRecordings",
    "AsyncRoomRecordings",
    "AsyncRooms",
    "AsyncRun",
    "AsyncRunActivity",
    "AsyncRunArtifacts",
    "AsyncRunCommands",
    "AsyncRunEvents",
    "AsyncRunFiles",
    "AsyncRuns",
    "AsyncRuntime",
    "AsyncRuntimes",
    "AsyncSpaceUpstream",
    "AsyncSpaces",
    "Commands",
    "Events",
    "Files",
    "Handoffs",
    "LeaseActions",
    "Leases",
    "Profiles",
    "Progress",
    "RecordingEvents",
    "Recordings",
    "RoomRecordings",
    "Rooms",
    "Run",
    "RunActivity",
    "RunArtifacts",
    "RunCommands",
    "RunEvents",
    "RunFiles",
    "Runs",
    "Runtime",
    "Runtimes",
    "SpaceUpstream",
    "Spaces",
    "file_form",
    "handoff_body",
    "joined",
    "sse_timeout",
    "start_body",
]
