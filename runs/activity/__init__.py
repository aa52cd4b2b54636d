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

Where things live
-----------------
records.py (the rows read, and how their JSON is read), items.py (the item types and
their JSON), builder.py (the one pass, and which part takes which record),
grouping.py (typing, scroll, click and repeated-command bursts, and the page's reports
of inputs), navigation.py (navigations and the network), page_events.py (console,
dialogs, files, tabs, connections, lifecycle), takeovers.py (takeovers and handoffs),
folding.py (plumbing into steps), timeline.py (the items so far, and adding one),
naming.py and messages.py (how things are named, and the messages of items that grew).
"""

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from runs import selectors
from runs.activity.builder import Builder, run_items
from runs.activity.items import ITEM_TYPES, SEVERITIES, SEVERITY_RANK, Item
from runs.activity.messages import finish, render
from runs.activity.naming import human_duration
from runs.activity.records import COMMAND_FIELDS, EVENT_FIELDS, Record
from runs.models import Run

__all__ = [
    "ITEM_TYPES",
    "MAX_ITEMS",
    "MAX_RECORDS",
    "SEVERITIES",
    "Activity",
    "activity",
    "activity_items",
    "human_duration",
]

MAX_RECORDS = 50_000
MAX_ITEMS = 5_000


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
        selectors.events_of(run).order_by("-seq").values_list(*EVENT_FIELDS)
    )
    commands, commands_cut = _latest(
        selectors.commands_of(run).order_by("-started_at", "-id").values_list(*COMMAND_FIELDS)
    )
    # The host writes an input's event once it has named the element, timed when the
    # input happened: by time, not by seq, is the order things happened in.
    events.sort(key=lambda row: row[2])
    builder = Builder()
    for record in _merged(events, commands):
        builder.feed(record)
    builder.finish(live=run.is_active)
    middle = sorted(
        (item for item in builder.items if not item.hidden),
        key=lambda item: (item.time, item.order),
    )
    wanted_types = set(types) if types else None
    floor = SEVERITY_RANK[min_severity]
    head = run_items(run)
    filtered = bool(floor) or wanted_types is not None
    if filtered:
        # A burst's and a navigation command's severity, and a drag's type, are written
        # when the item is finished: filtering asks finished items.
        for item in [*head, *middle]:
            finish(item)

    def keep(item: Item) -> bool:
        return SEVERITY_RANK[item.severity] >= floor and (
            wanted_types is None or item.type in wanted_types
        )

    kept = [item for item in middle if keep(item)]
    truncated = events_cut or commands_cut or len(kept) > MAX_ITEMS
    kept = kept[-MAX_ITEMS:]
    head = [item for item in head if keep(item)]
    started = [item for item in head if item.type == "run.started"]
    ended = [item for item in head if item.type != "run.started"]
    # Each item finished once: above when filtering, by render otherwise.
    items = [item.as_json() if filtered else render(item) for item in [*started, *kept, *ended]]
    return Activity(items=items, truncated=truncated)


def _latest(rows: Any) -> tuple[list[tuple[Any, ...]], bool]:
    """The newest MAX_RECORDS rows of a newest-first query, oldest first, and whether cut."""
    fetched = list(rows[: MAX_RECORDS + 1])
    cut = len(fetched) > MAX_RECORDS
    fetched = fetched[:MAX_RECORDS]
    fetched.reverse()
    return fetched, cut


def _merged(events: list[tuple[Any, ...]], commands: list[tuple[Any, ...]]) -> Iterator[Record]:
    event_records = ((row[2], "e", row) for row in events)
    command_records = ((row[5], "c", row) for row in commands)
    return heapq.merge(event_records, command_records, key=lambda record: record[0])
