"""The body of `POST /api/v1/rooms/{id}/recordings/import`, read as a stream.

JSON only (415 otherwise), identity or gzip (415 for another Content-Encoding), at most
BCTRL_IMPORT_MAX_BYTES as sent (413 from Content-Length, before anything is read); the
document reader bounds the JSON it inflates to the same size, so a compression bomb stops
there too.
"""

import zlib

from django.conf import settings
from rest_framework.request import Request

from recordings.documents import READ_BYTES, Readable
from runs.errors import ApiError, PayloadTooLarge, UnsupportedEncoding


class _Empty:
    def read(self, size: int, /) -> bytes:
        return b""


class _Inflating:
    """The gzip body inflated as it is read, no more than `size` bytes per read."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.inflater = zlib.decompressobj(wbits=31)
        self.tail = b""

    def read(self, size: int, /) -> bytes:
        try:
            while True:
                if self.inflater.eof:
                    if not self.inflater.unused_data:
                        if self.stream.read(1):
                            raise ApiError("Body has data after its gzip.", code="invalid_encoding")
                        return b""
                    # Another gzip member follows (concatenated files are one stream).
                    self.tail = self.inflater.unused_data
                    self.inflater = zlib.decompressobj(wbits=31)
                if not self.tail:
                    self.tail = self.stream.read(READ_BYTES)
                    if not self.tail:
                        raise ApiError("Body is truncated gzip.", code="invalid_encoding")
                data = self.inflater.decompress(self.tail, size)
                self.tail = self.inflater.unconsumed_tail
                if data:
                    return data
        except zlib.error as exc:
            raise ApiError("Body is not valid gzip.", code="invalid_encoding") from exc


def import_body(request: Request) -> Readable:
    content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            "Send the recording as application/json (seed 003's document or an rrweb array).",
            code="unsupported_media_type",
            status_code=415,
        )
    encoding = (request.META.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported; send identity or gzip."
        )
    limit = int(settings.BCTRL_IMPORT_MAX_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
    stream: Readable = request.stream or _Empty()
    return _Inflating(stream) if encoding == "gzip" else stream
