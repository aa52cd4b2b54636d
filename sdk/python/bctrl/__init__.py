"""The Python client of bctrl: `Bctrl` and `AsyncBctrl`, typed answers, one error tree.

from bctrl import Bctrl

client = Bctrl()  # BCTRL_API_KEY and BCTRL_BASE_URL
for run in client.runs.list(status="running"):
    print(run.id, run.usage.event_count if run.usage else 0)
"""

from bctrl._base import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, CallOptions
from bctrl._client import AsyncBctrl, Bctrl
from bctrl._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BctrlError,
    ConflictError,
    InternalServerError,
    NoActiveRunError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from bctrl._models import (
    ActivityItem,
    ActivityList,
    Artifact,
    Command,
    Event,
    EventsAppended,
    Export,
    Handoff,
    Lease,
    LiveViewer,
    Profile,
    Recording,
    RecordingBatchResult,
    RecordingDownload,
    RecordingSync,
    RecordingVideo,
    RecordingViewer,
    RuntimeFile,
    RuntimeStarted,
    Space,
    Upstream,
    Usage,
    WaitResult,
)
from bctrl._pagination import AsyncOffsetPage, AsyncPage, OffsetPage, Page
from bctrl._resources import Run, Runtime

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ActivityItem",
    "ActivityList",
    "Artifact",
    "AsyncBctrl",
    "AsyncOffsetPage",
    "AsyncPage",
    "AuthenticationError",
    "BadRequestError",
    "Bctrl",
    "BctrlError",
    "CallOptions",
    "Command",
    "ConflictError",
    "Event",
    "EventsAppended",
    "Export",
    "Handoff",
    "InternalServerError",
    "Lease",
    "LiveViewer",
    "NoActiveRunError",
    "NotFoundError",
    "OffsetPage",
    "Page",
    "PermissionDeniedError",
    "Profile",
    "RateLimitError",
    "Recording",
    "RecordingBatchResult",
    "RecordingDownload",
    "RecordingSync",
    "RecordingVideo",
    "RecordingViewer",
    "Run",
    "Runtime",
    "RuntimeFile",
    "RuntimeStarted",
    "Space",
    "UnprocessableEntityError",
    "Upstream",
    "Usage",
    "WaitResult",
]
