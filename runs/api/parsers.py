"""Request bodies: bounded before they are read, inflated in pieces, parsed with limits.

Every JSON body of the API goes through `json_body` (the DRF parser below, and the rrweb
ingest, which has larger limits). Its answers follow the rule of the README's Errors:

- 400 `invalid_json` or `invalid_encoding`: the body is not acceptable JSON: malformed,
  not an object, nested deeper than MAX_JSON_DEPTH, a number that no double holds, or
  gzip that is broken or truncated;
- 413 `payload_too_large`: more bytes than the limit, compressed or inflated, refused as
  soon as the count passes it (a compression bomb never inflates past the limit);
- 415: a Content-Encoding other than identity and gzip;
- 503 `server.busy` (with Retry-After): more large bodies at once than the process
  takes (BCTRL_LARGE_BODIES_AT_ONCE) for longer than LARGE_BODY_WAIT_S;
- and 422, well-formed JSON whose fields are invalid, is for the serializers and the
  services that judge the fields.
"""

import ctypes
import os
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson
from django.conf import settings
from rest_framework.parsers import BaseParser

from runs.errors import ApiError, PayloadTooLarge, UnsupportedEncoding

_READ_CHUNK = 64 * 1024
_INFLATE_CHUNK = 1024 * 1024
# orjson writes at most 254 levels (and the ingest and the events API store what it
# writes), so a body may nest that deep and no deeper.
MAX_JSON_DEPTH = 254
# A body that holds more than this (read, or inflated so far) takes one of the
# process's large-body slots: its bytes and the objects parsed from them cost tens of
# megabytes, and a few at once must not take the web process's memory.
LARGE_BODY_BYTES = 8 * 1024 * 1024
LARGE_BODY_WAIT_S = 5.0
LARGE_BODY_RETRY_AFTER_S = 2


class InvalidJson(ApiError):
    default_code = "invalid_json"


class InvalidEncoding(ApiError):
    default_code = "invalid_encoding"


_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_slots_for: tuple[int, int] = (0, 0)  # (size, pid): a forked process makes its own


def _large_body_slots() -> threading.BoundedSemaphore:
    global _slots, _slots_for
    wanted = (max(1, int(settings.BCTRL_LARGE_BODIES_AT_ONCE)), os.getpid())
    with _slots_lock:
        if _slots is None or _slots_for != wanted:
            _slots, _slots_for = threading.BoundedSemaphore(wanted[0]), wanted
        return _slots


class BodySlot:
    """A request's claim on one of the process's large-body slots, taken when its body
    turns out to be large (`claim`) and given back by `body_slot` at the end."""

    def __init__(self) -> None:
        self._held: threading.BoundedSemaphore | None = None

    def claim(self) -> None:
        if self._held is not None:
            return
        slots = _large_body_slots()
        if not slots.acquire(timeout=LARGE_BODY_WAIT_S):
            raise ApiError(
                "The server is busy with other large request bodies; retry shortly.",
                code="server.busy",
                status_code=503,
                retry_after=LARGE_BODY_RETRY_AFTER_S,
            )
        self._held = slots

    def release(self) -> None:
        if self._held is not None:
            _return_freed_memory()  # before the next large body may start
            self._held.release()
            self._held = None


def _load_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def _return_freed_memory() -> None:
    """Gives the memory a large body's objects used back to the system. Each thread
    allocates from its own glibc arena and keeps what it freed, so without this the
    process keeps a large body's worth for each thread that ever took one, however few
    slots there are (four 64 MB batches at once, one slot: a peak 90 MiB higher)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


@contextmanager
def body_slot() -> Iterator[BodySlot]:
    """A slot claim that lasts as long as the block: the ingest holds it while it parses
    and stores a batch, for its memory lasts that long."""
    slot = BodySlot()
    try:
        yield slot
    finally:
        slot.release()


def read_body(
    stream: Any,
    meta: Mapping[str, Any],
    *,
    max_body: int | None = None,
    max_inflated: int | None = None,
    slot: BodySlot | None = None,
) -> bytearray:
    """A request body, read and (for gzip) inflated piece by piece.

    The compressed size is checked against Content-Length first and while reading; the
    inflated size is checked while inflating, one piece at a time, so a compression bomb
    stops at the limit with at most one piece past it in memory.
    """
    max_body = max_body or settings.BCTRL_MAX_BODY_BYTES
    max_inflated = max_inflated or settings.BCTRL_MAX_INFLATED_BYTES
    encoding = (meta.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported; send identity or gzip."
        )
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_body:
        raise PayloadTooLarge(f"Request body exceeds {max_body} bytes.")
    if declared > LARGE_BODY_BYTES and slot is not None:
        slot.claim()
    gzipped = encoding == "gzip"
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    body = bytearray()
    size = 0
    while True:
        chunk = stream.read(_READ_CHUNK) if stream is not None else b""
        if not chunk:
            break
        size += len(chunk)
        if size > max_body:
            raise PayloadTooLarge(f"Request body exceeds {max_body} bytes.")
        if inflater is None:
            body += chunk
        else:
            inflater = _inflate(inflater, chunk, body, max_inflated)
        if len(body) > LARGE_BODY_BYTES and slot is not None:
            slot.claim()
    if inflater is not None and size and not inflater.eof:
        raise InvalidEncoding("Body is truncated gzip.")
    return body


def _inflate(inflater: Any, data: bytes, into: bytearray, limit: int) -> Any:
    """Inflates `data` into `into`, a piece at a time, and answers the inflater for what
    follows (a new one when a gzip member ends and another begins)."""
    while data:
        if inflater.eof:
            # Another gzip member: RFC 1952 allows several, and gzip -d reads them all.
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            into += inflater.decompress(data, _INFLATE_CHUNK)
        except zlib.error as exc:
            raise InvalidEncoding("Body is not valid gzip.") from exc
        if len(into) > limit:
            raise PayloadTooLarge(f"Inflated request body exceeds {limit} bytes.")
        data = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof else b"")
    return inflater


def json_body(
    stream: Any,
    meta: Mapping[str, Any],
    *,
    max_body: int | None = None,
    max_inflated: int | None = None,
    slot: BodySlot | None = None,
) -> dict[str, Any]:
    """The request's JSON object: read, inflated and parsed with the limits above. The
    body's bytes are dropped as soon as they are parsed."""
    body = read_body(stream, meta, max_body=max_body, max_inflated=max_inflated, slot=slot)
    try:
        value = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson reads 1024 levels at most
            raise _too_deep() from exc
        raise InvalidJson(f"Malformed JSON: {exc}") from exc
    finally:
        body.clear()
    if not isinstance(value, dict):
        raise InvalidJson("The JSON body must be an object.")
    try:
        orjson.dumps(value)  # at C speed: cheaper than any walk of the parsed objects
    except orjson.JSONEncodeError as exc:
        raise _too_deep() from exc
    return value


def _too_deep() -> InvalidJson:
    return InvalidJson(
        f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.",
        details={"maxDepth": MAX_JSON_DEPTH},
    )


class BoundedJSONParser(BaseParser):
    media_type = "application/json"
    max_body_setting = "BCTRL_MAX_BODY_BYTES"
    max_inflated_setting = "BCTRL_MAX_INFLATED_BYTES"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        with body_slot() as slot:
            return json_body(
                stream,
                meta,
                max_body=getattr(settings, self.max_body_setting),
                max_inflated=getattr(settings, self.max_inflated_setting),
                slot=slot,
            )
