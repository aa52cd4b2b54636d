"""Where a recording's files live (hot or cold), archiving, and signed downloads of its events.

Tiers: `hot` files are in the default storage; `archive` copies a ready recording's target,
batch and video files to the `cold` storage (`STORAGES["cold"]`, a folder at
`BCTRL_COLD_STORAGE_ROOT` by default) under the same names, checks each copy's size, and
deletes the hot files once the move is committed. Every read of a recording's files goes
through `recording_files(recording)`, which opens them in the storage of the recording's
tier and copes with an archive that moves them meanwhile: a reader never picks a tier.

Downloads: one JSON document of a recording's rrweb events per page target,
`{<head fields>, "events": {"<target>": [rrweb events…]}}`, streamed chunk by chunk from the
processed target files (each a concatenation of gzip members, one JSON array per member,
described by the chunks of its `recordings.rrweb.ChunkIndex`). At most one chunk is in
memory at a time.

On object storage (S3_BUCKET): reads are ranged GETs (bctrl_site.storage.RangedObject),
so a replay's seek fetches one chunk; the archive copies inside the object store; and a
download is a presigned URL of the bucket (`provider: "s3"`): the events document is
written once to `<recording>/downloads/<digest of its files>.json` in the recording's tier
(streamed up, never whole in memory nor on local disk) and handed out presigned, so the
web process never serves its bytes.

Signed URLs (local folders): a token is
`TimestampSigner(salt=DOWNLOAD_SALT).sign_object({"r": recording id, "s": space id})`; it is
good for `BCTRL_DOWNLOAD_URL_TTL_S` seconds (15 minutes by default) and only for the
recording it names.
"""

import gzip
import hashlib
import io
import logging
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils import timezone

from bctrl_site.storage import ObjectStorage, download_url
from recordings.models import Recording, RecordingBatch, RecordingTarget, RecordingVideo
from recordings.rrweb import chunk_index_of, recording_dir
from runs.errors import ApiError, Conflict
from runs.live import notify_run_changed

logger = logging.getLogger(__name__)

DOWNLOAD_SALT = "bctrl.recordings.download"
DOWNLOADABLE = (Recording.Status.READY, Recording.Status.ARCHIVED)


# --- Tiers ------------------------------------------------------------------------------


def hot_storage() -> Storage:
    return storages["default"]


def cold_storage() -> Storage:
    return storages["cold"]


def storage_of(recording: Recording) -> Storage:
    """The storage that holds the recording's files now (as far as `recording` knows), for
    writing them; reads go through `recording_files`."""
    return _tier_storage(recording.tier)


def _tier_storage(tier: str) -> Storage:
    return cold_storage() if tier == Recording.Tier.COLD else hot_storage()


class RecordingFiles:
    """The files of one recording, read in the storage of its tier: the one way to read
    them (a target's chunk file, a batch, a video, frames), so that no reader can pick the
    wrong tier. Names are the paths of the recording's rows (recordings.rrweb says where
    each kind of file lives).

    An archive may move a file between the read of the tier and an open: it copies to
    cold storage under the same name, commits the new tier, and only then deletes the hot
    copy. So a file missing where `recording` says is looked for once more in the tier
    the database names now (and `recording.tier` is updated, for the next file); a file
    opened just before the delete stays readable. FileNotFoundError when it is in
    neither."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def open(self, name: str) -> File:
        """Opens one of the recording's files for reading (a chunk file for its ranges, a
        video)."""
        recording = self.recording
        try:
            return storage_of(recording).open(name, "rb")
        except FileNotFoundError:
            tier = Recording.objects.filter(pk=recording.pk).values_list("tier", flat=True).first()
            if tier is None or tier == recording.tier:
                raise
        recording.tier = tier
        return _tier_storage(tier).open(name, "rb")

    def read_chunk(self, name: str, *, offset: int, length: int) -> bytes:
        """One chunk of a target's chunk file as stored: the gzip member at the byte range
        its index gives."""
        with self.open(name) as handle:
            handle.seek(offset)
            return bytes(handle.read(length))

    def read_batch(self, name: str) -> Any:
        """A batch's events as ingested (the JSON array of its gzip file). Raises what gzip
        and orjson raise for a file that is not one."""
        with self.open(name) as handle:
            return orjson.loads(gzip.decompress(handle.read()))

    def open_frames(self, name: str) -> File:
        """Opens a file of video frames. Frames are written to hot storage and deleted once
        their video is encoded; an archive does not move them, whatever the tier."""
        return hot_storage().open(name, "rb")

    def download_url(self, name: str, *, filename: str, content_type: str) -> str | None:
        """A presigned URL of one of the recording's files on object storage, None when
        its tier is a local folder."""
        return download_url(
            storage_of(self.recording), name, filename=filename, content_type=content_type
        )


def recording_files(recording: Recording) -> RecordingFiles:
    return RecordingFiles(recording)


def provider_of(recording: Recording) -> str:
    """`provider` of the download answer: "s3" when the recording's tier is an object store
    (the URL is the bucket's), else "local" for the hot folder and "cold" once archived."""
    if isinstance(storage_of(recording), ObjectStorage):
        return "s3"
    return "cold" if recording.tier == Recording.Tier.COLD else "local"


class NotArchivable(ApiError):
    status_code = 400
    default_code = "recording.not_archivable"


def recording_archive(*, recording: Recording) -> Recording:
    """Moves a ready, hot recording to cold storage: copy, verify sizes, then delete hot.

    The hot files are deleted only after the new tier and paths are committed, so a
    failure at any point leaves the recording readable where its rows say it is.
    """
    hot, cold = hot_storage(), cold_storage()
    copied: list[str] = []
    try:
        with transaction.atomic():
            locked = Recording.objects.select_for_update().get(pk=recording.pk)
            if locked.status != Recording.Status.READY or locked.tier != Recording.Tier.HOT:
                raise NotArchivable(
                    f"Recording {locked.id} is {locked.status} in {locked.tier} storage; only "
                    "a ready recording in hot storage can be archived."
                )
            hot_names: list[str] = []
            rows: list[RecordingTarget | RecordingBatch | RecordingVideo] = [
                *locked.targets.exclude(path=""),
                *locked.batches.exclude(path=""),
                *locked.videos.exclude(path=""),
            ]
            for row in rows:
                copied.append(_copy_verified(hot, cold, row.path))
                hot_names.append(row.path)
            locked.tier = Recording.Tier.COLD
            locked.status = Recording.Status.ARCHIVED
            locked.archived_at = timezone.now()
            locked.save(update_fields=["tier", "status", "archived_at"])
            notify_run_changed(locked.run_id, "recording", status=locked.status)
            # Download documents are rewritten in the cold tier when next asked for.
            hot_names.extend(_download_documents(hot, locked.id))
            transaction.on_commit(lambda: _delete_quietly(hot, hot_names))
    except Exception:
        _delete_quietly(cold, copied)
        raise
    return locked


def _copy_verified(source: Storage, destination: Storage, name: str) -> str:
    try:
        size = source.size(name)
    except FileNotFoundError as exc:
        raise Conflict(
            f"File {name} of the recording is missing from hot storage.",
            code="recording.file_missing",
        ) from exc
    if destination.exists(name):
        # Left over from an archive that failed before it committed.
        destination.delete(name)
    if isinstance(source, ObjectStorage) and source.can_copy_to(destination):
        assert isinstance(destination, ObjectStorage)
        source.copy_to(destination, name)  # inside the object store
        saved = name
    else:
        with source.open(name, "rb") as handle:
            saved = destination.save(name, File(handle))
    if saved != name or destination.size(saved) != size:
        # The same name in both tiers is what lets a reader that knew the hot file find
        # it in cold storage (RecordingFiles.open).
        destination.delete(saved)
        raise OSError(f"Copy of {name} to cold storage has the wrong name or size.")
    return saved


def _delete_quietly(storage: Storage, names: Iterable[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.exception("Could not delete %s", name)


# --- Presigned downloads from the bucket ----------------------------------------------------


def _downloads_dir(recording_id: str) -> str:
    return f"{recording_dir(recording_id)}/downloads"


def _download_documents(storage: Storage, recording_id: str) -> list[str]:
    folder = _downloads_dir(recording_id)
    try:
        return [f"{folder}/{name}" for name in storage.listdir(folder)[1]]
    except (FileNotFoundError, NotImplementedError):
        return []


def presigned_download_url(recording: Recording, head: dict[str, Any]) -> str | None:
    """On object storage, a presigned URL of the recording's events document (the same
    bytes as the signed local download), written to the bucket on the first ask and
    named by a digest of the files it is made of (a reprocessed recording gets a new
    one). None when the recording's tier is a local folder."""
    storage = storage_of(recording)
    if not isinstance(storage, ObjectStorage):
        return None
    files = target_files(recording)
    digest = hashlib.sha256(orjson.dumps([head, [vars(file) for file in files]])).hexdigest()
    name = f"{_downloads_dir(recording.id)}/{digest[:24]}.json"
    if not storage.exists(name):
        document = _PiecesReader(events_document(head, recording, files))
        name = storage.save(name, File(cast(IO[bytes], document), name=name))
    url = download_url(
        storage, name, filename=f"{recording.id}.json", content_type="application/json"
    )
    assert url is not None
    return url


class _PiecesReader(io.RawIOBase):
    """A read-only stream of an iterator's pieces of bytes (for an upload that reads
    parts of a size of its own choosing)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        super().__init__()
        self._pieces = pieces
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while size is None or size < 0 or len(self._buffer) < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buffer += piece
        if size is None or size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --- Signed download URLs ---------------------------------------------------------------


class DownloadTokenInvalid(Exception):
    """Tampered with, malformed, or made for another recording: 403."""


class DownloadTokenExpired(Exception):
    """Authentic but older than the TTL: 410."""


def download_ttl_s() -> int:
    return int(settings.BCTRL_DOWNLOAD_URL_TTL_S)


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=DOWNLOAD_SALT)


def download_token(recording: Recording) -> str:
    return _signer().sign_object({"r": recording.id, "s": recording.space_id})


def download_token_space(token: str, recording_id: str) -> str:
    """The space id that a valid token for `recording_id` was issued in."""
    try:
        payload = _signer().unsign_object(token, max_age=download_ttl_s())
    except signing.SignatureExpired as exc:
        raise DownloadTokenExpired("The download link has expired.") from exc
    except (signing.BadSignature, ValueError) as exc:
        raise DownloadTokenInvalid("The download link is invalid.") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("r") != recording_id
        or not isinstance(payload.get("s"), str)
    ):
        raise DownloadTokenInvalid("The download link is invalid.")
    return payload["s"]


# --- Streaming the events document ------------------------------------------------------


@dataclass(frozen=True)
class TargetFile:
    target: str
    path: str
    chunks: list[tuple[int, int]]  # (offset, length) of each gzip member, in order


def target_files(recording: Recording) -> list[TargetFile]:
    """The playable targets of a processed recording, read from the database up front so
    that streaming touches storage only."""
    files = []
    for row in (
        recording.targets.filter(playable=True)
        .exclude(path="")
        .order_by("start_timestamp", "target")
    ):
        chunks = chunk_index_of(row.index)["chunks"]
        files.append(
            TargetFile(
                target=row.target,
                path=row.path,
                chunks=[(int(chunk["offset"]), int(chunk["length"])) for chunk in chunks],
            )
        )
    return files


def events_document(
    head: dict[str, Any], recording: Recording, files: list[TargetFile]
) -> Iterator[bytes]:
    """`{**head, "events": {target: [events…], …}}` as JSON, a piece at a time.

    Every file is opened here, before the first piece (streaming runs on any worker
    thread, without the database that RecordingFiles.open may ask); a missing one is a
    409 `recording.file_missing` before anything is sent."""
    reader = recording_files(recording)
    opened: list[tuple[TargetFile, File]] = []
    try:
        for file in files:
            opened.append((file, reader.open(file.path)))
    except FileNotFoundError as exc:
        for _, handle in opened:
            handle.close()
        raise Conflict(
            f"File {exc.filename or ''} of the recording is missing.",
            code="recording.file_missing",
        ) from exc
    return _document_pieces(head, opened)


def _document_pieces(
    head: dict[str, Any], opened: list[tuple[TargetFile, File]]
) -> Iterator[bytes]:
    try:
        opening = orjson.dumps(head)
        yield (opening[:-1] + b"," if head else b"{") + b'"events":{'
        for position, (file, handle) in enumerate(opened):
            yield (b"," if position else b"") + orjson.dumps(file.target) + b":["
            first = True
            for array in _target_arrays(handle, file):
                inner = _array_inner(array)
                if inner:
                    yield inner if first else b"," + inner
                    first = False
            yield b"]"
        yield b"}}"
    finally:
        for _, handle in opened:
            handle.close()


def _target_arrays(handle: File, file: TargetFile) -> Iterator[bytes]:
    """The decompressed JSON array of each chunk of a target file, in order."""
    if not file.chunks:
        # No index: split the file into its gzip members.
        yield from _gzip_members(handle.read())
        return
    for offset, length in file.chunks:
        handle.seek(offset)
        yield gzip.decompress(handle.read(length))


def _gzip_members(data: bytes) -> Iterator[bytes]:
    while data:
        inflater = zlib.decompressobj(wbits=31)
        yield inflater.decompress(data) + inflater.flush()
        data = inflater.unused_data


def _array_inner(array: bytes) -> bytes:
    """The elements of a JSON array, without its brackets: arrays join with a comma."""
    text = array.strip()
    if not (text.startswith(b"[") and text.endswith(b"]")):
        raise ValueError("A recording chunk is not a JSON array.")
    return text[1:-1].strip()


async def as_async(parts: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Serves a blocking iterator of bytes to an ASGI server, one piece per worker hop.

    The iterator touches storage only (no database), so any worker thread may run it.
    """
    step = sync_to_async(_next_part, thread_sensitive=False)
    while True:
        part = await step(parts)
        if part is None:
            return
        yield part


def _next_part(parts: Iterator[bytes]) -> bytes | None:
    return next(parts, None)
