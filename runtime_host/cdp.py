"""A minimal raw CDP client over one websocket, with flat sessions."""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any], str], None]


class CDPError(Exception):
    pass


class CDPConnection:
    """Sends commands (optionally to a flat session) and hands every event to `on_event`.

    `send_nowait` queues a command without waiting for its reply, which is what lets
    per-target setup go out back-to-back before the target is resumed.
    """

    def __init__(self, ws: ClientConnection, on_event: EventHandler) -> None:
        self._ws = ws
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    @classmethod
    async def connect(cls, url: str, on_event: EventHandler) -> "CDPConnection":
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
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        if "error" in message:
                            future.set_exception(CDPError(str(message["error"])))
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
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("connection closed"))
            self._pending.clear()
            self.closed.set()

    def send_nowait(
        self, method: str, params: dict[str, Any] | None = None, session_id: str = ""
    ) -> "asyncio.Future[dict[str, Any]]":
        """Queues a command; the returned future resolves with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if self.closed.is_set():
            future.set_exception(CDPError("connection closed"))
            return future
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._pending[message_id] = future
        sending = asyncio.ensure_future(self._ws.send(orjson.dumps(message).decode()))

        def sent(task: "asyncio.Future[None]") -> None:
            if task.cancelled() or task.exception() is not None:
                self._pending.pop(message_id, None)
                if not future.done():
                    future.set_exception(CDPError(f"send failed: {method}"))

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

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self.closed.set()
