"""Activity: the human-readable timeline of a run, derived from its events and commands.

Nothing here is stored: every call reads the run's events and commands (two queries,
however big the run is) and folds them, in one pass in time order, into items a
person can read: one step per action, named from the page itself ("Clicked button
"Place order"", "Typed 16 characters into "Card number""), with the protocol plumbing
folded into the steps. `activity_items(run)` is what a poller or stream calls;
`activity()` also takes filters and says whether the timeline was cut short.

Sources (what the runtime host and clients record)
--------------------------------------------------
Events (`Event.type` → `Event.data`):

- `runtime.lifecycle`  {state: starting|started|stopped|failed, reason?}
- `navigation`         {url, frameId?, transition?}
- `page.title`         {url, title} (the page's title once its document is parsed)
- `input`              {kind: click|type|select|check|upload, role, name, masked?, frame?,
                        x?, y?, button?, clickCount?, options?, checked?, files?, fileCount?}
                        or {kind: scroll, dx, dy} once a wheel scroll stopped:
                        what an input touched, reported by the page at that moment
                        (static/js/inputs.js, runtime_host/steps.py) whoever sent the input;
                        never a field's value
- `network.request`    {requestId, method, url, resourceType}
- `network.response`   {requestId, url, status, mimeType, encodedDataLength, timing?}
- `network.failed`     {requestId, url, errorText, method?, canceled?}
- `network.blocked`    {url, reason, requestId?, method?} (runs/confinement.py)
- `network.usage`      {bytesIn, bytesOut} (the egress proxy's count, at the end)
- `console.message`    {level: log|info|warning|error|debug, text}
- `page.error`         {message, stack?}
- `dialog`             {type, message}; `dialog.closed` {accepted}
- `download`           {url, suggestedFilename, artifactId?}
- `target.created`, `target.closed`  {targetId, type, url}
- `artifact.created`   {artifactId, kind, name, size}
- `control.requested`, `control.granted`, `control.released`  {who, viewer, reason?}
- `connection.opened`, `connection.closed`  {connectionId, client, remoteAddress?,
  durationMs?, code?}: a CDP client of the runtime (runtimes/cdp_proxy.py)
- anything else        → a generic `event` item named after its type.

Commands (`Command.method`, `params`, `status`, `duration_ms`, `page_id`, times): CDP
methods sent by a client: `Input.dispatchKeyEvent` {type, text?, key?, modifiers?},
`Input.insertText` {text: "[redacted]", length}, `Input.dispatchMouseEvent` {type, x,
y, button, clickCount?, deltaX?, deltaY?}, `Page.navigate` {url}, `Page.reload`,
`Page.captureScreenshot`, and any other method (`Runtime.callFunctionOn`, `cdp.internal`
bursts of set-up calls, …).

Items
-----
Every item is `{id, time, type, message, status, severity, durationMs, pageId, role,
name, children, source}`. `status` is succeeded|failed|running|info, `severity`
info|warning|error. `role` and `name` are those of the element a step touched (as
Chromium or the page names it), else null. `source` is `{"events": [seq, …],
"commands": [id, …]}`; a list longer than MAX_SOURCE_REFS keeps its first entries and
the exact total is added as `eventCount` / `commandCount`. `children` are compact
sub-items `{time, type, message, status, severity, durationMs, source}` (at most
MAX_CHILDREN): the plumbing that prepared a step, its own parts, then what followed it.

Steps (STEP_TYPES) and how they are named:

- `browser.click`: `mousePressed` (+ its `mouseReleased`), named by the page's report
  of the click (an `input` click event within INPUT_WINDOW): "Clicked button "Place
  order"", "Clicked link "Shop now"", "Clicked an unlabelled button", else "Clicked at
  (x, y)". A second press of a double click folds in ("Double-clicked …"); right and
  middle buttons say so. `browser.drag`: a press released more than DRAG_DISTANCE px
  away "Dragged from (x, y) to (x, y)". `mouseMoved` is noise: no item, and it
  interrupts nothing. A click with no command (a person in the live view) is a step
  of its own from the page's report.
- `browser.type`: a burst of `Input.dispatchKeyEvent` / `Input.insertText` commands
  on one page, each less than BURST_GAP after the previous one, not interrupted by
  another command (mouse moves aside) or by a navigation of that page, named by the
  field(s) the page reported: "Typed 16 characters into "Card number"", "Pressed Enter
  in "Search"", "Typed 3 characters into an unlabelled field". Typed text is never
  echoed, since it may be a secret: counts and the names of special keys (Enter, Tab,
  Backspace, shortcuts such as Control+a) only; a password field's label is kept.
- `browser.select` "Selected "Red" in "Colour"", `browser.check` "Checked "I agree""
  (a click that checked a box becomes that step), `browser.upload` "Uploaded
  receipt.pdf to "Attachment"": from the page's reports.
- `browser.scroll`: a burst of `mouseWheel` commands (same page, gaps < BURST_GAP),
  "Scrolled down 600 px"; without commands, the page's report of a wheel scroll.
- `browser.navigate`: a `navigation` event "Navigated to Checkout — /demo/checkout" (the
  page's title, and the URL: in full on the first visit of its origin, then its path;
  reload and back/forward transitions say so; "(HTTP 404)" and a warning when the
  document answered an error, which then is no item of its own). A `Page.navigate` /
  `Page.reload` command and the navigation event that follows it within NAV_WINDOW are
  one item; a command with no navigation event yet is "Navigating to <url>" (running),
  and a failed one is an error "Navigation to <url> failed: <error>", as is a document
  request that failed.
- `browser.screenshot`: `Page.captureScreenshot` "Took a screenshot" (its stored file
  folds in), `Page.printToPDF` "Saved the page as a PDF".
- `dialog` "Dialog "Are you sure?" accepted" (the client's answer folds in), `download`
  "Downloaded receipt.csv" (its stored file folds in), `tab.opened` / `tab.closed` (from
  `target.created` / `target.closed` of type page; other targets are noise),
  `connection.opened` "Connected a client with an API key from 127.0.0.1".

Protocol plumbing (every other command) is never a top-level item when a step explains
it: commands less than FOLD_BEFORE before a step on its page are that step's
preparation (children), else those less than FOLD_AFTER after a step's last record are
its follow-up; what no step claims is one collapsed `automation` item "N automation
calls" (commands less than PLUMBING_GAP apart). While the run is live, the latest
plumbing waits HOLD_BACK for its step, so no item appears only to vanish. A failed
command whose error is housekeeping (HARMLESS_ERRORS: a context, node or target the page
had already dropped) is plumbing like any other, not a failure. A CDP error the client
saw otherwise stays loud: a `command` item "Runtime.evaluate failed: …" (consecutive
ones of one method collapse, "… (3 times)"); an input refused while a person controls
the browser is its step, failed, "… — refused: a person was controlling the browser".

Other items:

- `network.failed`: an error "Request failed: GET <url> — net::ERR_…" (a cancelled
  request, net::ERR_ABORTED, is noise). `network.http_error`: a response with status
  >= 400, "GET <url> returned HTTP 404": a warning for 4xx, an error for 5xx (the
  browser's own /favicon.ico request aside). Other requests and responses are noise.
- `network.blocked`: an error "Blocked <url>: <reason>" (the browser tried to reach
  something hosted browsers may not: a file: URL, a metadata address, the platform's
  own services). `network.usage` is noise.
- `console.message`: level error → an error item, warning → a warning item, each on
  its own; log/info/debug messages in a row (same page, gaps < BURST_GAP, no other
  item started in between, at most MAX_CHILDREN) are one info item whose children
  are the messages.
- `page.error` (error), `artifact.created`, `runtime.lifecycle` (an error when the
  state is failed), `connection.closed`: one item per event.
- `control.takeover`: a person's control of the browser through the live view, from
  `control.granted` to `control.released` (running until then; `durationMs` is the
  span, which the replay timeline draws): "ada controlled the browser for 42 s (handed
  back)". The request before a grant folds into it; a request refused because someone
  else held control is a `control.requested` item of its own.
- `handoff`: an automation's request that a person do a step (`handoff.requested` to
  `handoff.completed|expired|cancelled`), a span as a takeover is, running until it
  ends: "Asked a person: <instructions>", then "<who> did what was asked (2 min):
  <instructions> — "<note>"", or that nobody did in time, or that it was withdrawn.
  Never what the person typed: that is the takeover's, which shows no text either.
- `run.started` first, and `run.completed` / `run.failed` last once the run has ended:
  taken from the Run row, not from events (`run.started` is running while the run
  is). A failed run is an error and quotes the run's error message.
- `event`: any other event, named by its type.

Commands are the foreground (what the client did) and interrupt each other's
bursts; events other than navigations are background (what the page did) and never
interrupt a typing, scroll or click burst. A console group is closed by any other
item starting.

Order and ids
-------------
Events are read by seq and ordered by time (the host writes an input's event once it
has named the element, timed when the input happened), commands by (started_at, id),
merged by time; items are sorted by the time of the record that started them
(stably). An item's id is "act_" plus the id of the record that started it (the first
keystroke of a burst, the press of a click, the first console message of a group, the
first call of an automation group, …); run items use the run id. Records appended later
only extend the open item or start new ones, so ids already handed out stay valid
(their content may grow). Only a record that arrives late with a time earlier than
records already stored can reshape its neighbours.

Huge runs: the latest MAX_RECORDS events and MAX_RECORDS commands are read and at
most the latest MAX_ITEMS items are returned (plus the run items); `truncated` says
when either cut applied.
"""

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

from runs import selectors
from runs.api.serializers import iso
from runs.cdp import INTERNAL_METHOD
from runs.control import BUSY_CODE
from runs.models import Command, Run

MAX_RECORDS = 50_000
MAX_ITEMS = 5_000
MAX_CHILDREN = 100
MAX_SOURCE_REFS = 100
MAX_TEXT = 300

BURST_GAP = timedelta(seconds=2)
NAV_WINDOW = timedelta(seconds=10)
NAV_SLACK = timedelta(seconds=1)
DOUBLE_CLICK_GAP = timedelta(milliseconds=800)
DRAG_DISTANCE = 5.0
REDACTED = "[redacted]"
# Protocol plumbing this close before a step is its preparation, this close after the
# step's last record its follow-up; plumbing further apart is its own collapsed item.
FOLD_BEFORE = timedelta(seconds=2)
FOLD_AFTER = timedelta(seconds=1)
PLUMBING_GAP = timedelta(seconds=2)
# While a run is live its latest plumbing waits this long (FOLD_BEFORE and the proxy's
# batching) for the step it may be preparing, so that no item shows and then vanishes.
HOLD_BACK = timedelta(seconds=4)
# How far from the input command the page's report of that input may be.
INPUT_WINDOW = timedelta(seconds=2)
INPUT_EARLY = timedelta(milliseconds=500)
MAX_NAME = 80
MAX_PLACE = 60
# How long after a screenshot step its stored file still belongs to it.
SHOT_WINDOW = timedelta(seconds=10)

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
PLAYWRIGHT_MARKER = "--playwright--"
SCREENSHOT_METHODS = frozenset({"Page.captureScreenshot", "Page.printToPDF"})
DIALOG_METHOD = "Page.handleJavaScriptDialog"
# CDP errors that are housekeeping, not failures: a client releasing or asking about
# an object, node, context or target that the page has already let go of.
HARMLESS_ERRORS = (
    "cannot find context with specified id",
    "execution context was destroyed",
    "cannot find default execution context",
    "inspected target navigated or closed",
    "no node with given id",
    "could not find node with given id",
    "no node found for given backend id",
    "node is detached from document",
    "node does not have a layout object",
    "frame with the given id was not found",
    "no frame for given id found",
    "no target with given id",
    "no session with given id",
    "session with given id not found",
    "target closed",
    "could not find object with given id",
    "cannot find object with id",
    "not attached to an active page",
)
# How a role reads in a sentence ("Clicked button "Pay"", "into an unlabelled field").
ROLE_WORDS = {
    "button": "button",
    "link": "link",
    "checkbox": "checkbox",
    "radio": "radio button",
    "switch": "switch",
    "textbox": "field",
    "searchbox": "search field",
    "spinbutton": "number field",
    "combobox": "list",
    "listbox": "list",
    "option": "option",
    "slider": "slider",
    "tab": "tab",
    "menuitem": "menu item",
    "img": "image",
    "image": "image",
    "heading": "heading",
}

KEY_METHODS = frozenset({"Input.dispatchKeyEvent", "Input.insertText"})
MOUSE_METHOD = "Input.dispatchMouseEvent"
NAV_METHODS = frozenset({"Page.navigate", "Page.reload"})
MODIFIER_KEYS = frozenset({"Shift", "Control", "Alt", "Meta", "CapsLock", "AltGraph"})
# CDP modifier bits: Alt=1, Ctrl=2, Meta=4, Shift=8. Shift alone makes capitals, not shortcuts.
SHORTCUT_MODIFIERS = ((2, "Control"), (1, "Alt"), (4, "Meta"))
SHORTCUT_BITS = 1 | 2 | 4

_EVENT_FIELDS = ("id", "seq", "time", "type", "page_id", "data")
_COMMAND_FIELDS = (
    "id",
    "method",
    "params",
    "status",
    "page_id",
    "started_at",
    "ended_at",
    "duration_ms",
    "error",
)


@dataclass(frozen=True)
class Activity:
    items: list[dict[str, Any]]
    truncated: bool


def activity_items(run: Run) -> list[dict[str, Any]]:
    """The run's activity items in time order; ids are stable as the run grows."""
    return activity(run).items


def activity(
    run: Run, *, min_severity: str = "info", types: Iterable[str] | None = None
) -> Activity:
    """The run's timeline, filtered to items at least `min_severity` and of `types`.

    Two queries: the latest events and the latest commands of the run.
    """
    events, events_cut = _latest(
        selectors.events_of(run).order_by("-seq").values_list(*_EVENT_FIELDS)
    )
    commands, commands_cut = _latest(
        selectors.commands_of(run).order_by("-started_at", "-id").values_list(*_COMMAND_FIELDS)
    )
    # The host writes an input's event once it has named the element, timed when the
    # input happened: by time, not by seq, is the order things happened in.
    events.sort(key=lambda row: row[2])
    builder = _Builder()
    for record in _merged(events, commands):
        builder.feed(record)
    builder.flush_control()
    builder.flush_plumbing(hold_back=run.is_active)
    middle = sorted(
        (item for item in builder.items if not item.hidden),
        key=lambda item: (item.time, item.order),
    )
    wanted_types = set(types) if types else None
    floor = SEVERITY_RANK[min_severity]

    def keep(item: "_Item") -> bool:
        return SEVERITY_RANK[item.severity] >= floor and (
            wanted_types is None or item.type in wanted_types
        )

    kept = [item for item in middle if keep(item)]
    truncated = events_cut or commands_cut or len(kept) > MAX_ITEMS
    kept = kept[-MAX_ITEMS:]
    head = [item for item in _run_items(run) if keep(item)]
    started = [item for item in head if item.type == "run.started"]
    ended = [item for item in head if item.type != "run.started"]
    return Activity(
        items=[item.render() for item in [*started, *kept, *ended]], truncated=truncated
    )


def _latest(rows: Any) -> tuple[list[tuple[Any, ...]], bool]:
    """The newest MAX_RECORDS rows of a newest-first query, oldest first, and whether cut."""
    fetched = list(rows[: MAX_RECORDS + 1])
    cut = len(fetched) > MAX_RECORDS
    fetched = fetched[:MAX_RECORDS]
    fetched.reverse()
    return fetched, cut


# One record of the merged stream: (time, kind "e"|"c", row).
_Record = tuple[datetime, str, tuple[Any, ...]]


def _merged(events: list[tuple[Any, ...]], commands: list[tuple[Any, ...]]) -> Iterator[_Record]:
    event_records = ((row[2], "e", row) for row in events)
    command_records = ((row[5], "c", row) for row in commands)
    return heapq.merge(event_records, command_records, key=lambda record: record[0])


@dataclass(slots=True)
class _Item:
    id: str
    time: datetime
    type: str
    page_id: str
    order: int
    message: str = ""
    status: str = "info"
    severity: str = "info"
    duration_ms: int | None = None
    end: datetime | None = None
    events: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    # Protocol plumbing folded into a step: what prepared it and what followed it.
    prep: list[dict[str, Any]] = field(default_factory=list)
    follow: list[dict[str, Any]] = field(default_factory=list)
    hidden: bool = False  # folded into another item after it was made
    # What the message is rendered from, for items that grow (bursts and groups).
    state: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        if not self.state.get("finished"):
            _finish(self)
            self.state["finished"] = True
        return {
            "id": self.id,
            "time": iso(self.time),
            "type": self.type,
            "message": self.message,
            "status": self.status,
            "severity": self.severity,
            "durationMs": self.duration_ms,
            "pageId": self.page_id or None,
            "role": self.state.get("role"),
            "name": self.state.get("name"),
            "children": [*self.prep, *self.children, *self.follow][:MAX_CHILDREN],
            "source": _source(self.events, self.commands),
        }

    def extend_to(self, end: datetime | None) -> None:
        if end is not None and (self.end is None or end > self.end):
            self.end = end
            self.duration_ms = _ms(end - self.time)


def _source(events: list[int], commands: list[str]) -> dict[str, Any]:
    source: dict[str, Any] = {
        "events": events[:MAX_SOURCE_REFS],
        "commands": commands[:MAX_SOURCE_REFS],
    }
    if len(events) > MAX_SOURCE_REFS:
        source["eventCount"] = len(events)
    if len(commands) > MAX_SOURCE_REFS:
        source["commandCount"] = len(commands)
    return source


def _child(
    time: datetime,
    type: str,
    message: str,
    *,
    status: str = "info",
    severity: str = "info",
    duration_ms: int | None = None,
    events: list[int] | None = None,
    commands: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "time": iso(time),
        "type": type,
        "message": message,
        "status": status,
        "severity": severity,
        "durationMs": duration_ms,
        "source": _source(events or [], commands or []),
    }


class _Builder:
    """Folds the merged records into items in one pass, keeping a few open items."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.order = 0
        self.foreground: _Item | None = None  # the open typing/scroll/click/command item
        self.console: _Item | None = None  # the open group of info console messages
        self.nav_command: _Item | None = None  # a navigate command awaiting its event
        self.nav_event: _Item | None = None  # a navigation event item without a command
        self.request_methods: dict[str, str] = {}
        self.takeover: _Item | None = None  # a person's control, from grant to release
        self.pending_control: dict[str, _Evt] = {}  # requests by viewer, until granted
        self.handoffs: dict[str, _Item] = {}  # open handoffs by id, until they end
        self.last_step: _Item | None = None  # the latest step, and its latest record's time
        self.step_last: datetime | None = None
        self.page_steps: dict[str, tuple[_Item, datetime]] = {}  # the same, by page
        self.plumbing: _Item | None = None  # plumbing not yet folded into a step
        self.inputs: list[_Item] = []  # recent click and typing items, for the page's report
        self.documents: dict[str, str] = {}  # requestId → page, of document requests
        # A document's error status that came before its navigation, by (page, url).
        self.pending_status: dict[tuple[str, str], tuple[_Item, int]] = {}
        self.navigations: dict[str, _Item] = {}  # the latest navigation item by page
        # A page's title reported before the host's navigation event of its URL.
        self.early_titles: dict[str, tuple[str, str, int]] = {}  # page → (url, title, seq)
        self.dialogs: dict[str, _Item] = {}  # the open dialog item by page
        self.screenshot: _Item | None = None  # the latest screenshot step
        self.artifacts: dict[str, _Item] = {}  # artifact items by id, for their download
        self.origins: set[str] = set()  # origins a navigation already named in full

    def feed(self, record: _Record) -> None:
        self.order += 1
        if record[1] == "e":
            self.event(*record[2])
        else:
            self.command(*record[2])

    def add(self, item: _Item) -> _Item:
        self.items.append(item)
        if item is not self.console:
            self.console = None
        if item.type in STEP_TYPES:
            self.begin_step(item)
        return item

    # Steps and the plumbing around them ----------------------------------------------

    def begin_step(self, item: _Item) -> None:
        """A step starts: the plumbing just before it was its preparation."""
        group = self.plumbing
        if group is not None:
            if item.time - group.state["last"] <= FOLD_BEFORE and _same_page(
                group.page_id, item.page_id
            ):
                self.plumbing = None
                item.prep[0:0] = group.children
                item.commands[0:0] = group.commands
            else:
                self.flush_plumbing()
        self.last_step, self.step_last = item, item.time
        if item.page_id:
            self.page_steps[item.page_id] = (item, item.time)

    def step_grew(self, item: _Item, at: datetime) -> None:
        if item is self.last_step and (self.step_last is None or at > self.step_last):
            self.step_last = at
        known = self.page_steps.get(item.page_id)
        if known is not None and known[0] is item and at > known[1]:
            self.page_steps[item.page_id] = (item, at)

    def plumbing_command(self, cmd: "_Cmd") -> None:
        """A command that is no step of its own: a child of the step it prepared (the
        next one, FOLD_BEFORE away at most) or else of the step it followed (FOLD_AFTER
        after that step's last record), else of one collapsed "N automation calls" item."""
        self.foreground = None  # a new action begins: no typing or scroll continues
        child = _plumbing_child(cmd)
        group = self.plumbing
        if group is not None and (
            cmd.started_at - group.state["last"] > PLUMBING_GAP
            or not _same_page(group.page_id, cmd.page_id)
        ):
            self.flush_plumbing()
            group = None
        if group is None:
            group = _Item(
                id=f"act_{cmd.id}", time=cmd.started_at, type="automation",
                page_id=cmd.page_id, order=self.order,
                state={"kind": "automation", "last": cmd.started_at, "calls": 0, "pending": 0},
            )  # fmt: skip
            followed = self.page_steps.get(cmd.page_id) or (
                (self.last_step, self.step_last) if self.last_step and self.step_last else None
            )
            if followed is not None and cmd.started_at - followed[1] <= FOLD_AFTER:
                group.state["followed"] = followed[0]
            self.plumbing = group
        group.commands.append(cmd.id)
        group.state["last"] = max(group.state["last"], cmd.started_at)
        group.state["calls"] += _calls(cmd)
        group.state["pending"] += cmd.status == Command.Status.PENDING
        group.page_id = group.page_id or cmd.page_id
        group.extend_to(cmd.end)
        _append_call(group.children, child)

    def flush_plumbing(self, *, hold_back: bool = False) -> None:
        """Plumbing that no step claimed becomes its own collapsed item; while the run is
        live, the latest group waits FOLD_BEFORE for the step it may be preparing."""
        group = self.plumbing
        if group is None:
            return
        if hold_back and timezone.now() - group.state["last"] < HOLD_BACK:
            return
        self.plumbing = None
        followed: _Item | None = group.state.get("followed")
        if followed is not None:
            followed.commands.extend(group.commands)
            for child in group.children:
                _append_call(followed.follow, child)
            return
        calls = group.state["calls"]
        group.message = f"{calls} automation call{'' if calls == 1 else 's'}"
        group.status = "running" if group.state["pending"] else "succeeded"
        self.items.append(group)

    def new(self, anchor_id: str, time: datetime, type: str, page_id: str, **fields: Any) -> _Item:
        return self.add(
            _Item(
                id=f"act_{anchor_id}",
                time=time,
                type=type,
                page_id=page_id,
                order=self.order,
                **fields,
            )
        )

    # Commands ------------------------------------------------------------------------

    def command(
        self,
        id: str,
        method: str,
        params: Any,
        status: str,
        page_id: str,
        started_at: datetime,
        ended_at: datetime | None,
        duration_ms: int | None,
        error: Any,
    ) -> None:
        params = params if isinstance(params, dict) else {}
        cmd = _Cmd(id, method, params, status, page_id, started_at, ended_at, duration_ms, error)
        mouse = params.get("type") if method == MOUSE_METHOD else None
        if mouse == "mouseMoved":
            return  # noise: no item, and it interrupts nothing
        if mouse == "mouseWheel":
            self.scroll(cmd)
        elif mouse == "mousePressed":
            self.press(cmd)
        elif mouse == "mouseReleased":
            self.release(cmd)
        elif method in KEY_METHODS:
            self.key(cmd)
        elif method in NAV_METHODS:
            self.navigate_command(cmd)
        elif method in SCREENSHOT_METHODS:
            self.screenshot_command(cmd)
        elif method == DIALOG_METHOD and self.dialogs.get(page_id) is not None:
            self.dialog_command(cmd)
        elif cmd.status == Command.Status.FAILED and not _harmless(cmd):
            self.other_command(cmd)  # a CDP error the client saw: loud, on its own
        else:
            self.plumbing_command(cmd)

    def open_foreground(self, kind: str, cmd: "_Cmd") -> _Item | None:
        """The open foreground item if `cmd` continues it, else None."""
        item = self.foreground
        if item is None or item.state.get("kind") != kind or item.page_id != cmd.page_id:
            return None
        if cmd.started_at - item.state["last"] >= BURST_GAP:
            return None
        return item

    def start_foreground(self, cmd: "_Cmd", type: str, kind: str, **state: Any) -> _Item:
        item = _Item(
            id=f"act_{cmd.id}", time=cmd.started_at, type=type, page_id=cmd.page_id,
            order=self.order, status="succeeded",
            state={"kind": kind, "last": cmd.started_at, "failed": 0, "pending": 0, **state},
        )  # fmt: skip
        self.add(item)
        self.foreground = item
        if kind in ("click", "type", "scroll"):
            self.inputs = [*self.inputs[-19:], item]
        return item

    def join(self, item: _Item, cmd: "_Cmd") -> None:
        item.commands.append(cmd.id)
        item.state["last"] = cmd.started_at
        if cmd.status == Command.Status.FAILED:
            item.state["failed"] += 1
            item.state.setdefault("error", _error_text(cmd.error))
        elif cmd.status == Command.Status.PENDING:
            item.state["pending"] += 1
        item.extend_to(cmd.end)
        self.step_grew(item, cmd.end)

    def key(self, cmd: "_Cmd") -> None:
        item = self.open_foreground("type", cmd)
        if item is None:
            item = self.start_foreground(
                cmd, "browser.type", "type", chars=0, redacted=False, segments=[]
            )
        self.join(item, cmd)
        chars, key, redacted = _keystroke(cmd.method, cmd.params)
        segments: list[dict[str, Any]] = item.state["segments"]
        if chars or redacted:
            item.state["chars"] += chars
            item.state["redacted"] = item.state["redacted"] or redacted
            last = segments[-1] if segments else None
            if last is not None and last["key"] is None:
                last["chars"] += chars
                last["redacted"] = last["redacted"] or redacted
                last["commands"].append(cmd.id)
            else:
                segments.append(
                    {
                        "key": None,
                        "chars": chars,
                        "redacted": redacted,
                        "time": cmd.started_at,
                        "commands": [cmd.id],
                    }
                )
        elif key is not None:
            last = segments[-1] if segments else None
            if last is not None and last["key"] == key:
                last["count"] += 1
                last["commands"].append(cmd.id)
            else:
                segments.append(
                    {"key": key, "count": 1, "time": cmd.started_at, "commands": [cmd.id]}
                )
        elif segments:
            segments[-1]["commands"].append(cmd.id)  # a keyUp belongs to what it ends

    def scroll(self, cmd: "_Cmd") -> None:
        item = self.open_foreground("scroll", cmd)
        if item is None:
            item = self.start_foreground(cmd, "browser.scroll", "scroll", dx=0.0, dy=0.0)
        self.join(item, cmd)
        item.state["dx"] += _number(cmd.params.get("deltaX"))
        item.state["dy"] += _number(cmd.params.get("deltaY"))

    def press(self, cmd: "_Cmd") -> None:
        x, y = _number(cmd.params.get("x")), _number(cmd.params.get("y"))
        button = str(cmd.params.get("button") or "left")
        item = self.foreground
        if (
            item is not None
            and item.state.get("kind") == "click"
            and item.state["released"]
            and item.page_id == cmd.page_id
            and item.state["button"] == button
            and _int(cmd.params.get("clickCount")) >= 2
            and cmd.started_at - item.state["last"] < DOUBLE_CLICK_GAP
            and _distance(item.state["x"], item.state["y"], x, y) <= DRAG_DISTANCE
        ):
            item.state.update(clicks=_int(cmd.params.get("clickCount")), released=False)
        else:
            item = self.start_foreground(
                cmd, "browser.click", "click", x=x, y=y, button=button, clicks=1,
                released=False, to=None,
            )  # fmt: skip
        self.join(item, cmd)

    def release(self, cmd: "_Cmd") -> None:
        item = self.foreground
        if (
            item is None
            or item.state.get("kind") != "click"
            or item.state["released"]
            or item.page_id != cmd.page_id
        ):
            self.other_command(cmd)  # a release without its press: show it as is
            return
        self.join(item, cmd)
        x, y = _number(cmd.params.get("x")), _number(cmd.params.get("y"))
        item.state["released"] = True
        if _distance(item.state["x"], item.state["y"], x, y) > DRAG_DISTANCE:
            item.state["to"] = (x, y)

    def navigate_command(self, cmd: "_Cmd") -> None:
        self.foreground = None
        pending = self.nav_event
        self.nav_event = None
        if (
            pending is not None
            and _same_page(pending.page_id, cmd.page_id)
            and pending.time >= cmd.started_at - NAV_SLACK
        ):
            pending.commands.append(cmd.id)
            pending.state.update(command=cmd)
            return
        item = self.new(cmd.id, cmd.started_at, "browser.navigate", cmd.page_id)
        item.commands.append(cmd.id)
        item.state = {"command": cmd, "url": None}
        self.nav_command = item

    def screenshot_command(self, cmd: "_Cmd") -> None:
        self.foreground = None
        pdf = cmd.method == "Page.printToPDF"
        item = self.new(cmd.id, cmd.started_at, "browser.screenshot", cmd.page_id)
        item.commands.append(cmd.id)
        item.duration_ms = cmd.duration_ms
        item.status = _command_status(cmd.status)
        message = "Saved the page as a PDF" if pdf else "Took a screenshot"
        if cmd.status == Command.Status.FAILED:
            item.severity = "error"
            error = _error_text(cmd.error)
            message = ("Saving the page as a PDF" if pdf else "A screenshot") + " failed"
            message += f": {error}" if error else ""
        item.message = message
        self.screenshot = item
        self.step_grew(item, cmd.end)

    def dialog_command(self, cmd: "_Cmd") -> None:
        """The client's answer to a dialog: part of the dialog's item."""
        item = self.dialogs[cmd.page_id]
        item.commands.append(cmd.id)
        _append_call(item.follow, _plumbing_child(cmd))
        if cmd.status != Command.Status.FAILED and "accepted" not in item.state:
            item.state["accepted"] = bool(cmd.params.get("accept"))

    def other_command(self, cmd: "_Cmd") -> None:
        failed = cmd.status == Command.Status.FAILED
        item = self.foreground
        if (
            item is not None
            and item.state.get("kind") == "command"
            and item.state["method"] == cmd.method
            and item.page_id == cmd.page_id
            and item.state["is_failed"] == failed
            and len(item.commands) < MAX_CHILDREN
        ):
            self.join(item, cmd)
        else:
            item = self.start_foreground(
                cmd, "command", "command", method=cmd.method, is_failed=failed
            )
            self.join(item, cmd)
        item.children.append(
            _child(
                cmd.started_at,
                "command",
                _command_message(cmd.method, cmd.status, cmd.error),
                status=_command_status(cmd.status),
                severity="error" if failed else "info",
                duration_ms=cmd.duration_ms,
                commands=[cmd.id],
            )
        )

    # Events --------------------------------------------------------------------------

    def event(self, id: str, seq: int, time: datetime, type: str, page_id: str, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        ev = _Evt(id, seq, time, type, page_id, data)
        handler = _EVENT_HANDLERS.get(type)
        if handler is not None:
            handler(self, ev)
        else:
            self.single(ev, "event", type)

    def single(
        self,
        ev: "_Evt",
        type: str,
        message: str,
        *,
        severity: str = "info",
        status: str = "info",
    ) -> _Item:
        item = self.new(
            ev.id, ev.time, type, ev.page_id, message=message, severity=severity, status=status
        )
        item.events.append(ev.seq)
        return item

    def navigation(self, ev: "_Evt") -> None:
        url = _text(ev.data.get("url"))
        if self.foreground is not None and _same_page(self.foreground.page_id, ev.page_id):
            self.foreground = None
        pending = self.nav_command
        if pending is not None and _same_page(pending.page_id, ev.page_id):
            cmd: _Cmd = pending.state["command"]
            if cmd.started_at - NAV_SLACK <= ev.time <= max(cmd.started_at, cmd.end) + NAV_WINDOW:
                self.nav_command = None
                pending.events.append(ev.seq)
                pending.state.update(url=url, transition=ev.data.get("transition"))
                if cmd.duration_ms is None:
                    pending.duration_ms = _ms(ev.time - cmd.started_at)
                self.navigated(pending, url)
                return
        item = self.single(ev, "browser.navigate", "", status="succeeded")
        item.state = {"url": url, "transition": ev.data.get("transition"), "command": None}
        self.nav_event = item
        self.navigated(item, url)

    def navigated(self, item: _Item, url: str) -> None:
        """The navigation of a page: a later title or document status of that URL is its."""
        item.state["place"] = _place(url, self.origins)
        self.navigations[item.page_id] = item
        early = self.early_titles.pop(item.page_id, None)
        if early is not None and _without_fragment(early[0]) == _without_fragment(url):
            item.state["title"] = early[1]
            item.events.append(early[2])
        pending = self.pending_status.pop((item.page_id, url), None)
        if pending is not None:
            http_item, status = pending
            http_item.hidden = True
            _navigation_status(item, status, http_item)

    def network_request(self, ev: "_Evt") -> None:
        request_id = ev.data.get("requestId")
        if request_id is not None:
            self.request_methods[str(request_id)] = _text(ev.data.get("method") or "GET")
            if ev.data.get("resourceType") == "Document":
                self.documents[str(request_id)] = ev.page_id

    def network_response(self, ev: "_Evt") -> None:
        method = self.request_methods.pop(str(ev.data.get("requestId")), None)
        document = self.documents.pop(str(ev.data.get("requestId")), None)
        status = _int(ev.data.get("status"))
        if status < 400:
            return
        url = _text(ev.data.get("url"))
        if document is None and urlsplit(url).path == "/favicon.ico":
            return  # the browser asks every site for one: a missing icon is no one's error
        item = self.single(
            ev,
            "network.http_error",
            f"{method or 'GET'} {url} returned HTTP {status}",
            severity="error" if status >= 500 else "warning",
            status="failed",
        )
        if document is None:
            return
        # A page answered with an error: said by its navigation, when there is one.
        navigation = self.navigations.get(ev.page_id)
        if (
            navigation is not None
            and navigation.state.get("url") == url
            and ev.time - navigation.time <= NAV_WINDOW
        ):
            item.hidden = True
            _navigation_status(navigation, status, item)
        else:
            self.pending_status[(ev.page_id, url)] = (item, status)

    def network_failed(self, ev: "_Evt") -> None:
        known = self.request_methods.pop(str(ev.data.get("requestId")), None)
        document = self.documents.pop(str(ev.data.get("requestId")), None)
        method = _text(ev.data.get("method") or known or "GET")
        error = _text(ev.data.get("errorText") or "unknown error")
        url = _text(ev.data.get("url"))
        if error == "net::ERR_ABORTED" or ev.data.get("canceled"):
            return  # cancelled by the page or the browser (navigated away, a download)
        message = f"Request failed: {method} {url} — {error}"
        if document is not None:
            message = f"Navigation to {url} failed: {error}"
        self.single(ev, "network.failed", message, severity="error", status="failed")

    def network_blocked(self, ev: "_Evt") -> None:
        self.request_methods.pop(str(ev.data.get("requestId")), None)
        url = _text(ev.data.get("url"))
        reason = _text(ev.data.get("reason") or "not allowed")
        self.single(
            ev, "network.blocked", f"Blocked {url}: {reason}", severity="error", status="failed"
        )

    def noise(self, ev: "_Evt") -> None:
        pass

    def console_message(self, ev: "_Evt") -> None:
        level = str(ev.data.get("level") or "log")
        text = _text(ev.data.get("text"))
        if text.startswith(PLAYWRIGHT_MARKER):
            return  # the marker Playwright's setContent logs: its plumbing, not the page's
        if level in ("error", "warning"):
            label = "Console error" if level == "error" else "Console warning"
            self.single(ev, "console.message", f"{label}: {text}", severity=level)
            return
        group = self.console
        if (
            group is None
            or group.page_id != ev.page_id
            or ev.time - group.state["last"] >= BURST_GAP
            or len(group.events) >= MAX_CHILDREN
        ):
            group = _Item(
                id=f"act_{ev.id}", time=ev.time, type="console.message", page_id=ev.page_id,
                order=self.order, state={"kind": "console"},
            )  # fmt: skip
            self.console = group
            self.add(group)
        group.events.append(ev.seq)
        group.state["last"] = ev.time
        group.extend_to(ev.time)
        group.children.append(
            _child(ev.time, "console.message", f"Console {level}: {text}", events=[ev.seq])
        )

    def page_error(self, ev: "_Evt") -> None:
        message = _text(str(ev.data.get("message") or "Unknown error").splitlines()[0])
        self.single(ev, "page.error", f"Page error: {message}", severity="error")

    def dialog(self, ev: "_Evt") -> None:
        kind = str(ev.data.get("type") or "dialog")
        label = {"alert": "Alert", "prompt": "Prompt"}.get(
            kind, "Leave-page dialog" if kind == "beforeunload" else "Dialog"
        )
        text = _text(ev.data.get("message"))
        item = self.single(ev, "dialog", "")
        item.state = {"kind": "dialog", "label": f'{label} "{text}"' if text else label}
        self.dialogs[ev.page_id] = item

    def dialog_closed(self, ev: "_Evt") -> None:
        item = self.dialogs.pop(ev.page_id, None)
        if item is None:
            return
        item.events.append(ev.seq)
        item.extend_to(ev.time)
        item.state["accepted"] = bool(ev.data.get("accepted"))

    # What the page said each input touched (runtime_host/steps.py) -------------------

    def page_input(self, ev: "_Evt") -> None:
        kind = ev.data.get("kind")
        element = _element(ev.data)
        if kind == "click":
            self.input_click(ev, element)
        elif kind == "type":
            self.input_type(ev, element)
        elif kind in ("select", "check", "upload"):
            self.input_choice(ev, str(kind), element)
        elif kind == "scroll":
            self.input_scroll(ev)

    def recent_input(self, ev: "_Evt", kind: str) -> _Item | None:
        """The latest click or typing item of the page that this report of the page can
        be about: started by a command just before it (or a moment after)."""
        for item in reversed(self.inputs):
            if item.state.get("kind") != kind or not _same_page(item.page_id, ev.page_id):
                continue
            if item.state["failed"]:
                continue  # refused or failed: the page never had that input
            if item.time - INPUT_EARLY <= ev.time <= item.state["last"] + INPUT_WINDOW:
                return item
        return None

    def input_click(self, ev: "_Evt", element: dict[str, Any]) -> None:
        item = self.recent_input(ev, "click")
        if item is not None and ("name" not in item.state or _int(ev.data.get("clickCount")) > 1):
            item.events.append(ev.seq)
            if "name" not in item.state:
                item.state.update(element)
            return
        # A click no command made: a person in the live view.
        item = self.new(ev.id, ev.time, "browser.click", ev.page_id, status="succeeded")
        item.events.append(ev.seq)
        item.state = {
            "kind": "click", "last": ev.time, "failed": 0, "pending": 0,
            "x": _number(ev.data.get("x")), "y": _number(ev.data.get("y")),
            "button": str(ev.data.get("button") or "left"),
            "clicks": max(1, _int(ev.data.get("clickCount"))), "released": True, "to": None,
            **element,
        }  # fmt: skip
        self.inputs = [*self.inputs[-19:], item]

    def input_type(self, ev: "_Evt", element: dict[str, Any]) -> None:
        item = self.recent_input(ev, "type")
        if item is None:
            # Typing no command made: a person in the live view.
            item = self.new(ev.id, ev.time, "browser.type", ev.page_id, status="succeeded")
            item.state = {
                "kind": "type", "last": ev.time, "failed": 0, "pending": 0, "chars": 0,
                "redacted": False, "segments": [],
            }  # fmt: skip
            self.inputs = [*self.inputs[-19:], item]
        item.events.append(ev.seq)
        fields: list[dict[str, Any]] = item.state.setdefault("fields", [])
        if not fields or fields[-1]["name"] != element["name"]:
            fields.append(element)
        if "name" not in item.state:
            item.state.update(element)

    def input_scroll(self, ev: "_Evt") -> None:
        item = self.recent_input(ev, "scroll")
        if item is not None:  # the wheel commands already say how far
            item.events.append(ev.seq)
            return
        # Scrolling no command made: a person in the live view.
        item = self.new(ev.id, ev.time, "browser.scroll", ev.page_id, status="succeeded")
        item.events.append(ev.seq)
        item.state = {
            "kind": "scroll", "last": ev.time, "failed": 0, "pending": 0,
            "dx": _number(ev.data.get("dx")), "dy": _number(ev.data.get("dy")),
        }  # fmt: skip

    def input_choice(self, ev: "_Evt", kind: str, element: dict[str, Any]) -> None:
        """A list's option chosen, a box checked, files uploaded: a step of its own, or
        what the click that did it really was."""
        type = f"browser.{kind}"
        click = self.recent_input(ev, "click") if kind == "check" else None
        if click is not None and click.type == "browser.click":
            click.type = type
            click.events.append(ev.seq)
            click.state.update(element, choice=ev.data)
            return
        item = self.new(ev.id, ev.time, type, ev.page_id, status="succeeded")
        item.events.append(ev.seq)
        item.state = {"kind": "choice", **element, "choice": ev.data}

    def page_title(self, ev: "_Evt") -> None:
        item = self.navigations.get(ev.page_id)
        url = _text(ev.data.get("url"))
        if item is not None and _without_fragment(item.state.get("url") or "") == (
            _without_fragment(url)
        ):
            item.state["title"] = _text(ev.data.get("title"))
            item.events.append(ev.seq)
        else:  # its navigation event may come next
            self.early_titles[ev.page_id] = (url, _text(ev.data.get("title")), ev.seq)

    def download(self, ev: "_Evt") -> None:
        name = _text(ev.data.get("suggestedFilename") or ev.data.get("url") or "a file")
        item = self.single(ev, "download", f"Downloaded {name}")
        stored = self.artifacts.pop(str(ev.data.get("artifactId") or ""), None)
        if stored is not None:  # the file it was stored as is part of the download
            stored.hidden = True
            item.events[0:0] = stored.events
            item.children.append(
                _child(stored.time, stored.type, stored.message, events=stored.events)
            )

    def target(self, ev: "_Evt") -> None:
        if ev.data.get("type") not in ("page", "tab"):
            return  # workers, iframes, the browser target: noise for a person
        url = _text(ev.data.get("url"))
        blank = not url or url == "about:blank"
        if ev.type == "target.created":
            self.single(ev, "tab.opened", "Opened a new tab" + ("" if blank else f": {url}"))
        else:
            self.single(ev, "tab.closed", "Closed a tab" + ("" if blank else f": {url}"))

    def artifact_created(self, ev: "_Evt") -> None:
        kind = str(ev.data.get("kind") or "file")
        name = _text(ev.data.get("name") or "")
        size = _size(ev.data.get("size"))
        if kind == "screenshot":
            message = f"Captured a screenshot {name}".rstrip()
        else:
            message = f"Saved {kind} {name}".rstrip()
        message = f"{message} ({size})" if size else message
        shot = self.screenshot
        if kind == "screenshot" and shot is not None and ev.time - shot.time <= SHOT_WINDOW:
            # The file of the screenshot step just taken (POST /v1/runs/{id}/screenshot).
            self.screenshot = None
            shot.events.append(ev.seq)
            shot.children.append(_child(ev.time, "artifact.created", message, events=[ev.seq]))
            return
        item = self.single(ev, "artifact.created", message)
        if ev.data.get("artifactId"):
            self.artifacts[str(ev.data["artifactId"])] = item

    def connection(self, ev: "_Evt") -> None:
        client = CLIENT_KINDS.get(str(ev.data.get("client")), "a client")
        where = _text(ev.data.get("remoteAddress") or "")
        if ev.type == "connection.opened":
            message = f"Connected {client}" + (f" from {where}" if where else "")
        else:
            seconds = _int(ev.data.get("durationMs")) // 1000
            message = f"Disconnected {client} after {human_duration(seconds * 1000)}"
        self.single(ev, ev.type, message)

    def lifecycle(self, ev: "_Evt") -> None:
        state = str(ev.data.get("state") or "")
        reason = _text(ev.data.get("reason") or "")
        reason = STOP_REASONS.get(reason, reason)
        labels = {
            "starting": "Browser starting",
            "started": "Browser started",
            "stopped": "Browser stopped",
            "failed": "Browser failed",
        }
        message = labels.get(state, f"Browser {state}".rstrip())
        if reason:
            message += f": {reason}"
        failed = state == "failed"
        self.single(
            ev,
            "runtime.lifecycle",
            message,
            severity="error" if failed else "info",
            status="failed" if failed else "info",
        )

    def control(self, ev: "_Evt") -> None:
        """A takeover is one item from grant to release (`durationMs` is its span, which
        the replay timeline draws); a request that was not granted is an item of its own."""
        who = _text(ev.data.get("who") or "someone")
        viewer = str(ev.data.get("viewer") or "")
        if ev.type == "control.requested":
            if self.takeover is not None:
                holder = self.takeover.state["who"]
                self.single(ev, ev.type, f"{who} asked for control while {holder} held it")
            else:
                self.pending_control[viewer] = ev  # folded into the grant that follows
            return
        if ev.type == "control.granted":
            self.pending_control.pop(viewer, None)
            granted = self.single(ev, "control.takeover", f"{who} took control of the browser")
            granted.status = "running"
            granted.state = {"kind": "takeover", "who": who}
            self.takeover = granted
            return
        item = self.takeover
        reason = _RELEASES.get(str(ev.data.get("reason")), "released")
        if item is None:  # a release without its grant in view
            self.single(ev, "control.released", f"Control handed back ({reason})")
            return
        self.takeover = None
        item.events.append(ev.seq)
        item.extend_to(ev.time)
        item.status = "succeeded"
        item.message = (
            f"{item.state['who']} controlled the browser for "
            f"{human_duration(item.duration_ms or 0)} ({reason})"
        )

    def handoff(self, ev: "_Evt") -> None:
        """A handoff is one item from its request to its end, its span drawn like a
        takeover's."""
        handoff_id = str(ev.data.get("handoffId") or "")
        if ev.type == "handoff.requested":
            asked = _text(ev.data.get("instructions") or "")
            item = self.single(ev, "handoff", f"Asked a person: {asked}", severity="warning")
            item.status = "running"
            item.state = {"kind": "handoff", "instructions": asked}
            self.handoffs[handoff_id] = item
            return
        found = self.handoffs.pop(handoff_id, None)
        if found is None:  # its request is not in view
            self.single(ev, "handoff", f"A request for a person {ev.type.split('.')[-1]}")
            return
        found.events.append(ev.seq)
        found.extend_to(ev.time)
        asked = found.state["instructions"]
        took = human_duration(found.duration_ms or 0)
        if ev.type == "handoff.completed":
            who = _text(ev.data.get("who") or "A person")
            note = _text(ev.data.get("note") or "")
            found.message = f"{who} did what was asked ({took}): {asked}"
            if note:
                found.message += f' — "{note}"'
            found.status, found.severity = "succeeded", "info"
        elif ev.type == "handoff.expired":
            found.message = f"Nobody did what was asked within {took}: {asked}"
            found.status = "failed"
        else:
            found.message = f"The request for a person was withdrawn after {took}: {asked}"
            found.status, found.severity = "succeeded", "info"

    def flush_control(self) -> None:
        """Requests that were never granted (someone else held control)."""
        for ev in self.pending_control.values():
            who = _text(ev.data.get("who") or "someone")
            self.single(ev, "control.requested", f"{who} asked for control")
        self.pending_control.clear()


_RELEASES = {
    "requested": "handed back",
    "disconnected": "the viewer left",
    "idle": "idle for too long",
    "revoked": "the viewer link ended",
    "ended": "the run ended",
}

# How a CDP client connected (runtimes.cdp_proxy.ProxyGrant.client), and why a browser stopped.
CLIENT_KINDS = {
    "api_key": "a client with an API key",
    "connect_token": "a client through the connect URL",
    "browser_run": "a Browser Run client",
}
STOP_REASONS = {"idle": "no client for the keep_alive time"}

_EVENT_HANDLERS = {
    "navigation": _Builder.navigation,
    "network.request": _Builder.network_request,
    "network.response": _Builder.network_response,
    "network.failed": _Builder.network_failed,
    "network.blocked": _Builder.network_blocked,
    "network.usage": _Builder.noise,
    "console.message": _Builder.console_message,
    "page.error": _Builder.page_error,
    "dialog": _Builder.dialog,
    "dialog.closed": _Builder.dialog_closed,
    "input": _Builder.page_input,
    "page.title": _Builder.page_title,
    "download": _Builder.download,
    "target.created": _Builder.target,
    "target.closed": _Builder.target,
    "artifact.created": _Builder.artifact_created,
    "runtime.lifecycle": _Builder.lifecycle,
    "connection.opened": _Builder.connection,
    "connection.closed": _Builder.connection,
    "control.requested": _Builder.control,
    "control.granted": _Builder.control,
    "control.released": _Builder.control,
    "handoff.requested": _Builder.handoff,
    "handoff.completed": _Builder.handoff,
    "handoff.expired": _Builder.handoff,
    "handoff.cancelled": _Builder.handoff,
}


@dataclass(slots=True)
class _Cmd:
    id: str
    method: str
    params: dict[str, Any]
    status: str
    page_id: str
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    error: Any

    @property
    def end(self) -> datetime:
        return self.ended_at or self.started_at


@dataclass(slots=True)
class _Evt:
    id: str
    seq: int
    time: datetime
    type: str
    page_id: str
    data: dict[str, Any]


# Rendering of items that grow -------------------------------------------------------


def _finish(item: _Item) -> None:
    kind = item.state.get("kind")
    if kind in ("type", "scroll", "click", "command"):
        failed, pending = item.state["failed"], item.state["pending"]
        item.status = "failed" if failed else "running" if pending else "succeeded"
        item.severity = "error" if failed else "info"
    if kind == "type":
        _finish_typing(item)
    elif kind == "scroll":
        _finish_scroll(item)
    elif kind == "click":
        _finish_click(item)
    elif kind == "command":
        _finish_commands(item)
    elif kind == "console":
        _finish_console(item)
    elif kind == "dialog":
        _finish_dialog(item)
    elif kind == "choice":
        item.message = _choice_message(item.type, item.state)
    elif item.type == "browser.navigate":
        _finish_navigation(item)


def _finish_typing(item: _Item) -> None:
    state = item.state
    parts = []
    if state["chars"] or state["redacted"]:
        typed = _plural(state["chars"], "character") if state["chars"] else ""
        if state["redacted"]:
            typed = f"{typed} and redacted text" if typed else "redacted text"
        parts.append(f"typed {typed}")
    keys = [segment for segment in state["segments"] if segment["key"] is not None]
    if keys:
        names = [_times(segment["key"], segment["count"]) for segment in keys[:5]]
        parts.append("pressed " + ", ".join(names) + (", …" if len(keys) > 5 else ""))
    fields = state.get("fields") or []
    if fields:
        names = [_element_phrase(field, bare=True) or "a field" for field in fields[:3]]
        where = " and ".join(names) + (" and others" if len(fields) > 3 else "")
        if len(parts) == 2 or (parts and parts[0].startswith("typed")):
            parts[0] += f" into {where}"
        elif parts:
            parts[0] += f" in {where}"
        else:
            parts.append(f"typed into {where}")
    message = ", ".join(parts) or "pressed keys"
    item.message = message[0].upper() + message[1:]
    if state["failed"]:
        item.message += _failure(state, f" ({state['failed']} failed)")
    item.children = [_typing_child(segment) for segment in state["segments"][:MAX_CHILDREN]]


def _typing_child(segment: dict[str, Any]) -> dict[str, Any]:
    if segment["key"] is not None:
        message = f"Pressed {_times(segment['key'], segment['count'])}"
        return _child(segment["time"], "browser.key", message, commands=segment["commands"])
    if segment["chars"]:
        message = f"Typed {_plural(segment['chars'], 'character')}"
        if segment["redacted"]:
            message += " and redacted text"
    else:
        message = "Typed redacted text"
    return _child(segment["time"], "browser.type", message, commands=segment["commands"])


def _finish_scroll(item: _Item) -> None:
    dx, dy = item.state["dx"], item.state["dy"]
    parts = []
    if dy:
        parts.append(f"{'down' if dy > 0 else 'up'} {round(abs(dy))} px")
    if dx:
        parts.append(f"{'right' if dx > 0 else 'left'} {round(abs(dx))} px")
    item.message = "Scrolled " + " and ".join(parts) if parts else "Scrolled"


def _finish_click(item: _Item) -> None:
    state = item.state
    at = _point(state["x"], state["y"])
    if state["to"] is not None:
        item.type = "browser.drag"
        item.message = f"Dragged from {at} to {_point(*state['to'])}"
        return
    if state.get("choice"):
        item.message = _choice_message(item.type, state)
    else:
        verb = "Clicked"
        if state["clicks"] == 2:
            verb = "Double-clicked"
        elif state["clicks"] > 2:
            verb = f"Clicked {state['clicks']} times"
        if state["button"] in ("right", "middle"):
            verb = f"{state['button'].capitalize()}-{verb[0].lower()}{verb[1:]}"
        what = _element_phrase(state)
        item.message = f"{verb} {what}" if what else f"{verb} at {at}"
    if state["failed"]:
        item.message += _failure(state, " (failed)")


def _finish_commands(item: _Item) -> None:
    count = len(item.commands)
    if count == 1:
        item.message = item.children[0]["message"]
        item.duration_ms = item.children[0]["durationMs"]
        item.children = []
    else:
        failed = " failed" if item.state["is_failed"] else ""
        item.message = f"{_method_label(item.state['method'])}{failed} ({count} times)"


def _finish_console(item: _Item) -> None:
    if len(item.events) == 1:
        item.message = item.children[0]["message"]
        item.children = []
        item.duration_ms = None
    else:
        first = item.children[0]["message"]
        item.message = f"{len(item.events)} console messages, starting with {first}"


def _finish_navigation(item: _Item) -> None:
    cmd: _Cmd | None = item.state.get("command")
    url = item.state.get("url")
    if cmd is None:
        item.status = "succeeded"
    else:
        item.status = _command_status(cmd.status)
        if item.duration_ms is None:
            item.duration_ms = cmd.duration_ms
        url = url or _text(cmd.params.get("url") or "")
    verb = {"reload": "Reloaded", "back_forward": "Went back or forward to"}.get(
        str(item.state.get("transition")), "Navigated to"
    )
    if cmd is not None and cmd.method == "Page.reload" and not item.state.get("url"):
        verb = "Reloaded"
    if cmd is not None and cmd.status == Command.Status.FAILED:
        item.severity = "error"
        error = _error_text(cmd.error)
        item.message = f"Navigation to {url} failed" + (f": {error}" if error else "")
    elif cmd is not None and cmd.status == Command.Status.PENDING and not item.events:
        item.message = f"Navigating to {url}"
    else:
        place = item.state.get("place") or url
        title = item.state.get("title")
        where = f"{title} — {place}" if title and place else place
        item.message = f"{verb} {where}".rstrip() if where else verb.replace(" to", "")
        status = item.state.get("http")
        if status:
            item.message += f" (HTTP {status})"
            item.status = "failed"


def _finish_dialog(item: _Item) -> None:
    label = item.state["label"]
    accepted = item.state.get("accepted")
    if accepted is None:
        item.message = f"{label} shown"
    elif label.startswith("Alert"):
        item.message = f"{label} closed"
    else:
        item.message = f"{label} {'accepted' if accepted else 'dismissed'}"


def _choice_message(type: str, state: dict[str, Any]) -> str:
    choice: dict[str, Any] = state.get("choice") or {}
    if type == "browser.select":
        where = _element_phrase(state, bare=True) or "a list"
        options = [f'"{_short(option)}"' for option in choice.get("options") or []]
        if not options:
            return f"Cleared the choice in {where}"
        return f"Selected {', '.join(options[:3])}{', …' if len(options) > 3 else ''} in {where}"
    if type == "browser.check":
        what = _element_phrase(state, bare=True) or f"an unlabelled {_role_word(state)}"
        if state.get("role") == "radio":
            return f"Chose {what}"
        return f"{'Checked' if choice.get('checked') else 'Unchecked'} {what}"
    where = _element_phrase(state, bare=True) or "a file field"
    files = choice.get("files") or []
    count = _int(choice.get("fileCount")) or len(files)
    if not count:
        return f"Cleared the files of {where}"
    if count == 1 and files:
        return f"Uploaded {files[0]} to {where}"
    listed = ", ".join(files[:3]) + (", …" if count > 3 else "")
    return f"Uploaded {count} files ({listed}) to {where}"


def _element(data: dict[str, Any]) -> dict[str, Any]:
    """{role, name} of what an input touched, as the page's capture reported it."""
    element: dict[str, Any] = {"role": _text(data.get("role") or "")[:40] or None}
    element["name"] = _short(data.get("name") or "") or None
    if data.get("masked"):
        element["masked"] = True
    return element


def _role_word(element: dict[str, Any]) -> str:
    return ROLE_WORDS.get(str(element.get("role") or ""), "")


def _element_phrase(element: dict[str, Any], *, bare: bool = False) -> str:
    """How a step names its element: button "Pay", "Card number" (`bare`: the name
    alone, fields and lists need no role word), an unlabelled field, or "" (nothing)."""
    name, word = element.get("name"), _role_word(element)
    if name:
        return f'"{name}"' if bare or not word else f'{word} "{name}"'
    return f"an unlabelled {word}" if word else ""


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def _failure(state: dict[str, Any], fallback: str) -> str:
    error = state.get("error") or ""
    if BUSY_CODE in error:
        return " — refused: a person was controlling the browser"
    return f" — failed: {error}" if error else fallback


def _harmless(cmd: "_Cmd") -> bool:
    """A failed command that is housekeeping (set-up chatter, releasing what the page
    already dropped): not a failure a person needs to see."""
    if cmd.method == INTERNAL_METHOD:
        return True
    text = _error_text(cmd.error).lower()
    return any(pattern in text for pattern in HARMLESS_ERRORS)


def _calls(cmd: "_Cmd") -> int:
    if cmd.method == INTERNAL_METHOD:
        return max(1, _int(cmd.params.get("count")))
    return 1


def _plumbing_child(cmd: "_Cmd") -> dict[str, Any]:
    failed = cmd.status == Command.Status.FAILED
    child = _child(
        cmd.started_at,
        "command",
        _method_label(cmd.method),
        status="info" if failed else _command_status(cmd.status),
        duration_ms=cmd.duration_ms,
        commands=[cmd.id],
    )
    child["method"] = cmd.method
    child["calls"] = _calls(cmd)
    if failed:  # housekeeping: said, not failed
        child["message"] += f" (the page had moved on: {_error_text(cmd.error)})"
    return child


def _append_call(children: list[dict[str, Any]], child: dict[str, Any]) -> None:
    """Consecutive calls of one method read as one child: "Runtime.callFunctionOn (4 times)"."""
    last = children[-1] if children else None
    if (
        last is not None
        and last.get("method") == child["method"]
        and last["status"] == child["status"]
        and child["status"] != "info"
    ):
        last["calls"] += child["calls"]
        last["message"] = f"{_method_label(child['method'])} ({last['calls']} times)"
        last["source"]["commands"] = (last["source"]["commands"] + child["source"]["commands"])[
            :MAX_SOURCE_REFS
        ]
        last["durationMs"] = (last["durationMs"] or 0) + (child["durationMs"] or 0)
        return
    if len(children) < MAX_CHILDREN:
        children.append(child)


def _navigation_status(item: _Item, status: int, http_item: _Item) -> None:
    item.state["http"] = status
    item.events.extend(http_item.events)
    item.severity = "error" if status >= 500 else "warning"
    item.state["failed_status"] = True


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def _place(url: str, origins: set[str]) -> str:
    """A navigation's URL as a person reads it: in full the first time an origin is
    visited, then its path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in origins:
        origins.add(origin)
        return url
    path = parts.path or "/"
    place = (
        path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )
    return place if len(place) <= MAX_PLACE else place[: MAX_PLACE - 1] + "…"


# The run's own items ------------------------------------------------------------------


def _run_items(run: Run) -> list[_Item]:
    items = [
        _Item(
            id=f"act_{run.id}_started",
            time=run.started_at,
            type="run.started",
            page_id="",
            order=0,
            message=f"Run {run.name} started" if run.name else "Run started",
            status="running" if run.is_active else "info",
        )
    ]
    if run.ended_at is not None and not run.is_active:
        failed = run.status == Run.Status.FAILED
        took = human_duration(run.current_duration_ms)
        if failed:
            error = _error_text(run.error)
            message = f"Run failed after {took}" + (f": {error}" if error else "")
        else:
            message = f"Run completed in {took}"
        items.append(
            _Item(
                id=f"act_{run.id}_ended",
                time=run.ended_at,
                type="run.failed" if failed else "run.completed",
                page_id="",
                order=0,
                message=message,
                status="failed" if failed else "succeeded",
                severity="error" if failed else "info",
                duration_ms=run.current_duration_ms,
            )
        )
    return items


# Small helpers ------------------------------------------------------------------------


def _keystroke(method: str, params: dict[str, Any]) -> tuple[int, str | None, bool]:
    """(characters typed, special key pressed, whether text was redacted) of one command."""
    text = params.get("text")
    if method == "Input.insertText":
        if text == REDACTED and _int(params.get("length")) > 0:
            return _int(params.get("length")), None, False  # the proxy kept its length
        if not isinstance(text, str) or text == REDACTED:
            return 0, None, True
        return len(text), None, False
    kind = params.get("type")
    key = str(params.get("key") or "")
    if kind not in ("keyDown", "rawKeyDown", "char") or key in MODIFIER_KEYS:
        return 0, None, False
    if key == REDACTED:  # a printable key whose value the proxy hid: one character
        return (0, None, False) if kind == "rawKeyDown" else (1, None, False)
    if len(key) > 1:  # a named key: Enter, Tab, Backspace, ArrowLeft, F5, …
        if kind == "char":
            return 0, None, False  # its rawKeyDown already counted it
        return 0, _shortcut(params, key), False
    if kind != "char" and key and _int(params.get("modifiers")) & SHORTCUT_BITS:
        return 0, _shortcut(params, key), False
    if kind == "rawKeyDown":
        return 0, None, False  # the char event that follows carries the text
    if text == REDACTED:  # one key's text, hidden by the proxy: one character
        return 1, None, False
    return (len(text), None, False) if isinstance(text, str) and text else (0, None, False)


def _shortcut(params: dict[str, Any], key: str) -> str:
    modifiers = [name for bit, name in SHORTCUT_MODIFIERS if _int(params.get("modifiers")) & bit]
    return "+".join([*modifiers, key])


def _command_status(status: str) -> str:
    return {"failed": "failed", "pending": "running"}.get(status, "succeeded")


def _method_label(method: str) -> str:
    """The CDP proxy groups a client library's own set-up calls (Emulation.*, Page.enable,
    …) into commands of INTERNAL_METHOD; a person reads them as set-up, not as steps."""
    return "Automation set-up calls" if method == INTERNAL_METHOD else method


def _command_message(method: str, status: str, error: Any) -> str:
    if status != Command.Status.FAILED:
        return _method_label(method)
    text = _error_text(error)
    return f"{_method_label(method)} failed" + (f": {text}" if text else "")


def _error_text(error: Any) -> str:
    if error in (None, "", {}, []):
        return ""
    if isinstance(error, dict):
        for key in ("message", "errorText", "error", "reason"):
            if error.get(key):
                return _text(error[key])
        return _text(json.dumps(error, sort_keys=True, default=str))
    return _text(error)


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


def _distance(x1: float, y1: float, x2: float, y2: float) -> float:
    return float(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5)


def _point(x: float, y: float) -> str:
    return f"({round(x)}, {round(y)})"


def _same_page(a: str, b: str) -> bool:
    return a == b or not a or not b


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _times(name: str, count: int) -> str:
    return name if count == 1 else f"{name} {count} times"


def _size(value: Any) -> str:
    size = _number(value)
    if size <= 0:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def human_duration(ms: int | None) -> str:
    """1.2 s, 3 m 04 s, 2 h 05 m: short, and precise where it matters."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
