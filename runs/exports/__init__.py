"""A run in the forms people pass around, built from what the run recorded: the network
log as HAR 1.2 (`har`) and the Playwright trace (`trace`) here, and the self-contained
replay file (`replay`) in recordings/exports.py, which owns recordings. Each builder
yields its file in pieces, so a two-hour run goes out, or into a files export, without
being held in memory.

A files export (runs.exports.files) asks BUILDERS for each built file by its type: the
app that owns what a file is made of registers its builder when it is ready (runs: HAR;
recordings: the trace, whose screencast comes from the videos, and the replay file), so
this app never imports the ones above it.
"""

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from runs.models import Run

BATCH = 64
# Files a files export can hold besides the run's artifacts, built when it is built.
BUILT_TYPES = ("har", "replay", "trace")


def _always(run: Run) -> None:
    return None


@dataclass(frozen=True)
class FileBuilder:
    """How one built file is made: its name, its bytes in pieces, and a check run when
    an export asks for it (a 409 then, rather than a failed export later)."""

    filename: Callable[[Run], str]
    chunks: Callable[[Run], Iterable[bytes]]
    check: Callable[[Run], None] = _always


BUILDERS: dict[str, FileBuilder] = {}


def builder_register(kind: str, builder: FileBuilder) -> None:
    assert kind in BUILT_TYPES, kind
    BUILDERS[kind] = builder


def builder_of(kind: str) -> FileBuilder:
    return BUILDERS[kind]


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
