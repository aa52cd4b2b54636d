"""Typed answers of the API: dataclasses built from its camelCase JSON.

Each model keeps the JSON it was built from in `.raw` (fields added to the API later are
there before the client knows them), and `model["camelCaseKey"]` reads it.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar, Union

__all__ = [
    "ActivityItem",
    "ActivityList",
    "Artifact",
    "Command",
    "Event",
    "EventsAppended",
    "Export",
    "Handoff",
    "Lease",
    "LiveViewer",
    "Model",
    "Profile",
    "Recording",
    "RecordingBatchResult",
    "RecordingDownload",
    "RecordingSummary",
    "RecordingSync",
    "RecordingVideo",
    "RecordingViewer",
    "RunData",
    "RuntimeData",
    "RuntimeFile",
    "RuntimeStarted",
    "Space",
    "Upstream",
    "Usage",
    "WaitResult",
]

M = TypeVar("M", bound="Model")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Model:
    """Base of the answers: `from_json` fills the fields from the JSON's camelCase keys."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    # Field name → JSON key, where the key is not simply the field's camelCase.
    json_keys: ClassVar[dict[str, str]] = {}
    # "snake" for the answers that keep snake_case keys (seed 004's recordings API).
    json_case: ClassVar[str] = "camel"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for name, kind in _field_types(cls).items():
            key = cls.json_keys.get(name, name if cls.json_case == "snake" else camel(name))
            if key in raw:
                values[name] = _convert(kind, raw[key])
        return cls(**values, raw=raw)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def to_dict(self) -> dict[str, Any]:
        """The JSON the server answered."""
        return dict(self.raw)


_FIELD_TYPES: dict[type[Model], dict[str, Any]] = {}


def _field_types(cls: type[Model]) -> dict[str, Any]:
    """The JSON fields of a model and their types (each annotation evaluated in the module
    of the class that declares it; private attributes such as a run's client are skipped)."""
    known = _FIELD_TYPES.get(cls)
    if known is None:
        known = {}
        for f in dataclasses.fields(cls):
            if not f.init or f.name == "raw":
                continue
            owner = next(c for c in cls.__mro__ if f.name in inspect.get_annotations(c))
            namespace = vars(sys.modules[owner.__module__])
            known[f.name] = eval(f.type, namespace) if isinstance(f.type, str) else f.type  # noqa: S307 (our own annotations)
        _FIELD_TYPES[cls] = known
    return known


def _model_of(kind: Any) -> type[Model] | None:
    return kind if isinstance(kind, type) and issubclass(kind, Model) else None


def _convert(kind: Any, value: Any) -> Any:
    options = typing.get_args(kind) if typing.get_origin(kind) in (Union, types.UnionType) else ()
    for option in options or (kind,):
        if option is datetime:
            return parse_time(value)
        model = _model_of(option)
        if model is not None:
            return model.from_json(value) if isinstance(value, dict) else None
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option) or (Any,)
            model = _model_of(item)
            if model is not None:
                return [model.from_json(row) for row in value if isinstance(row, dict)]
    return value


# Runtimes ----------------------------------------------------------------------------------


@dataclass
class RuntimeData(Model):
    """A runtime: a browser that runs are recorded in. `Runtime` adds `current_run()`."""

    id: str = ""
    name: str = ""
    status: str = ""
    space_id: str = ""
    active_run_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    failure_reason: str | None = None
    recording: bool | None = None
    keep_alive_ms: int | None = None
    client_count: int | None = None


@dataclass
class RuntimeStarted(Model):
    """A start's answer: give `connect_url` to Playwright's `connect_over_cdp`."""

    connect_url: str = ""
    run_id: str = ""
    runtime_id: str = ""
    status: str = ""


# Runs ----------------------------------------------------------------------------------------


@dataclass
class Usage(Model):
    duration_ms: int | None = None
    command_count: int = 0
    event_count: int = 0
    artifact_count: int = 0
    artifact_bytes: int = 0


@dataclass
class RecordingSummary(Model):
    status: str = ""
    duration_ms: int | None = None


@dataclass
class RunData(Model):
    """A run: what happened while a runtime was active. `Run` adds seed 002's helpers."""

    id: str = ""
    status: str = ""
    name: str = ""
    space_id: str = ""
    runtime_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: Any = None
    labels: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None
    thumbnail_artifact_id: str | None = None
    # The recording's status (`GET /v1/runs/{id}` only); `run.recording()` is its viewer.
    recording_summary: RecordingSummary | None = None

    json_keys: ClassVar[dict[str, str]] = {"recording_summary": "recording"}


@dataclass
class Event(Model):
    seq: int = 0
    type: str = ""
    id: str = ""
    run_id: str = ""
    time: datetime | None = None
    page_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventsAppended(Model):
    accepted: int = 0
    duplicates: int = 0
    next_seq: int = 0


@dataclass
class WaitResult(Model):
    """`events.wait`: the next event, or none (`timed_out`, or `run_ended`)."""

    event: Event | None = None
    timed_out: bool = False
    run_ended: bool = False


@dataclass
class Command(Model):
    id: str = ""
    method: str = ""
    status: str = ""
    run_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    page_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    error: Any = None


@dataclass
class Artifact(Model):
    id: str = ""
    kind: str = ""
    name: str = ""
    run_id: str = ""
    content_type: str = ""
    size: int = 0
    sha256: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    download_url: str = ""


@dataclass
class RuntimeFile(Artifact):
    """A file put where a running browser's file inputs reach it: `path` is what
    Playwright's `set_input_files` and CDP's `DOM.setFileInputFiles` take once `placed`."""

    placed: bool = False
    path: str | None = None


@dataclass
class Profile(Model):
    """A browser profile: whose cookies and storage it keeps (never their values)."""

    id: str = ""
    name: str = ""
    domains: list[str] = field(default_factory=list)
    cookie_count: int = 0
    size: int = 0
    saved_at: datetime | None = None
    saved_by_run_id: str | None = None
    in_use_by_run_id: str | None = None
    created_at: datetime | None = None
    # Retrieved one by one only: per origin, how many local storage items, and each
    # IndexedDB database's name, version and its stores' record counts.
    origins: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Export(Model):
    """A ZIP of a run's files, built by the server: `status` becomes ready or failed."""

    id: str = ""
    status: str = ""
    run_id: str = ""
    name: str = ""
    type: list[str] = field(default_factory=list)
    file_count: int | None = None
    artifact_id: str | None = None
    download_url: str | None = None
    error: Any = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    status_url: str = ""


@dataclass
class ActivityItem(Model):
    """One line of a run's human-readable timeline; `children` are its steps."""

    id: str = ""
    type: str = ""
    message: str = ""
    time: datetime | None = None
    status: str | None = None
    severity: str = "info"
    duration_ms: int | None = None
    children: list[dict[str, Any]] = field(default_factory=list)
    # In a stream: "activity" for a new item, "activity.updated" when it changed.
    event: str = ""


@dataclass
class ActivityList(Model):
    data: list[ActivityItem] = field(default_factory=list)
    truncated: bool = False


@dataclass
class RecordingBatchResult(Model):
    recording_id: str = ""
    target: str = ""
    seq: int = 0
    event_count: int = 0
    duplicate: bool = False


@dataclass
class Handoff(Model):
    """A request for a person to do a step of a run (a 2FA code, a challenge) while the
    automation waits: `status` is open, then completed, expired or cancelled. `live_url`
    (a live viewer with control, for the person) is only in the answer to its creation."""

    id: str = ""
    run_id: str = ""
    status: str = ""
    instructions: str = ""
    notify: bool = True
    requested_by: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    completed_by: str | None = None
    note: str | None = None
    live_url: str | None = None
    live_url_expires_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


# Viewers and leases ------------------------------------------------------------------------


@dataclass
class RecordingVideo(Model):
    """The MP4 of one recorded tab: `url` plays and downloads it (video/mp4, Range
    requests) as long as its viewer URL lasts; it starts at `start_ms` on the replay's
    clock (epoch ms)."""

    target: str = ""
    url: str = ""
    duration_ms: int = 0
    bytes: int = 0
    width: int = 0
    height: int = 0
    start_ms: int | None = None


@dataclass
class RecordingViewer(Model):
    """Seed 000's `run.recording()`: an iframe URL for the replay, valid until `expires_at`,
    and each recorded tab's video once encoded (`videos`, first tab first)."""

    iframe_url: str = ""
    status: str = ""
    duration_ms: int | None = None
    expires_at: datetime | None = None
    activity_stream_url: str | None = None
    videos: list[RecordingVideo] = field(default_factory=list)
    replay_file_url: str | None = None  # the offline replay file, on the same lease
    har_url: str | None = None  # the network log as HAR (a lease with "network")
    trace_url: str | None = None  # the Playwright trace (activity, network and console)


@dataclass
class LiveViewer(Model):
    url: str = ""
    expires_at: datetime | None = None


@dataclass
class Lease(Model):
    id: str = ""
    kind: str = ""
    status: str = ""
    run_id: str = ""
    control: str = ""
    components: list[str] | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    created_by: dict[str, Any] | None = None
    revoked_at: datetime | None = None
    first_used_at: datetime | None = None
    last_used_at: datetime | None = None
    use_count: int = 0


# Spaces ------------------------------------------------------------------------------------


@dataclass
class Space(Model):
    id: str = ""
    name: str = ""
    slug: str = ""
    embed_origins: list[str] = field(default_factory=list)
    recording_retention_days: int | None = None
    created_at: datetime | None = None


@dataclass
class Upstream(Model):
    """A space's upstream Browser Run account (the token itself is never answered)."""

    space_id: str = ""
    configured: bool = False
    base_url: str | None = None
    account_id: str | None = None
    api_token_set: bool = False
    api_token_last_four: str | None = None


# Seed 004's recordings API (/api/v1, snake_case) -----------------------------------------


@dataclass
class Recording(Model):
    """A recording of a room (a runtime) as seed 004's API shows it."""

    json_case: ClassVar[str] = "snake"

    id: str = ""
    status: str = ""
    room_id: str | None = None
    room: dict[str, Any] | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    archived_at: datetime | None = None
    deleted: bool = False
    deleted_at: datetime | None = None
    message: str | None = None


@dataclass
class RecordingDownload(Model):
    """A signed, expiring `download_url` once the recording is ready (else none yet, and
    `message` says why)."""

    json_case: ClassVar[str] = "snake"

    recording_id: str = ""
    status: str = ""
    download_url: str | None = None
    duration: float | None = None
    file_size: int | None = None
    expires_at: datetime | None = None
    message: str | None = None


@dataclass
class RecordingSync(Model):
    json_case: ClassVar[str] = "snake"

    synced_count: int = 0
    recordings: list[Recording] = field(default_factory=list)
