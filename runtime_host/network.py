"""The network events of a run's pages: each request, its response (with the headers
Chromium reports apart, in its ExtraInfo events) or its failure, and the refusals of the
egress proxy (runtime_host/egress.py) matched to the requests they failed. Headers are
stored redacted (runs.cdp.redact_headers)."""

import asyncio
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from runs.cdp import redact_headers
from runs.confinement import url_refusal
from runtime_host.egress import destination_key
from runtime_host.parts import HostedBrowser
from runtime_host.targets import Target

MAX_PENDING_EXTRAS = 1000
# How long a finished response that Chromium said has ExtraInfo headers waits for them
# before it is written without (they end the wait when they come; on a loaded machine
# they came more than a second late and the response lost its Set-Cookie).
EXTRA_INFO_WAIT_S = 5.0
# How long a refusal of the egress proxy waits for the page's failure of that request.
BLOCK_MATCH_S = 2.0


def _took(known: dict[str, Any], params: dict[str, Any]) -> dict[str, int]:
    """{"durationMs"}: from the request's CDP timestamp to this event's, when both exist."""
    start, end = known.get("timestamp"), params.get("timestamp")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or end < start:
        return {}
    return {"durationMs": round((end - start) * 1000)}


class NetworkLog:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser
        self.blocked: dict[str, list[str]] = {}  # host:port → the proxy's refusals

    def handle(self, method: str, target: Target, params: dict[str, Any]) -> None:
        """A `Network.*` event of one of the browser's targets."""
        handler = NETWORK_HANDLERS.get(method)
        if handler is not None:
            handler(self, target, params)

    def _request(self, target: Target, params: dict[str, Any]) -> None:
        request = params.get("request") or {}
        url = request.get("url", "")
        if url.startswith("data:"):
            return
        request_id = params["requestId"]
        redirected = target.requests.pop(request_id, None)
        if redirected is not None and params.get("redirectResponse"):
            response = params["redirectResponse"]
            data = {
                "requestId": request_id,
                "url": redirected["url"],
                "status": response.get("status"),
                "mimeType": response.get("mimeType", ""),
                "encodedDataLength": response.get("encodedDataLength", 0),
                "headers": redact_headers(response.get("headers")),
            }
            self.browser.writer.event(
                "network.response", {**data, **_took(redirected, params)}, page_id=target.page_id
            )
        known: dict[str, Any] = {"url": url, "method": request.get("method", "")}
        if isinstance(params.get("timestamp"), int | float):
            known["timestamp"] = params["timestamp"]
        extra = target.request_extras.pop(request_id, None)
        if extra is not None:
            known["requestHeaders"] = extra
        target.requests[request_id] = known
        self.browser.writer.event(
            "network.request",
            {
                "requestId": request_id,
                "method": request.get("method", ""),
                "url": url,
                "resourceType": params.get("type", "Other"),
                "headers": redact_headers(request.get("headers")),
            },
            page_id=target.page_id,
        )

    def _request_extra(self, target: Target, params: dict[str, Any]) -> None:
        """The headers the request went out with (cookies included), which Chromium
        reports apart from the request and sometimes before it."""
        headers = redact_headers(params.get("headers"))
        known = target.requests.get(params.get("requestId", ""))
        if known is not None:
            known["requestHeaders"] = headers
        elif len(target.request_extras) < MAX_PENDING_EXTRAS:
            target.request_extras[params.get("requestId", "")] = headers

    def _response(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.get(params["requestId"])
        if known is None:
            return
        response = params.get("response") or {}
        extra_came = "rawResponseHeaders" in known
        known["response"] = {
            "requestId": params["requestId"],
            "url": response.get("url", known["url"]),
            "status": response.get("status"),
            "mimeType": response.get("mimeType", ""),
            "resourceType": params.get("type", ""),
            "headers": known.pop("rawResponseHeaders", None)
            or redact_headers(response.get("headers")),
        }
        timing = response.get("timing")
        if timing:
            known["response"]["timing"] = timing
        # Chromium sends the headers as received (Set-Cookie) apart, sometimes after the end.
        known["awaitsExtra"] = bool(params.get("hasExtraInfo")) and not extra_came

    def _response_extra(self, target: Target, params: dict[str, Any]) -> None:
        """The response's headers as received (Set-Cookie included), redacted."""
        finished = target.finishing.pop(params.get("requestId", ""), None)
        if finished is not None:  # it ended first: written now, with these headers
            finished["data"]["headers"] = redact_headers(params.get("headers"))
            self._write_response(target, finished)
            return
        known = target.requests.get(params.get("requestId", ""))
        if known is None:
            return
        headers = redact_headers(params.get("headers"))
        if "response" in known:
            known["response"]["headers"] = headers
            known["awaitsExtra"] = False
        else:
            known["rawResponseHeaders"] = headers

    def _finished(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.pop(params["requestId"], None)
        if known is None or "response" not in known:
            return
        data = {
            **known["response"],
            "encodedDataLength": params.get("encodedDataLength", 0),
            **_took(known, params),
        }
        if "requestHeaders" in known:
            data["requestHeaders"] = known["requestHeaders"]
        finished = {"data": data, "time": timezone.now()}
        if known.get("awaitsExtra") and len(target.finishing) < MAX_PENDING_EXTRAS:
            target.finishing[params["requestId"]] = finished
            self.browser.spawn(self._write_response_later(target, params["requestId"]))
            return
        self._write_response(target, finished)

    def _write_response(self, target: Target, finished: dict[str, Any]) -> None:
        self.browser.writer.event(
            "network.response", finished["data"], page_id=target.page_id, time=finished["time"]
        )

    def write_finishing(self, target: Target) -> None:
        """Writes the target's responses still waiting for their headers, as they are."""
        for request_id in list(target.finishing):  # in the order they ended
            self._write_response(target, target.finishing.pop(request_id))

    async def _write_response_later(self, target: Target, request_id: str) -> None:
        """A response whose ExtraInfo headers did not come: written as it is."""
        await asyncio.sleep(EXTRA_INFO_WAIT_S)
        finished = target.finishing.pop(request_id, None)
        if finished is not None:
            self._write_response(target, finished)

    def _failed(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.pop(params["requestId"], None)
        if known is None:
            return
        reason = self._blocked_reason(known["url"], params.get("errorText", ""))
        if reason is not None:
            data = {"requestId": params["requestId"], "url": known["url"], "reason": reason}
            data["method"] = known["method"]
            self.browser.writer.event("network.blocked", data, page_id=target.page_id)
            return
        data = {
            "requestId": params["requestId"],
            "url": known["url"],
            "errorText": params.get("errorText", ""),
            "method": known["method"],
        }
        if params.get("canceled"):
            data["canceled"] = True
        if "response" in known:
            data["status"] = known["response"]["status"]
        data.update(_took(known, params))
        self.browser.writer.event("network.failed", data, page_id=target.page_id)

    # The egress proxy's refusals ---------------------------------------------------

    def egress_blocked(self, url: str, reason: str) -> None:
        """The egress proxy refused a connection. The page's own failure of that request
        (Network.loadingFailed) follows and becomes the `network.blocked` event with its
        page; one that never comes (a websocket, a worker's request) is written anyway."""
        key = destination_key(url)
        self.blocked.setdefault(key, []).append(reason)
        self.browser.spawn(self._unmatched_block(key, url, reason))

    async def _unmatched_block(self, key: str, url: str, reason: str) -> None:
        await asyncio.sleep(BLOCK_MATCH_S)
        pending = self.blocked.get(key)
        if pending and reason in pending:
            pending.remove(reason)
            self.browser.writer.event("network.blocked", {"url": url, "reason": reason})

    def _blocked_reason(self, url: str, error_text: str) -> str | None:
        if error_text == "net::ERR_BLOCKED_BY_ADMINISTRATOR":
            return url_refusal(url) or "the browser's policy blocks this URL"
        pending = self.blocked.get(destination_key(url))
        return pending.pop(0) if pending else None

    def write_refusals_left(self) -> None:
        """The proxy's refusals no page failure claimed, written as they are (at stop)."""
        for key, reasons in self.blocked.items():
            for reason in reasons:
                self.browser.writer.event("network.blocked", {"url": key, "reason": reason})


NETWORK_HANDLERS: dict[str, Callable[[NetworkLog, Target, dict[str, Any]], None]] = {
    "Network.requestWillBeSent": NetworkLog._request,
    "Network.requestWillBeSentExtraInfo": NetworkLog._request_extra,
    "Network.responseReceived": NetworkLog._response,
    "Network.responseReceivedExtraInfo": NetworkLog._response_extra,
    "Network.loadingFinished": NetworkLog._finished,
    "Network.loadingFailed": NetworkLog._failed,
}
