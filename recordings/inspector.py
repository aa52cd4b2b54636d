"""The replay inspector's data: a run's network requests, console messages and commands,
as rows on the replay's clock, for the Network, Console and Commands tabs beside the
player (static/js/replay.js). The Activity tab reads the manifest's activity.

`inspector_data(run, sections)` answers::

    {"network": [NetworkRow], "console": [ConsoleRow], "commands": [CommandRow],
     "truncated": {"network": bool, "console": bool, "commands": bool}}

(the TypedDicts below; static/js/replay.js reads them, and
tests/test_replay_inspector_browser.py shows it does)

with only the asked `sections` present. `timeMs` is epoch milliseconds, the clock of
the recording's rrweb events (both come from the runtime host's machine). A network row
is one request, from its `network.request` event to the `network.response`,
`network.failed` or `network.blocked` event of the same page and request id (a redirect
closes one row and its next request opens another); a row whose answer never came has
`status` None. Console rows are `console.message` events and `page.error` events (level
"error", with the page's stack when it had one).

The events, as the runtime host (runtime_host/network.py) writes them: `network.request`
{requestId, method, url, resourceType, headers}; `network.response` {requestId, url,
status, mimeType, resourceType, encodedDataLength, durationMs (from the request's CDP
timestamp), headers (the response's, as received), requestHeaders (as sent on the wire,
cookies included, when Chromium reported them)}; `network.failed` {requestId, url,
errorText, method, durationMs}; `network.blocked` {url, reason}; `console.message`
{level, text}; `page.error` {message, stack?}. Fields a client's own events lack are
left empty.

Headers: the runtime host stores them redacted (runs.cdp.redact_headers: cookies,
authorization and API keys keep their name, never their value); events a client posted
itself through the API go through the same function here, so no viewer ever reads one.
Commands are stored redacted already (runs.cdp.redact_params).

Size: the latest MAX_EVENTS network and console events and the latest MAX_COMMANDS
commands are read (`truncated` says when a cut applied); two queries whatever the run's
size. The caller has resolved `run` within the viewer's space or lease.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict

from runs.cdp import INTERNAL_METHOD, redact_headers
from runs.models import Command, Event, Run

SECTIONS = ("network", "console", "commands")
NETWORK_TYPES = ("network.request", "network.response", "network.failed", "network.blocked")
CONSOLE_TYPES = ("console.message", "page.error")
MAX_EVENTS = 20_000
MAX_COMMANDS = 5_000
MAX_TEXT = 4000


class NetworkRow(TypedDict):
    id: str
    timeMs: int
    pageId: str
    method: str
    url: str
    status: int | None
    resourceType: str
    mimeType: str
    sizeBytes: int | None
    durationMs: int | None
    failed: bool
    errorText: str
    blocked: str
    requestHeaders: dict[str, str]
    responseHeaders: dict[str, str]


class ConsoleRow(TypedDict):
    id: str
    timeMs: int
    pageId: str
    level: str
    text: str
    pageError: bool
    stack: str


class CommandRow(TypedDict):
    id: str
    timeMs: int
    pageId: str
    method: str
    internal: bool
    status: str
    durationMs: int | None
    params: dict[str, Any]
    error: str


def _ms(time: datetime) -> int:
    return int(time.timestamp() * 1000)


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _latest_events(run: Run, types: Iterable[str]) -> tuple[list[dict[str, Any]], bool]:
    found = (
        Event.objects.filter(run=run, type__in=list(types))
        .order_by("-seq")
        .values("seq", "time", "type", "page_id", "data")[: MAX_EVENTS + 1]
    )
    rows: list[dict[str, Any]] = [dict(row) for row in found]
    truncated = len(rows) > MAX_EVENTS
    rows = rows[:MAX_EVENTS]
    rows.reverse()
    return rows, truncated


def _request_row(event: dict[str, Any], data: dict[str, Any]) -> NetworkRow:
    return {
        "id": f"net_{event['seq']}",
        "timeMs": _ms(event["time"]),
        "pageId": event["page_id"],
        "method": _text(data.get("method")) or "GET",
        "url": _text(data.get("url")),
        "status": None,
        "resourceType": "Other",
        "mimeType": "",
        "sizeBytes": None,
        "durationMs": None,
        "failed": False,
        "errorText": "",
        "blocked": "",
        "requestHeaders": {},
        "responseHeaders": {},
    }


def network_rows(events: Iterable[dict[str, Any]]) -> list[NetworkRow]:
    rows: list[NetworkRow] = []
    open_rows: dict[tuple[str, str], NetworkRow] = {}
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        request_id = str(data.get("requestId") or "")
        key = (event["page_id"], request_id)
        if event["type"] == "network.request":
            row = _request_row(event, data)
            row["resourceType"] = _text(data.get("resourceType")) or "Other"
            row["requestHeaders"] = redact_headers(data.get("headers"))
            rows.append(row)
            if request_id:
                open_rows[key] = row
            continue
        found = open_rows.pop(key, None) if request_id else None
        if found is None:
            # An answer without its request (cut off by MAX_EVENTS, or a blocked
            # connection the page never asked for): a row of its own.
            found = _request_row(event, data)
            rows.append(found)
        duration = _number(data.get("durationMs"))
        if duration is None:
            duration = max(0, _ms(event["time"]) - found["timeMs"])
        found["durationMs"] = duration
        if _number(data.get("status")) is not None:
            found["status"] = _number(data.get("status"))
        if event["type"] == "network.response":
            found["mimeType"] = _text(data.get("mimeType"))
            found["sizeBytes"] = _number(data.get("encodedDataLength"))
            if data.get("resourceType"):
                found["resourceType"] = _text(data.get("resourceType"))
            found["responseHeaders"] = redact_headers(data.get("headers"))
            if data.get("requestHeaders"):
                found["requestHeaders"] = redact_headers(data.get("requestHeaders"))
        elif event["type"] == "network.failed":
            found["failed"] = True
            found["errorText"] = _text(data.get("errorText"))
        else:  # network.blocked
            found["failed"] = True
            found["blocked"] = _text(data.get("reason")) or "blocked"
    return rows


def console_rows(events: Iterable[dict[str, Any]]) -> list[ConsoleRow]:
    rows: list[ConsoleRow] = []
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        error = event["type"] == "page.error"
        rows.append(
            {
                "id": f"con_{event['seq']}",
                "timeMs": _ms(event["time"]),
                "pageId": event["page_id"],
                "level": "error" if error else (_text(data.get("level")) or "log"),
                "text": _text(data.get("message") if error else data.get("text")),
                "pageError": error,
                "stack": _text(data.get("stack")) if error else "",
            }
        )
    return rows


def command_rows(run: Run) -> tuple[list[CommandRow], bool]:
    found = list(
        Command.objects.filter(run=run)
        .order_by("-started_at", "-id")
        .values(
            "id", "method", "params", "status", "page_id", "started_at", "duration_ms", "error"
        )[: MAX_COMMANDS + 1]
    )
    truncated = len(found) > MAX_COMMANDS
    found = found[:MAX_COMMANDS]
    found.reverse()
    rows: list[CommandRow] = []
    for command in found:
        error = command["error"]
        message = error.get("message") if isinstance(error, dict) else error
        internal = command["method"] == INTERNAL_METHOD
        rows.append(
            {
                "id": command["id"],
                "timeMs": _ms(command["started_at"]),
                "pageId": command["page_id"],
                "method": "Automation set-up calls" if internal else command["method"],
                "internal": internal,
                "status": command["status"],
                "durationMs": command["duration_ms"],
                "params": command["params"] if isinstance(command["params"], dict) else {},
                "error": _text(message) if message is not None else "",
            }
        )
    return rows, truncated


def inspector_data(run: Run, sections: Iterable[str] = SECTIONS) -> dict[str, Any]:
    wanted = [section for section in SECTIONS if section in set(sections)]
    data: dict[str, Any] = {"truncated": {}}
    types = [
        *(NETWORK_TYPES if "network" in wanted else ()),
        *(CONSOLE_TYPES if "console" in wanted else ()),
    ]
    if types:
        events, truncated = _latest_events(run, types)
        if "network" in wanted:
            data["network"] = network_rows(e for e in events if e["type"] in NETWORK_TYPES)
            data["truncated"]["network"] = truncated
        if "console" in wanted:
            data["console"] = console_rows(e for e in events if e["type"] in CONSOLE_TYPES)
            data["truncated"]["console"] = truncated
    if "commands" in wanted:
        data["commands"], data["truncated"]["commands"] = command_rows(run)
    return data
