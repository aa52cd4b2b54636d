"""Recordings that come from elsewhere: an rrweb file posted to a room, and the closed
sessions of the space's upstream Browser Run account (seed 004's sync).

Both take the same path, `recording_import`: the document is read as a stream
(recordings.documents), its events checked one by one and written as rrweb batch files
per target (at most BATCH_EVENTS events or BATCH_BYTES bytes each), then one transaction
creates an ended run of the room, its recording (`preparing`) and the batch rows, and
queues processing on commit, exactly as a stopped live recording is processed. Until
that transaction commits the recording has no row at all; if anything fails before (a
document that stops half-way, an upstream that hangs up, an event too large), the batch
files written so far are deleted and nothing of that import remains.

Memory: the bytes of one batch (BATCH_BYTES), one event being read (at most
BCTRL_RECORDING_MAX_EVENT_BYTES) and one read of the stream, whatever the document's size.
"""

import gzip
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from recordings import upstream as upstream_client
from recordings.documents import DocumentError, DocumentReader, Readable, TooLarge, WrongShape
from recordings.documents import loads as document_loads
from recordings.models import MIN_PLAYABLE_MS, Recording, RecordingBatch, UpstreamSessionSkip
from recordings.rrweb import batch_path
from recordings.services import TARGET_PATTERN, rrweb_event_problem
from runs.errors import ApiError, Invalid, PayloadTooLarge
from runs.ids import new_id
from runs.models import Run, Runtime
from runs.queue import queue

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "target-1"  # the target of a plain rrweb array (seed 003's example name)
BATCH_EVENTS = 5_000
BATCH_BYTES = 4 * 1024 * 1024
MAX_TARGETS = 500
FUTURE_SLACK = timedelta(days=1)  # rrweb timestamps later than now by more than this
# A sync asks for at most this many recordings; an upstream session still without a
# viewable recording this long after it closed is taken to have none.
MAX_CHECKS = 500
NO_RECORDING_AFTER = timedelta(minutes=10)


class AlreadyImported(Exception):
    """Another sync imported the same upstream session first."""


@dataclass(frozen=True)
class ImportOrigin:
    """What the imported run is named after, and its times when the source knows them."""

    name: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    upstream_session_id: str = ""


@dataclass
class _Staged:
    """The batch files of a recording that has no rows yet."""

    recording_id: str
    batches: list[RecordingBatch] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    first: int | None = None
    last: int | None = None

    def write(self, target: str, events: list[bytes], first: int, last: int) -> None:
        encoded = b"[" + b",".join(events) + b"]"
        digest = hashlib.sha256(encoded).hexdigest()
        seq = self.seqs.get(target, 0) + 1
        self.seqs[target] = seq
        stored = gzip.compress(encoded, compresslevel=1)
        path = default_storage.save(
            batch_path(self.recording_id, target, seq, digest), ContentFile(stored)
        )
        self.batches.append(
            RecordingBatch(
                target=target,
                seq=seq,
                event_count=len(events),
                first_timestamp=first,
                last_timestamp=last,
                raw_bytes=len(encoded),
                stored_bytes=len(stored),
                sha256=digest,
                path=path,
            )
        )
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def discard(self) -> None:
        for batch in self.batches:
            try:
                default_storage.delete(batch.path)
            except OSError:
                logger.exception("Could not delete %s of an import that failed", batch.path)


def reader_of(stream: Readable) -> DocumentReader:
    return DocumentReader(
        stream,
        max_event_bytes=int(settings.BCTRL_RECORDING_MAX_EVENT_BYTES),
        max_bytes=int(settings.BCTRL_IMPORT_MAX_BYTES),
        default_target=DEFAULT_TARGET,
    )


def recording_import(
    *,
    room: Runtime,
    reader: DocumentReader,
    origin: Callable[[dict[str, Any]], ImportOrigin],
    allow_unviewable: bool = False,
) -> Recording:
    """Imports the document that `reader` reads as a new, ended run of `room` with its
    recording, queued for processing. See the module docstring. `origin` names the run,
    given the document's other fields (they may follow the events).

    Raises DocumentError for a document this path does not take (nothing is kept), and
    AlreadyImported when the origin's upstream session was imported meanwhile. A document
    without events, or spanning less than a second (nothing to view, seed 003), is refused
    unless `allow_unviewable` (a sync keeps what the upstream has, once).
    """
    staged = _Staged(new_id("rec"))
    try:
        _stage(reader, staged)
        if not allow_unviewable:
            if not staged.batches:
                raise WrongShape("The recording has no events.")
            if (staged.last or 0) - (staged.first or 0) < MIN_PLAYABLE_MS:
                raise WrongShape(
                    "The recording spans less than 1 second: there would be nothing to view."
                )
        return _commit(room, staged, origin(reader.head))
    except BaseException:
        staged.discard()
        raise


def _stage(reader: DocumentReader, staged: _Staged) -> None:
    latest = int((timezone.now() + FUTURE_SLACK).timestamp() * 1000)
    target = ""
    pending: list[bytes] = []
    pending_bytes = 0
    first = last = 0
    position = 0
    for event_target, raw in reader.events():
        if event_target != target:
            if pending:
                staged.write(target, pending, first, last)
                pending, pending_bytes = [], 0
            target, position = event_target, 0
            if not TARGET_PATTERN.match(target):
                raise WrongShape(
                    f"Target {target[:100]!r} is not a target name (1-100 letters, digits, "
                    "'.', '_' or '-')."
                )
            if target not in staged.seqs and len(staged.seqs) >= MAX_TARGETS:
                raise TooLarge(f"A recording has at most {MAX_TARGETS} targets.")
            staged.seqs.setdefault(target, 0)
        what = f"event {position} of target {target!r}"
        event = document_loads(raw, what)
        problem = rrweb_event_problem(event)
        if problem:
            raise WrongShape(f"{what.capitalize()}: {problem}.")
        timestamp = int(event["timestamp"])
        if timestamp > latest:
            raise WrongShape(f"{what.capitalize()}: timestamp {timestamp} is in the future.")
        if not pending:
            first = last = timestamp
        else:
            first, last = min(first, timestamp), max(last, timestamp)
        pending.append(raw)
        pending_bytes += len(raw) + 1
        position += 1
        if len(pending) >= BATCH_EVENTS or pending_bytes >= BATCH_BYTES:
            staged.write(target, pending, first, last)
            pending, pending_bytes = [], 0
    if pending:
        staged.write(target, pending, first, last)


def _from_ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=UTC) if value is not None else None


def _commit(room: Runtime, staged: _Staged, origin: ImportOrigin) -> Recording:
    now = timezone.now()
    started_at = origin.started_at or _from_ms(staged.first) or now
    ended_at = max(origin.ended_at or _from_ms(staged.last) or started_at, started_at)
    retention = timedelta(days=room.space.recording_retention_days)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                space_id=room.space_id,
                runtime=room,
                name=origin.name[:200],
                status=Run.Status.COMPLETED,
                started_at=started_at,
                ended_at=ended_at,
                duration_ms=int((ended_at - started_at).total_seconds() * 1000),
                metadata=origin.metadata,
            )
            recording = Recording.objects.create(
                id=staged.recording_id,
                space_id=room.space_id,
                run=run,
                status=Recording.Status.PREPARING,
                started_at=started_at,
                stopped_at=ended_at,
                first_timestamp=staged.first,
                # Kept for the space's retention from the import, not from the session's
                # end: an old session is not imported only to expire at once.
                expires_at=now + retention,
                upstream_session_id=origin.upstream_session_id,
            )
            for batch in staged.batches:
                batch.recording = recording
            RecordingBatch.objects.bulk_create(staged.batches)
            transaction.on_commit(lambda: queue("recordings.tasks.process_recording", recording.id))
    except IntegrityError as exc:
        if (
            origin.upstream_session_id
            and Recording.objects.filter(
                space_id=room.space_id, upstream_session_id=origin.upstream_session_id
            ).exists()
        ):
            raise AlreadyImported(origin.upstream_session_id) from exc
        raise
    return recording


# --- The import endpoint ------------------------------------------------------------------


def request_error(error: DocumentError) -> ApiError:
    """A document error as the import endpoint answers it: 400 malformed JSON, 422 a
    document of the wrong shape, 413 too large."""
    if isinstance(error, TooLarge):
        return PayloadTooLarge(str(error))
    if isinstance(error, WrongShape):
        return Invalid(str(error))
    return ApiError(str(error), code="invalid_json")


def recording_import_file(*, room: Runtime, stream: Readable) -> Recording:
    """`POST /api/v1/rooms/{id}/recordings/import`: seed 003's document or an rrweb array."""
    reader = reader_of(stream)
    try:
        return recording_import(room=room, reader=reader, origin=_file_origin)
    except DocumentError as exc:
        raise request_error(exc) from None


def _file_origin(head: dict[str, Any]) -> ImportOrigin:
    """A file is named after its document's `sessionId` when it has one."""
    session = head.get("sessionId")
    if isinstance(session, str) and session:
        return ImportOrigin(name=f"Imported {session}", metadata={"import": {"sessionId": session}})
    return ImportOrigin(name="Imported recording", metadata={"import": {}})


# --- Sync from the upstream account -------------------------------------------------------


def recordings_sync(*, room: Runtime) -> list[Recording]:
    """Imports the closed sessions of the space's upstream account that it has not imported
    before, oldest first, as recordings of `room`: at most BCTRL_UPSTREAM_SYNC_MAX_IMPORTS
    imports and MAX_CHECKS recording requests per call (a next call goes on).

    A session without a viewable recording (404) is skipped; once it closed more than
    NO_RECORDING_AFTER ago it is remembered as having none and not asked for again. The
    first failure ends the sync with its error; the sessions imported before it stay (each
    is complete), and the error's details name them and the session that failed."""
    account = upstream_client.upstream_account_of(room.space)
    if account is None:
        raise upstream_client.UpstreamNotConfigured(
            "This space has no upstream Browser Run account to sync from. Set one with "
            f"PUT /v1/spaces/{room.space_id}/upstream {{baseUrl, accountId, apiToken}} or in "
            "the dashboard's space settings."
        )
    upstream = upstream_client.Upstream.of(account)
    sessions = [s for s in upstream_client.list_sessions(upstream) if s.closed]
    done = _settled_session_ids(room, [session.id for session in sessions])
    due = sorted(
        (session for session in sessions if session.id not in done),
        key=lambda session: (session.start_ms or 0, session.id),
    )
    max_imports = int(settings.BCTRL_UPSTREAM_SYNC_MAX_IMPORTS)
    imported: list[Recording] = []
    for session in due[:MAX_CHECKS]:
        if len(imported) >= max_imports:
            break
        try:
            recording = _import_session(room, upstream, account.account_id, session)
        except ApiError as exc:
            exc.details = {
                **(exc.details or {}),
                "sessionId": session.id,
                "imported": [recording.id for recording in imported],
            }
            raise
        if recording is not None:
            imported.append(recording)
    return imported


def _settled_session_ids(room: Runtime, session_ids: list[str]) -> set[str]:
    """Of `session_ids`, those imported before and those known to have no recording."""
    settled: set[str] = set()
    for start in range(0, len(session_ids), 500):  # within SQLite's parameter limit
        part = session_ids[start : start + 500]
        settled.update(
            Recording.objects.filter(
                space_id=room.space_id, upstream_session_id__in=part
            ).values_list("upstream_session_id", flat=True)
        )
        settled.update(
            UpstreamSessionSkip.objects.filter(
                space_id=room.space_id, session_id__in=part
            ).values_list("session_id", flat=True)
        )
    return settled


def _import_session(
    room: Runtime,
    upstream: upstream_client.Upstream,
    account_id: str,
    session: upstream_client.UpstreamSession,
) -> Recording | None:
    origin = ImportOrigin(
        name=f"Browser Run session {session.id}",
        started_at=_from_ms(session.start_ms),
        ended_at=_from_ms(session.end_ms),
        metadata={
            "upstream": {
                "accountId": account_id,
                "sessionId": session.id,
                "closeReason": session.close_reason,
                "closeReasonText": session.close_reason_text,
            }
        },
        upstream_session_id=session.id,
    )
    with upstream_client.open_recording(upstream, session.id) as body:
        if body is None:
            long_ago_ms = (timezone.now() - NO_RECORDING_AFTER).timestamp() * 1000
            if session.end_ms is not None and session.end_ms < long_ago_ms:
                UpstreamSessionSkip.objects.get_or_create(
                    space_id=room.space_id, session_id=session.id
                )
            return None
        try:
            return recording_import(
                room=room,
                reader=reader_of(body),
                origin=lambda _head: origin,
                allow_unviewable=True,
            )
        except AlreadyImported:
            return None
        except TooLarge as exc:
            raise upstream_client.UpstreamInvalid(
                f"The upstream's recording of session {session.id} is too large to import: {exc}",
                code="upstream.recording_too_large",
            ) from None
        except DocumentError as exc:
            raise upstream_client.UpstreamInvalid(
                f"The upstream's recording of session {session.id} is not a recording "
                f"document: {exc}"
            ) from None
