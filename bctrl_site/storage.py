"""Storage backends: static files, and the object store that holds recordings and files."""

import contextlib
import errno
import io
import os
import threading
from typing import IO, Any, cast

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, get_available_overwrite_name
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files, rewriting only CSS references.

    npm bundles name source maps that their packages do not ship next to them
    (`rrweb/umd/rrweb.min.js` points at `rrweb.umd.min.cjs.map`), which would fail
    collectstatic; JS files are served as they are.
    """

    patterns = tuple(
        (glob, rules)
        for glob, rules in CompressedManifestStaticFilesStorage.patterns
        if glob == "*.css"
    )


class ObjectStorage(S3Storage):
    """Files in an S3-compatible bucket (AWS S3, R2, MinIO), configured by S3_* settings.

    What it adds to django-storages' S3 backend, for the way bctrl reads and hands out
    its files:

    - `open()` answers a file that reads by HTTP range (`RangedObject`): a seek and a
      read of n bytes is one ranged GET of those n bytes, so a replay that seeks fetches
      one chunk, not the object (django-storages' S3File downloads the whole object on
      its first read). A missing object is a FileNotFoundError at `open()`, as on disk.
    - `download_url()`: a short-lived presigned GET that names the file and its type, so
      a browser or client downloads straight from the bucket.
    - `copy_to()`: a copy inside the object store (no bytes through this process) to
      another bucket or prefix on the same endpoint and credentials.

    Saving never replaces an object (`file_overwrite` is False in settings, as on disk a
    second save of a name gets another name): small content goes up in one conditional
    PUT, a stream in parts (multipart) without a local copy.
    """

    # Content of a known size up to this goes up in one PUT; larger or of unknown size
    # (a stream), in parts (s3transfer's default multipart threshold).
    SINGLE_PUT_BYTES = 8 * 1024 * 1024

    _client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """One botocore client for every thread of the process (clients are thread-safe;
        django-storages makes a boto3 resource per thread, which costs ~0.5 s of CPU
        each: the ingest's worker threads would each pay it)."""
        shared = self.__dict__.get("_shared_client")
        if shared is None:
            with self._client_lock:
                shared = self.__dict__.get("_shared_client")
                if shared is None:
                    shared = self.__dict__["_shared_client"] = self.connection.meta.client
        return shared

    def exists(self, name: str) -> bool:
        try:
            self._head(name)
        except FileNotFoundError:
            return False
        return True

    def size(self, name: str) -> int:
        return int(self._head(name)["ContentLength"])

    def delete(self, name: str) -> None:
        self.client.delete_object(
            Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name))
        )

    def _head(self, name: str) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name))
            )
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(errno.ENOENT, "No such object", name) from exc
            raise
        return head

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # No HEAD to find a free name: `_save` writes only if the name is free.
        return get_available_overwrite_name(clean_name(name), max_length)

    def _save(self, name: str, content: File) -> str:
        """Writes `content` under `name`, or under another name if an object has it: a
        conditional PUT (`If-None-Match: *`, which AWS S3, R2 and MinIO honour) for
        content of a known size, so that two writers of one name never replace each
        other's object; a multipart upload after a look for a free name otherwise."""
        try:
            size = content.size
        except (AttributeError, OSError):
            size = None
        if self.file_overwrite:
            return str(super()._save(name, content))
        if size is None or size > self.SINGLE_PUT_BYTES:
            while self.exists(name):
                name = self._alternative(name)
            return str(super()._save(name, content))
        with contextlib.suppress(AttributeError, OSError):
            content.seek(0)
        body = content.read()
        while True:
            cleaned = clean_name(name)
            key = self._normalize_name(cleaned)
            params = self._get_write_parameters(key, content)
            try:
                self.client.put_object(
                    Bucket=self.bucket_name, Key=key, Body=body, IfNoneMatch="*", **params
                )
                return str(cleaned)
            except ClientError as exc:
                if _status(exc) not in (409, 412):  # 409: a concurrent conditional write
                    raise
            name = self._alternative(name)

    def _alternative(self, name: str) -> str:
        folder, filename = os.path.split(name)
        root, extension = os.path.splitext(filename)
        return os.path.join(folder, self.get_alternative_name(root, extension))

    def _open(self, name: str, mode: str = "rb") -> File:
        if any(flag in mode for flag in "wa+"):
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        head = self._head(name)
        reader = RangedObject(self.client, self.bucket_name, key, head["ContentLength"])
        return File(cast(IO[bytes], reader), name)

    def download_url(
        self, name: str, *, filename: str, content_type: str, inline: bool = False
    ) -> str:
        """A presigned GET of `name`, good for BCTRL_DOWNLOAD_URL_TTL_S seconds, whose
        answer names `filename` (as an attachment unless `inline`) and `content_type`."""
        disposition = content_disposition_header(not inline, filename) or "attachment"
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket_name,
                    "Key": self._normalize_name(clean_name(name)),
                    "ResponseContentDisposition": disposition,
                    "ResponseContentType": content_type,
                },
                ExpiresIn=int(settings.BCTRL_DOWNLOAD_URL_TTL_S),
            )
        )

    def can_copy_to(self, destination: Storage) -> bool:
        return (
            isinstance(destination, ObjectStorage)
            and destination.endpoint_url == self.endpoint_url
            and destination.access_key == self.access_key
        )

    def copy_to(self, destination: "ObjectStorage", name: str) -> None:
        """Copies `name` to the same name in `destination`, inside the object store, with
        the destination's object parameters (its storage class)."""
        destination.bucket.copy(
            {"Bucket": self.bucket_name, "Key": self._normalize_name(clean_name(name))},
            destination._normalize_name(clean_name(name)),
            ExtraArgs=destination.get_object_parameters(name),
        )


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def download_url(
    storage: Storage, name: str, *, filename: str, content_type: str, inline: bool = False
) -> str | None:
    """A presigned URL straight from the bucket when `storage` is an object store, else
    None (a local folder's file is served by the web process)."""
    if isinstance(storage, ObjectStorage):
        return storage.download_url(
            name, filename=filename, content_type=content_type, inline=inline
        )
    return None


class RangedObject(io.RawIOBase):
    """A read-only, seekable view of one object that fetches bytes by HTTP range.

    A read right after a seek (random access: a replay's chunk, a ranged answer) fetches
    exactly the bytes asked for. Reads that follow each other (a whole file streamed
    out, copied or decompressed) share one ranged GET of up to SEQUENTIAL_WINDOW bytes.
    """

    SEQUENTIAL_WINDOW = 8 * 1024 * 1024

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self.size = size
        self.name = key
        self._position = 0
        self._body: Any = None
        self._body_end = 0
        self._after_seek = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError("negative seek position")
        if position != self._position:
            self._drop_body()
            self._position = position
        if self._body is None:
            self._after_seek = True  # the next read fetches what it asks for, no more
        return position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self.size - self._position
        if remaining <= 0:
            return b""
        wanted = remaining if size is None or size < 0 else min(size, remaining)
        pieces: list[bytes] = []
        got = 0
        while got < wanted:
            if self._body is None:
                span = wanted - got
                if not self._after_seek and size is not None and size >= 0:
                    span = max(span, self.SEQUENTIAL_WINDOW)
                self._open_body(min(self._position + span, self.size))
            piece = self._body.read(min(wanted - got, self._body_end - self._position))
            if not piece:
                self._drop_body()
                raise OSError(f"{self._key}: the object ended at byte {self._position}")
            pieces.append(piece)
            got += len(piece)
            self._position += len(piece)
            if self._position >= self._body_end:
                self._drop_body()
        return b"".join(pieces)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _open_body(self, end: int) -> None:
        answer = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end - 1}"
        )
        self._body, self._body_end = answer["Body"], end
        self._after_seek = False

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
