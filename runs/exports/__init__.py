"""A run in the forms people pass around, built from what the run recorded: the network
log as HAR 1.2 (`har`) and the Playwright trace (`trace`) here, and the self-contained
replay file (`replay`) in recordings/exports.py, which owns recordings. Each builder
yields its file in pieces, so a two-hour run goes out, or into a files export, without
being held in memory."""

from collections.abc import AsyncIterator, Iterator
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

BATCH = 64
# Files a files export can hold besides the run's artifacts, built when it is built.
BUILT_TYPES = ("har", "replay", "trace")


async def streamed(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A builder's chunks for an ASGI response, read BATCH at a time in a worker thread
    (the builder queries the database): Django would otherwise read a synchronous
    iterator to its end before sending the first byte."""
    while True:
        batch = await sync_to_async(lambda: list(islice(chunks, BATCH)))()
        if not batch:
            return
        yield b"".join(batch)


def streaming_response(
    request: HttpRequest, chunks: Iterator[bytes], *, content_type: str, filename: str
) -> StreamingHttpResponse:
    """A download of a builder's chunks: asynchronous under ASGI (daphne), else as is."""
    content = streamed(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
