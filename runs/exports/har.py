"""The run's network log as HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/).

Entries come from the `network.request` events joined by request id to the
`network.response`, `network.failed` or `network.blocked` event that ended them. The
events are read in order with a database cursor and each entry is written as soon as its
request has ended, so memory holds only the requests still open at that point of the run
(at most MAX_OPEN; beyond that the oldest goes out as unfinished). Headers are stored
redacted (runs.cdp.redact_headers) and pass through it again here; no bodies are kept.
"""

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from django.db.models import Min, QuerySet

from runs.cdp import redact_headers
from runs.models import Event, Run

NETWORK_TYPES = ("network.request", "network.response", "network.failed", "network.blocked")
ENDING_TYPES = frozenset(NETWORK_TYPES[1:])
MAX_OPEN = 10_000
MAX_PAGES = 1_000
CREATOR = {"name": "bctrl", "version": "0.1.0"}
CONTENT_TYPE = "application/json"


def har_filename(run: Run, page_id: str | None = None) -> str:
    name = f"{run.id}-{page_id}" if page_id else run.id
    return re.sub(r"[^\w.-]", "_", name)[:150] + ".har"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header_list(headers: Any) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in redact_headers(headers).items()]


def _query_string(url: str) -> list[dict[str, str]]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    return [{"name": n, "value": v} for n, v in parse_qsl(query, keep_blank_values=True)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _span(timing: dict[str, Any], start: str, end: str) -> float:
    a, b = _number(timing.get(start)), _number(timing.get(end))
    if a is None or b is None or a < 0 or b < a:
        return -1
    return round(b - a, 3)


def _timings(duration_ms: float, timing: Any) -> dict[str, float]:
    """HAR timings from Chromium's ResourceTiming (milliseconds from its requestTime)
    when the response had one, else the whole duration as waiting."""
    if not isinstance(timing, dict):
        return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                "wait": duration_ms, "receive": 0}  # fmt: skip
    send_start = _number(timing.get("sendStart")) or 0.0
    send_end = max(_number(timing.get("sendEnd")) or send_start, send_start)
    headers_end = max(_number(timing.get("receiveHeadersEnd")) or send_end, send_end)
    dns = _span(timing, "dnsStart", "dnsEnd")
    connect = _span(timing, "connectStart", "connectEnd")
    ssl = _span(timing, "sslStart", "sslEnd")
    blocked = max(send_start - sum(t for t in (dns, connect) if t > 0), 0.0)
    return {
        "blocked": round(blocked, 3),
        "dns": dns,
        "connect": connect,  # includes ssl, as HAR 1.2 says
        "ssl": ssl,
        "send": round(send_end - send_start, 3),
        "wait": round(headers_end - send_end, 3),
        "receive": round(max(duration_ms - headers_end, 0.0), 3),
    }


def _entry(request: Event, ending: Event | None) -> dict[str, Any]:
    sent = request.data
    url = str(sent.get("url", ""))
    data = ending.data if ending is not None else {}
    duration = _number(data.get("durationMs"))
    if duration is None:
        duration = max((ending.time - request.time).total_seconds() * 1000, 0.0) if ending else 0.0
    timings = _timings(
        duration, data.get("timing") if ending and ending.type == "network.response" else None
    )
    request_headers = data.get("requestHeaders") or sent.get("headers")
    status = data.get("status") if isinstance(data.get("status"), int) else 0
    response_headers = _header_list(data.get("headers"))
    mime_type = str(data.get("mimeType") or "")
    size = _number(data.get("encodedDataLength"))
    location = next((h["value"] for h in response_headers if h["name"].lower() == "location"), "")
    entry: dict[str, Any] = {
        "startedDateTime": _iso(request.time),
        # The sum of the timings, ssl left out: connect includes it.
        "time": round(sum(t for name, t in timings.items() if t > 0 and name != "ssl"), 3),
        "request": {
            "method": str(sent.get("method") or "GET"),
            "url": url,
            "httpVersion": "",
            "cookies": [],
            "headers": _header_list(request_headers),
            "queryString": _query_string(url),
            "headersSize": -1,
            "bodySize": -1,
        },
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": response_headers,
            "content": {"size": int(size) if size is not None else 0, "mimeType": mime_type},
            "redirectURL": location,
            "headersSize": -1,
            "bodySize": int(size) if size is not None else -1,
        },
        "cache": {},
        "timings": timings,
        "_resourceType": str(sent.get("resourceType") or data.get("resourceType") or ""),
    }
    if request.page_id:
        entry["pageref"] = request.page_id
    if ending is None:
        entry["_error"] = "The run ended before this request did."
    elif ending.type == "network.failed":
        entry["_error"] = str(data.get("errorText") or "failed")
        if data.get("canceled"):
            entry["_canceled"] = True
    elif ending.type == "network.blocked":
        entry["_error"] = f"Blocked: {data.get('reason') or 'refused'}"
    return entry


def _pages(run: Run, page_id: str | None) -> list[dict[str, Any]]:
    events = Event.objects.filter(run=run, type="network.request").exclude(page_id="")
    if page_id:
        events = events.filter(page_id=page_id)
    firsts = events.values("page_id").annotate(first=Min("time")).order_by("first")[:MAX_PAGES]
    pages = []
    for row in firsts:
        navigation = (
            Event.objects.filter(run=run, type="navigation", page_id=row["page_id"])
            .order_by("seq")
            .values_list("data", flat=True)
            .first()
        )
        title = (navigation or {}).get("url") or row["page_id"]
        pages.append(
            {
                "startedDateTime": _iso(row["first"]),
                "id": row["page_id"],
                "title": str(title),
                "pageTimings": {},
            }
        )
    return pages


def _in_batches(events: QuerySet[Event], size: int = 500) -> Iterator[Event]:
    """The events in order, one query per batch (by seq): no cursor held open between
    batches, so the stream can go out from any thread."""
    after = -1
    while True:
        batch = list(events.filter(seq__gt=after).order_by("seq")[:size])
        yield from batch
        if len(batch) < size:
            return
        after = batch[-1].seq


def har_entries(run: Run, page_id: str | None = None) -> Iterator[dict[str, Any]]:
    """The run's HAR entries in the order their requests ended."""
    events = Event.objects.filter(run=run, type__in=NETWORK_TYPES)
    if page_id:
        events = events.filter(page_id=page_id)
    open_requests: dict[tuple[str, str], Event] = {}
    for event in _in_batches(events):
        key = (event.page_id, str(event.data.get("requestId", "")))
        if event.type == "network.request":
            if key in open_requests:  # the same id again without an end: a lost end
                yield _entry(open_requests.pop(key), None)
            open_requests[key] = event
            if len(open_requests) > MAX_OPEN:
                oldest = next(iter(open_requests))
                yield _entry(open_requests.pop(oldest), None)
        elif event.type in ENDING_TYPES:
            request = open_requests.pop(key, None)
            if request is not None:
                yield _entry(request, event)
            elif event.type != "network.response":
                # A refusal before any request went out (the egress proxy, a worker).
                stand_in = Event(
                    run=run,
                    seq=event.seq,
                    time=event.time,
                    type="network.request",
                    page_id=event.page_id,
                    data={"url": event.data.get("url", ""), "method": event.data.get("method")},
                )
                yield _entry(stand_in, event)
    for request in open_requests.values():
        yield _entry(request, None)


def har_chunks(run: Run, page_id: str | None = None, *, named: bool = True) -> Iterator[bytes]:
    """The HAR document as bytes, one entry at a time. `named`: whether it says the run's
    id (a lease's viewer is not told it)."""
    head = {
        "version": "1.2",
        "creator": CREATOR,
        "pages": _pages(run, page_id),
        "comment": (f"Run {run.id}" + (f", page {page_id}" if page_id else ""))
        if named
        else "A recorded run",
    }
    yield b'{"log":' + orjson.dumps(head)[:-1] + b',"entries":['
    first = True
    for entry in har_entries(run, page_id):
        yield (b"" if first else b",") + orjson.dumps(entry)
        first = False
    yield b"]}}"
