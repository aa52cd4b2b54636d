"""Request bodies without a Content-Length (`Transfer-Encoding: chunked`), made readable.

Django learns a body's size from CONTENT_LENGTH: without it, a request has no body, so a
chunked `POST /v1/runs` was answered 201 with its name and labels dropped. daphne hands
such a body to the application de-chunked and without a Content-Length. `RequestBodies`,
in front of Django, collects it (in memory up to SPOOL_IN_MEMORY, in a temporary file
beyond), up to the largest body the route takes (`body_limit`), then gives Django the
request with a Content-Length and the body replayed. A body past the limit is answered
413 in the API's error shape as soon as the count passes it, and nothing of it reaches
Django. Requests with a Content-Length pass through untouched.

The rrweb ingest's own route (recordings/ingest_route.py) sits in front of this layer
and reads bodies without looking at Content-Length; the requests it leaves to Django
come through here.
"""

import asyncio
import logging
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, Any

import orjson
from django.conf import settings

from recordings.ingest_route import INGEST_PATH, security_headers
from runs.api.uploads import MULTIPART_OVERHEAD_BYTES
from runs.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

SPOOL_IN_MEMORY = 1024 * 1024
REPLAY_CHUNK = 64 * 1024
ARTIFACTS_PATH = re.compile(r"/v1/runs/[^/]+/artifacts")
IMPORT_PATH = re.compile(r"/api/v1/rooms/[^/]+/recordings/import")

logger = logging.getLogger("django.request")


def body_limit(scope: Scope) -> int:
    """The largest body that the request's route takes: an artifact upload, an rrweb
    batch, a recording document to import, or any other body of the API and the
    dashboard."""
    path = scope["path"]
    if ARTIFACTS_PATH.fullmatch(path):
        return int(settings.BCTRL_MAX_ARTIFACT_BYTES) + MULTIPART_OVERHEAD_BYTES
    if INGEST_PATH.fullmatch(path):
        return int(settings.BCTRL_RECORDING_MAX_BATCH_BYTES)
    if IMPORT_PATH.fullmatch(path):
        return int(settings.BCTRL_IMPORT_MAX_BYTES)
    return int(settings.BCTRL_MAX_BODY_BYTES)


def without_length(scope: Scope) -> bool:
    """An HTTP request whose body comes without a Content-Length (HTTP/1.1 allows a
    body only with one of Content-Length and Transfer-Encoding)."""
    if scope["type"] != "http":
        return False
    names = {name.lower() for name, _ in scope.get("headers", ())}
    return b"transfer-encoding" in names and b"content-length" not in names


class RequestBodies:
    """The ASGI layer: chunked bodies collected, measured and replayed to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not without_length(scope):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            size = await collect(receive, spool, limit)
            if size is None:
                return  # the client left
            if size > limit:
                await refuse_too_large(scope, send, limit)
                return
            spool.seek(0)
            headers = [
                (name, value)
                for name, value in scope.get("headers", ())
                if name.lower() != b"transfer-encoding"
            ]
            headers.append((b"content-length", str(size).encode("ascii")))
            replayed = Replay(spool, size, receive)
            await self.app({**scope, "headers": headers}, replayed.receive, send)


async def collect(receive: Receive, spool: IO[bytes], limit: int) -> int | None:
    """Writes the request's body into `spool` and answers its size, or limit + 1 as soon
    as it passes `limit` (the rest is not read), or None when the client went away.
    Writes to the file go through a thread, a megabyte at a time."""
    pending = bytearray()
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return limit + 1
        pending += chunk
        if len(pending) >= SPOOL_IN_MEMORY:
            await asyncio.to_thread(spool.write, bytes(pending))
            pending.clear()
        if not message.get("more_body", False):
            break
    if pending:
        await asyncio.to_thread(spool.write, bytes(pending))
    return size


class Replay:
    """The `receive` that the application sees: the collected body in pieces, then
    whatever the client's connection says next (a disconnect)."""

    def __init__(self, spool: IO[bytes], size: int, receive: Receive) -> None:
        self.spool = spool
        self.left = size
        self.client = receive
        self.done = False

    async def receive(self) -> Message:
        if self.done:
            return await self.client()
        piece = await asyncio.to_thread(self.spool.read, min(REPLAY_CHUNK, self.left))
        self.left -= len(piece)
        self.done = self.left <= 0 or not piece
        return {"type": "http.request", "body": piece, "more_body": not self.done}


async def refuse_too_large(scope: Scope, send: Send, limit: int) -> None:
    body = orjson.dumps(error_body("payload_too_large", f"Request body exceeds {limit} bytes."))
    secure = scope.get("scheme") == "https"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *(
            (name.encode("ascii"), value.encode("latin1"))
            for name, value in security_headers(secure=secure)
        ),
    ]
    logger.warning("Payload Too Large: %s", scope["path"], extra={"status_code": 413})
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
