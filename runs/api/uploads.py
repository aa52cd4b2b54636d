"""Artifact uploads stream to a temporary file and stop at the configured size."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http import HttpRequest
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request

from runs.errors import PayloadTooLarge

# What a multipart body may hold besides its files: boundaries, part headers, the other
# fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts the bytes of every file in the request and refuses the upload past the limit.

    It sits before the temporary-file handler, so nothing beyond the limit is written.
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = int(settings.BCTRL_MAX_ARTIFACT_BYTES)
        self.received = 0

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> None:
        if content_length > self.limit + MULTIPART_OVERHEAD_BYTES:
            raise PayloadTooLarge(f"Upload exceeds {self.limit} bytes.")

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise PayloadTooLarge(f"Upload exceeds {self.limit} bytes.")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def limited_upload_handlers(request: HttpRequest) -> list[FileUploadHandler]:
    return [SizeLimitUploadHandler(request), TemporaryFileUploadHandler(request)]


class LimitedUploads:
    """A view taking multipart files whose POST stops reading at the artifact size limit."""

    parser_classes: Sequence[type[BaseParser]] = [MultiPartParser]

    def initialize_request(self, request: Any, *args: Any, **kwargs: Any) -> Request:
        if getattr(request, "method", None) == "POST":
            request.upload_handlers = limited_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)  # type: ignore[misc]
