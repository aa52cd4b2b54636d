"""Request bodies: bounded before they are read, and bounded again while gzip inflates."""

import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from rest_framework.parsers import BaseParser

from runs.api.errors import ApiError, PayloadTooLarge, UnsupportedEncoding

_READ_CHUNK = 64 * 1024


def read_body(
    stream: Any,
    meta: Mapping[str, Any],
    *,
    max_body: int | None = None,
    max_inflated: int | None = None,
) -> bytes:
    """Reads a request body, refusing it past the configured size, and inflates gzip safely.

    The compressed size is checked against Content-Length first and while reading; the
    inflated size is checked while inflating, so a compression bomb stops at the limit.
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
    raw = bytearray()
    while True:
        chunk = stream.read(_READ_CHUNK) if stream is not None else b""
        if not chunk:
            break
        raw.extend(chunk)
        if len(raw) > max_body:
            raise PayloadTooLarge(f"Request body exceeds {max_body} bytes.")
    if encoding == "identity":
        return bytes(raw)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(bytes(raw), max_inflated + 1)
    except zlib.error as exc:
        raise ApiError("Body is not valid gzip.", code="invalid_encoding") from exc
    if len(inflated) > max_inflated or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"Inflated request body exceeds {max_inflated} bytes.")
    if not inflater.eof:
        raise ApiError("Body is truncated gzip.", code="invalid_encoding")
    return inflated


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"Malformed JSON: {exc}", code="invalid_json") from exc
    if not isinstance(value, dict):
        raise ApiError("The JSON body must be an object.", code="invalid_json")
    return value


class BoundedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        return parse_json_object(read_body(stream, meta))
