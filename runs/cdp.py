"""What the CDP proxy (runtimes.cdp_proxy) knows about the DevTools protocol: which client
commands it records and how, with secrets redacted. (The project's CDP client is
runs.cdp_client.)

Recording rules
---------------
A client→browser message with an `id` and a `method` is remembered until the browser
answers that id; the answer makes it a Command of the run (succeeded, or failed with
the CDP error), timed from send to answer, on the page whose flat session carried it
(`sessionId` → target id, learnt from `Target.attachedToTarget` events and
`Target.attachToTarget` answers going to that client).

- Secrets are redacted before anything is stored (`redact_params`): typed text (inserted
  text keeps its length), printable
  keys, header values, cookie values, auth challenge answers, request bodies and the
  values passed to `Runtime.callFunctionOn` (Playwright's `fill` passes the text there).
  The headers of recorded network events go through `redact_headers`: cookies,
  authorization and API-key headers keep their name, never their value.
- Scripts (`Runtime.evaluate` expression, `callFunctionOn` functionDeclaration) are kept
  up to 2 KB; any params larger than 16 KB once redacted are cut down, with a marker.
- The set-up chatter a client sends on every target (`INTERNAL_METHODS`, `Emulation.*`)
  is grouped: one command per burst and page, method `cdp.internal`, source
  `cdp.internal`, params `{"count": n, "methods": {method: n}}`. A burst ends after
  BURST_GAP_S of quiet or when the page receives a command that is not set-up chatter.
- Commands still unanswered when the connection ends are recorded as failed.

Messages are only peeked at (orjson); the proxy forwards the original text.
"""

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

REDACTED = "[redacted]"
MAX_SCRIPT_CHARS = 2 * 1024
MAX_PARAMS_BYTES = 16 * 1024
BURST_GAP_S = 1.0
MAX_PENDING = 10_000
# Recorded network headers (runtime_host.network, runs.services.events_append) keep the
# names of these and never their values: credentials and session cookies.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "set-cookie2",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)
MAX_HEADERS = 100
MAX_HEADER_CHARS = 2000
INTERNAL_SOURCE = "cdp.internal"
INTERNAL_METHOD = "cdp.internal"

INTERNAL_METHODS = frozenset(
    {
        "Runtime.runIfWaitingForDebugger",
        "Runtime.enable",
        "Runtime.addBinding",
        "Target.setAutoAttach",
        "Target.setDiscoverTargets",
        "Target.getTargetInfo",
        "Page.enable",
        "Page.getFrameTree",
        "Page.setLifecycleEventsEnabled",
        "Page.createIsolatedWorld",
        "Page.addScriptToEvaluateOnNewDocument",
        "Page.setInterceptFileChooserDialog",
        "Page.setBypassCSP",
        "Log.enable",
        "Network.enable",
        "Network.setCacheDisabled",
        "Inspector.enable",
        "Security.setIgnoreCertificateErrors",
        "ServiceWorker.enable",
        "Browser.getVersion",
        "Browser.setDownloadBehavior",
    }
)
INTERNAL_PREFIXES = ("Emulation.",)

# CDP key modifiers: Alt=1, Ctrl=2, Meta=4, Shift=8. A key pressed with Alt, Ctrl or
# Meta is a shortcut (Control+a), not typed text, and is kept.
_SHORTCUT_BITS = 1 | 2 | 4
_KEY_SECRET_FIELDS = ("text", "unmodifiedText", "key", "code", "keyIdentifier")
_KEY_CODE_FIELDS = ("windowsVirtualKeyCode", "nativeVirtualKeyCode")
# A response as Chromium writes it: the id first, then "result" or "error".
_RESPONSE_HEAD = re.compile(r'\{"id":(\d+),"(result|error)"')
# Answers whose result the recorder reads (session and target ids).
_RESULT_METHODS = frozenset({"Target.attachToTarget", "Target.createTarget"})
_PEEK_LIMIT = 64 * 1024


def is_internal(method: str) -> bool:
    return method in INTERNAL_METHODS or method.startswith(INTERNAL_PREFIXES)


# Redaction ----------------------------------------------------------------------------


def redact_params(method: str, params: Any) -> dict[str, Any]:
    """`params` as it may be stored: secrets replaced, scripts and size bounded."""
    if not isinstance(params, dict):
        return {}
    redacted = dict(params)
    if method == "Input.insertText":
        text = redacted.get("text")
        redacted["text"] = REDACTED
        if isinstance(text, str):
            redacted["length"] = len(text)  # activity says how much was typed, never what
    elif method in ("Input.dispatchKeyEvent", "Input.imeSetComposition"):
        _redact_key_event(redacted)
    elif method == "Network.setExtraHTTPHeaders":
        redacted["headers"] = _redact_header_map(redacted.get("headers"))
    elif method in ("Fetch.continueRequest", "Fetch.fulfillRequest", "Fetch.continueResponse"):
        for name in ("headers", "responseHeaders"):
            if name in redacted:
                redacted[name] = _redact_header_list(redacted[name])
        for name in ("postData", "body"):
            if name in redacted:
                redacted[name] = REDACTED
    elif method == "Fetch.continueWithAuth":
        challenge = redacted.get("authChallengeResponse")
        if isinstance(challenge, dict):
            redacted["authChallengeResponse"] = {
                key: REDACTED if key in ("username", "password") else value
                for key, value in challenge.items()
            }
    elif method in ("Network.setCookie",):
        if "value" in redacted:
            redacted["value"] = REDACTED
    elif method in ("Network.setCookies", "Storage.setCookies"):
        cookies = redacted.get("cookies")
        if isinstance(cookies, list):
            redacted["cookies"] = [
                {**cookie, "value": REDACTED} if isinstance(cookie, dict) else cookie
                for cookie in cookies
            ]
    elif method == "Runtime.evaluate":
        redacted["expression"] = _truncate_text(redacted.get("expression"))
    elif method == "Runtime.callFunctionOn":
        redacted["functionDeclaration"] = _truncate_text(redacted.get("functionDeclaration"))
        arguments = redacted.get("arguments")
        if isinstance(arguments, list):
            redacted["arguments"] = [
                {**argument, "value": REDACTED}
                if isinstance(argument, dict) and "value" in argument
                else argument
                for argument in arguments
            ]
    return _bounded(redacted)


def redact_headers(headers: Any) -> dict[str, str]:
    """HTTP headers of a recorded request or response as they may be stored: the values
    of SECRET_HEADERS replaced (the name stays, so a reader sees that one was sent), at
    most MAX_HEADERS headers of at most MAX_HEADER_CHARS characters each."""
    if not isinstance(headers, dict):
        return {}
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:MAX_HEADERS]:
        if not isinstance(name, str):
            continue
        if name.lower() in SECRET_HEADERS:
            kept[name] = REDACTED
        else:
            text = value if isinstance(value, str) else str(value)
            kept[name] = text[:MAX_HEADER_CHARS]
    return kept


def _redact_key_event(params: dict[str, Any]) -> None:
    key = params.get("key")
    text = params.get("text")
    raw_modifiers = params.get("modifiers")
    modifiers = raw_modifiers if isinstance(raw_modifiers, int) else 0
    printable = (isinstance(key, str) and len(key) == 1) or (
        isinstance(text, str) and text != "" and text.isprintable()
    )
    if not printable or modifiers & _SHORTCUT_BITS:
        return
    for name in _KEY_SECRET_FIELDS:
        if name in params:
            params[name] = REDACTED
    for name in _KEY_CODE_FIELDS:
        params.pop(name, None)


def _redact_header_map(headers: Any) -> Any:
    if not isinstance(headers, dict):
        return headers
    return dict.fromkeys(headers, REDACTED)


def _redact_header_list(headers: Any) -> Any:
    if not isinstance(headers, list):
        return headers
    return [
        {**header, "value": REDACTED} if isinstance(header, dict) else header for header in headers
    ]


def _truncate_text(value: Any) -> Any:
    if not isinstance(value, str) or len(value) <= MAX_SCRIPT_CHARS:
        return value
    return value[:MAX_SCRIPT_CHARS] + f"…[truncated {len(value) - MAX_SCRIPT_CHARS} chars]"


def _bounded(params: dict[str, Any]) -> dict[str, Any]:
    size = len(orjson.dumps(params))
    if size <= MAX_PARAMS_BYTES:
        return params
    kept: dict[str, Any] = {}
    budget = MAX_PARAMS_BYTES // 2
    for key, value in params.items():
        encoded = orjson.dumps(value)
        if len(encoded) <= min(budget, 1024):
            kept[key] = value
            budget -= len(encoded)
        elif isinstance(value, str):
            kept[key] = value[:256] + f"…[truncated {len(value) - 256} chars]"
        else:
            kept[key] = f"[truncated: {len(encoded)} bytes]"
    kept["[truncated]"] = {"bytes": size}
    return kept


# Recording ----------------------------------------------------------------------------


def json_object(text: str | bytes) -> dict[str, Any] | None:
    """`text` parsed, if it is a JSON object; None for anything else (websocket peers of
    the proxy, the live view and the host link may send anything)."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


@dataclass
class _Pending:
    method: str
    params: Any
    session_id: str
    started_at: datetime
    started: float


@dataclass
class _Burst:
    page_id: str
    started_at: datetime
    ended_at: datetime
    last: float
    methods: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    error: Any = None

    def command(self) -> dict[str, Any]:
        count = sum(self.methods.values())
        return {
            "method": INTERNAL_METHOD,
            "params": {"count": count, "methods": dict(self.methods)},
            "status": "failed" if self.failed else "succeeded",
            "source": INTERNAL_SOURCE,
            "page_id": self.page_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "error": {**self.error, "failedCount": self.failed} if self.error else None,
        }


class CommandRecorder:
    """The commands of one client connection, ready to be stored in batches.

    Feed it every message (`from_client`, `from_browser`); `take()` hands over the
    finished commands as `runs.services.commands_record` rows.
    """

    def __init__(self) -> None:
        self.pending: dict[int, _Pending] = {}
        self.sessions: dict[str, str] = {}  # flat sessionId → target id
        self.ready: list[dict[str, Any]] = []
        self.bursts: dict[str, _Burst] = {}  # by sessionId ("" is the browser session)
        self.last_target = ""  # the target of the client's latest command on a session

    # Messages ---------------------------------------------------------------------

    def from_client(self, text: str | bytes) -> None:
        message = json_object(text)
        if message is None:
            return
        command_id, method = message.get("id"), message.get("method")
        if type(command_id) is not int or not isinstance(method, str):
            return
        session_id = message.get("sessionId")
        self.last_target = self.sessions.get(session_id, "") if isinstance(session_id, str) else ""
        if len(self.pending) >= MAX_PENDING:  # a client that never gets answers
            self.pending.pop(next(iter(self.pending)))
        self.pending[command_id] = _Pending(
            method=method,
            params=message.get("params"),
            session_id=session_id if isinstance(session_id, str) else "",
            started_at=timezone.now(),
            started=time.monotonic(),
        )

    def from_browser(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text.startswith('{"method":'):
            if text.startswith(
                ('{"method":"Target.attachedToTarget"', '{"method":"Target.detached')
            ):
                self._target_event(text)
            return
        head = _RESPONSE_HEAD.match(text)
        if head is not None:
            pending = self.pending.pop(int(head[1]), None)
            if pending is None:
                return
            if head[2] == "result" and (
                pending.method not in _RESULT_METHODS or len(text) > _PEEK_LIMIT
            ):
                self._finish(pending, result=None, error=None)
                return
            self.pending[int(head[1])] = pending
        self._parsed_answer(text)

    def _parsed_answer(self, text: str) -> None:
        message = json_object(text)
        if message is None:
            return
        if "method" in message:
            if str(message["method"]).startswith("Target."):
                self._target_message(message)
            return
        command_id = message.get("id")
        if type(command_id) is not int or command_id not in self.pending:
            return
        pending = self.pending.pop(command_id)
        error = message.get("error")
        result = message.get("result") if isinstance(message.get("result"), dict) else None
        self._finish(pending, result=result, error=error if isinstance(error, dict) else None)

    def _target_event(self, text: str) -> None:
        message = json_object(text)
        if message is not None:
            self._target_message(message)

    def _target_message(self, message: dict[str, Any]) -> None:
        params = message.get("params") or {}
        session_id = params.get("sessionId")
        if not isinstance(session_id, str):
            return
        if message.get("method") == "Target.attachedToTarget":
            target = params.get("targetInfo") or {}
            if isinstance(target.get("targetId"), str):
                self.sessions[session_id] = target["targetId"]
        elif message.get("method") == "Target.detachedFromTarget":
            self.sessions.pop(session_id, None)

    # Commands ---------------------------------------------------------------------

    def page_of(self, pending: _Pending, result: dict[str, Any] | None) -> str:
        if pending.session_id:
            return self.sessions.get(pending.session_id, "")
        params = pending.params if isinstance(pending.params, dict) else {}
        target_id = params.get("targetId") or (result or {}).get("targetId")
        return target_id if isinstance(target_id, str) else ""

    def _finish(
        self, pending: _Pending, *, result: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        now = time.monotonic()
        ended_at = timezone.now()
        if pending.method == "Target.attachToTarget" and result:
            params = pending.params if isinstance(pending.params, dict) else {}
            session_id, target_id = result.get("sessionId"), params.get("targetId")
            if isinstance(session_id, str) and isinstance(target_id, str):
                self.sessions[session_id] = target_id
        page_id = self.page_of(pending, result)
        error_json = (
            {"code": error.get("code"), "message": str(error.get("message") or "")[:2000]}
            if error is not None
            else None
        )
        if is_internal(pending.method):
            self._add_to_burst(pending, page_id, ended_at, now, error_json)
            return
        self._close_burst(pending.session_id)
        self.ready.append(
            {
                "method": pending.method[:200],
                "params": redact_params(pending.method, pending.params),
                "status": "failed" if error_json else "succeeded",
                "source": "cdp",
                "page_id": page_id[:100],
                "started_at": pending.started_at,
                "ended_at": ended_at,
                "duration_ms": max(0, int((now - pending.started) * 1000)),
                "error": error_json,
            }
        )

    def _add_to_burst(
        self,
        pending: _Pending,
        page_id: str,
        ended_at: datetime,
        now: float,
        error: dict[str, Any] | None,
    ) -> None:
        burst = self.bursts.get(pending.session_id)
        if burst is not None and now - burst.last > BURST_GAP_S:
            self._close_burst(pending.session_id)
            burst = None
        if burst is None:
            burst = self.bursts[pending.session_id] = _Burst(
                page_id=page_id[:100],
                started_at=pending.started_at,
                ended_at=ended_at,
                last=now,
            )
        burst.methods[pending.method] += 1
        burst.ended_at, burst.last = ended_at, now
        burst.page_id = burst.page_id or page_id[:100]
        if error is not None:
            burst.failed += 1
            burst.error = burst.error or {**error, "method": pending.method}

    def _close_burst(self, session_id: str) -> None:
        burst = self.bursts.pop(session_id, None)
        if burst is not None:
            self.ready.append(burst.command())

    def take(self, *, final: bool = False) -> list[dict[str, Any]]:
        """The finished commands, and bursts quiet for BURST_GAP_S (all of them, and the
        unanswered commands as failed, when `final`)."""
        now = time.monotonic()
        for session_id, burst in list(self.bursts.items()):
            if final or now - burst.last > BURST_GAP_S:
                self._close_burst(session_id)
        if final:
            for pending in self.pending.values():
                if is_internal(pending.method):
                    continue
                self.ready.append(
                    {
                        "method": pending.method[:200],
                        "params": redact_params(pending.method, pending.params),
                        "status": "failed",
                        "source": "cdp",
                        "page_id": self.page_of(pending, None)[:100],
                        "started_at": pending.started_at,
                        "ended_at": timezone.now(),
                        "error": {"message": "The connection closed before the browser answered."},
                    }
                )
            self.pending.clear()
        batch, self.ready = self.ready, []
        return batch
