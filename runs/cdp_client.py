"""The project's one CDP client: a websocket to a browser's DevTools endpoint with flat
sessions. The runtime host instruments its browsers over it (runtime_host.browser) and
the screenshot API photographs a running browser with it (`capture_screenshot`).

`send_nowait` queues a command without waiting for its answer, which is what lets a
target's setup go out back-to-back before the target is resumed; `send` awaits the
answer. Every event goes to `on_event`, on the reader's turn, in the order the browser
sent it.
"""

import asyncio
import base64
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any], str], None]


class CdpError(Exception):
    """The browser answered a command with an error, or could not be reached."""


def _ignore_event(method: str, params: dict[str, Any], session_id: str) -> None:
    return None


class CdpConnection:
    """Sends commands (optionally to a flat session) and hands every event to `on_event`."""

    def __init__(self, ws: ClientConnection, on_event: EventHandler = _ignore_event) -> None:
        self._ws = ws
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    @classmethod
    async def connect(cls, url: str, on_event: EventHandler = _ignore_event) -> "CdpConnection":
        ws = await websockets.connect(
            url, max_size=None, ping_interval=None, open_timeout=10, compression=None
        )
        connection = cls(ws, on_event)
        connection._reader = asyncio.create_task(connection._read())
        return connection

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = orjson.loads(raw)
                if "id" in message:
                    method, future = self._pending.pop(message["id"], ("", None))
                    if future is not None and not future.done():
                        if "error" in message:
                            error = message["error"]
                            detail = (
                                error.get("message", error) if isinstance(error, dict) else error
                            )
                            future.set_exception(CdpError(f"{method}: {detail}"))
                        else:
                            future.set_result(message.get("result") or {})
                    continue
                try:
                    self._on_event(
                        message.get("method", ""),
                        message.get("params") or {},
                        message.get("sessionId", ""),
                    )
                except Exception:
                    logger.exception("CDP event handler failed on %s", message.get("method"))
        except websockets.ConnectionClosed as exc:
            self.close_reason = str(exc)
        except Exception as exc:
            logger.exception("CDP reader failed")
            self.close_reason = f"{type(exc).__name__}: {exc}"
        finally:
            for _, future in self._pending.values():
                if not future.done():
                    future.set_exception(CdpError("connection closed"))
            self._pending.clear()
            self.closed.set()

    def send_nowait(
        self, method: str, params: dict[str, Any] | None = None, session_id: str = ""
    ) -> "asyncio.Future[dict[str, Any]]":
        """Queues a command; the returned future resolves with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if self.closed.is_set():
            future.set_exception(CdpError("connection closed"))
            return future
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._pending[message_id] = (method, future)
        sending = asyncio.ensure_future(self._ws.send(orjson.dumps(message).decode()))

        def sent(task: "asyncio.Future[None]") -> None:
            if task.cancelled() or task.exception() is not None:
                self._pending.pop(message_id, None)
                if not future.done():
                    future.set_exception(CdpError(f"send failed: {method}"))

        sending.add_done_callback(sent)
        # Nobody may await a fire-and-forget command: keep its failure from being logged.
        future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        return future

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str = "",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        return await asyncio.wait_for(self.send_nowait(method, params, session_id), timeout)

    async def capture_png(self, session_id: str, *, timeout: float = 10.0) -> bytes:
        """A PNG of the page a flat session is attached to."""
        answer = await self.send("Page.captureScreenshot", {"format": "png"}, session_id, timeout)
        return base64.b64decode(answer["data"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self.closed.set()


# The screenshot API ---------------------------------------------------------------------


@dataclass(frozen=True)
class PageScreenshot:
    png: bytes
    target_id: str
    url: str
    title: str


def pick_page(targets: list[dict[str, Any]], preferred: str | None) -> dict[str, Any] | None:
    """The page to photograph: `preferred` (the page a client used last) if it is still
    open, else an attached page that shows something, else any page with content, else
    any page."""
    pages = [target for target in targets if target.get("type") == "page"]
    if not pages:
        return None
    for target in pages:
        if preferred and target.get("targetId") == preferred:
            return target

    def shows_something(target: dict[str, Any]) -> bool:
        return target.get("url") not in ("", "about:blank", None)

    for candidates in (
        [t for t in pages if t.get("attached") and shows_something(t)],
        [t for t in pages if shows_something(t)],
        pages,
    ):
        if candidates:
            return candidates[0]
    return None


async def _capture(
    connection: CdpConnection, session_id: str, timeout_s: float, attempts: int = 4
) -> bytes:
    # A tab that has not painted a frame yet (just opened, or in the background) answers
    # "Unable to capture screenshot"; it does once it has.
    for attempt in range(attempts):
        try:
            return await connection.capture_png(session_id, timeout=timeout_s)
        except CdpError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


async def capture_screenshot(
    cdp_endpoint: str, *, preferred_target_id: str | None, timeout_s: float
) -> PageScreenshot:
    """A PNG of the runtime's current page, over a connection of its own that ends here."""
    try:
        async with asyncio.timeout(timeout_s):
            connection = await CdpConnection.connect(cdp_endpoint)
            try:
                answer = await connection.send("Target.getTargets", timeout=timeout_s)
                target = pick_page(answer.get("targetInfos") or [], preferred_target_id)
                if target is None:
                    raise CdpError("The browser has no open page.")
                attached = await connection.send(
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                    timeout=timeout_s,
                )
                session_id = attached["sessionId"]
                try:
                    png = await _capture(connection, session_id, timeout_s)
                finally:
                    with contextlib.suppress(Exception):
                        await connection.send(
                            "Target.detachFromTarget", {"sessionId": session_id}, timeout=timeout_s
                        )
            finally:
                await connection.close()
    except TimeoutError as exc:
        raise CdpError(f"The browser did not answer within {timeout_s:g} s.") from exc
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        raise CdpError(f"The browser cannot be reached: {exc}") from exc
    return PageScreenshot(
        png=png,
        target_id=str(target["targetId"]),
        url=str(target.get("url") or ""),
        title=str(target.get("title") or ""),
    )
