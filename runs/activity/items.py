"""The items of a timeline: what the builder grows from the records, and their JSON.

`Item` is what every item has (rendered as the API's item, see `Item.as_json`); the
items that grow as records arrive (bursts of input, groups of console messages or of
plumbing, navigations, dialogs, a person's spans) are subclasses that keep what their
message is finally written from (runs/activity/messages.py writes it).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from runs.activity.records import CommandRecord, ms
from runs.timestamps import iso

MAX_CHILDREN = 100
MAX_SOURCE_REFS = 100

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

ITEM_TYPES = (
    "run.started",
    "run.completed",
    "run.failed",
    "runtime.lifecycle",
    "browser.navigate",
    "browser.type",
    "browser.click",
    "browser.drag",
    "browser.scroll",
    "browser.select",
    "browser.check",
    "browser.upload",
    "browser.screenshot",
    "network.failed",
    "network.blocked",
    "network.http_error",
    "console.message",
    "page.error",
    "dialog",
    "download",
    "tab.opened",
    "tab.closed",
    "connection.opened",
    "connection.closed",
    "artifact.created",
    "control.takeover",
    "handoff",
    "control.requested",
    "control.released",
    "automation",
    "command",
    "event",
)

# Items a person would call a step: protocol plumbing around them folds into them.
STEP_TYPES = frozenset(
    {
        "browser.navigate",
        "browser.type",
        "browser.click",
        "browser.drag",
        "browser.scroll",
        "browser.select",
        "browser.check",
        "browser.upload",
        "browser.screenshot",
        "dialog",
        "download",
        "tab.opened",
        "tab.closed",
        "connection.opened",
    }
)


class Source(TypedDict):
    """The records an item or a child was made from (the first MAX_SOURCE_REFS of each)."""

    events: list[int]
    commands: list[str]
    eventCount: NotRequired[int]  # the exact total, when the list was cut
    commandCount: NotRequired[int]


class Child(TypedDict):
    """A compact sub-item: the plumbing that prepared a step, its parts, what followed."""

    time: str | None  # iso(), as every time in the API
    type: str
    message: str
    status: str
    severity: str
    durationMs: int | None
    source: Source
    # A plumbing call's: its method, and how many calls it stands for.
    method: NotRequired[str]
    calls: NotRequired[int]


def source(events: list[int], commands: list[str]) -> Source:
    cut: Source = {
        "events": events[:MAX_SOURCE_REFS],
        "commands": commands[:MAX_SOURCE_REFS],
    }
    if len(events) > MAX_SOURCE_REFS:
        cut["eventCount"] = len(events)
    if len(commands) > MAX_SOURCE_REFS:
        cut["commandCount"] = len(commands)
    return cut


def child(
    time: datetime,
    type: str,
    message: str,
    *,
    status: str = "info",
    severity: str = "info",
    duration_ms: int | None = None,
    events: list[int] | None = None,
    commands: list[str] | None = None,
) -> Child:
    return {
        "time": iso(time),
        "type": type,
        "message": message,
        "status": status,
        "severity": severity,
        "durationMs": duration_ms,
        "source": source(events or [], commands or []),
    }


@dataclass(frozen=True, slots=True)
class Element:
    """What an input touched, as the page named it (never a field's value)."""

    role: str | None
    name: str | None
    masked: bool = False


@dataclass(slots=True)
class Item:
    """An item of the timeline: an item of one record as it is, or the base of one that
    grows."""

    id: str
    time: datetime
    type: str
    page_id: str
    order: int  # the number of the record that started it: ties in time keep this order
    message: str = ""
    status: str = "info"
    severity: str = "info"
    duration_ms: int | None = None
    end: datetime | None = None
    events: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    # Protocol plumbing folded into a step: what prepared it and what followed it.
    prep: list[Child] = field(default_factory=list)
    follow: list[Child] = field(default_factory=list)
    hidden: bool = False  # folded into another item after it was made
    # The element a step touched, once the page reported it.
    element: Element | None = None

    def as_json(self) -> dict[str, Any]:
        """The item as the API answers it (a plain dict: callers add keys, e.g. timeMs)."""
        return {
            "id": self.id,
            "time": iso(self.time),
            "type": self.type,
            "message": self.message,
            "status": self.status,
            "severity": self.severity,
            "durationMs": self.duration_ms,
            "pageId": self.page_id or None,
            "role": self.element.role if self.element else None,
            "name": self.element.name if self.element else None,
            "children": [*self.prep, *self.children, *self.follow][:MAX_CHILDREN],
            "source": source(self.events, self.commands),
        }

    def extend_to(self, end: datetime | None) -> None:
        if end is not None and (self.end is None or end > self.end):
            self.end = end
            self.duration_ms = ms(end - self.time)


# Items that grow as records arrive ----------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Burst(Item):
    """Input (typing, a scroll, a click) or calls of one method, one after the other."""

    last: datetime  # the latest record's time: the next one continues the burst if close
    failed: int = 0
    pending: int = 0
    error: str = ""  # the first failure's


@dataclass(slots=True)
class TypedText:
    chars: int
    redacted: bool
    time: datetime
    commands: list[str]


@dataclass(slots=True)
class PressedKey:
    key: str  # Enter, Tab, Control+a, …
    count: int
    time: datetime
    commands: list[str]


@dataclass(slots=True, kw_only=True)
class Typing(Burst):
    chars: int = 0
    redacted: bool = False
    # The burst in order: text typed (counted, never kept) and special keys pressed.
    segments: list[TypedText | PressedKey] = field(default_factory=list)
    fields: list[Element] = field(default_factory=list)  # as the page reported them


@dataclass(slots=True, kw_only=True)
class Scroll(Burst):
    dx: float = 0.0
    dy: float = 0.0


@dataclass(slots=True, kw_only=True)
class Click(Burst):
    x: float
    y: float
    button: str
    clicks: int = 1
    released: bool = False
    to: tuple[float, float] | None = None  # where a drag was released
    # The page's report of what the click did (a box checked): its `input` event's data.
    choice: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class CommandGroup(Burst):
    """Calls of one method shown on their own (a CDP error the client saw, …)."""

    method: str
    is_failed: bool


@dataclass(slots=True, kw_only=True)
class ConsoleGroup(Item):
    last: datetime


@dataclass(slots=True, kw_only=True)
class PlumbingGroup(Item):
    """Plumbing commands not yet folded into a step: one "N automation calls" item if
    no step claims them."""

    last: datetime
    calls: int = 0
    pending: int = 0
    followed: Item | None = None  # the step these calls followed closely, if any


@dataclass(slots=True, kw_only=True)
class Choice(Item):
    """An option chosen, a box checked, files uploaded: the page's `input` event's data."""

    choice: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class Navigation(Item):
    command: CommandRecord | None = None  # Page.navigate or Page.reload
    url: str | None = None  # the navigation event's
    transition: Any = None
    place: str | None = None  # how the URL reads (runs/activity/naming.py, place)
    title: str | None = None
    http: int | None = None  # the document's error status


@dataclass(slots=True, kw_only=True)
class Dialog(Item):
    label: str  # Alert "…", Leave-page dialog, …
    accepted: bool | None = None


@dataclass(slots=True, kw_only=True)
class Takeover(Item):
    who: str


@dataclass(slots=True, kw_only=True)
class Handoff(Item):
    instructions: str
