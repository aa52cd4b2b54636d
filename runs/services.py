"""Writes. Every change to a run and what belongs to it goes through these functions."""

import contextlib
import hashlib
import io
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, cast

from django.core.files import File
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from bctrl_site.origins import InvalidEmbedOrigins, embed_origins_checked
from runs.errors import Conflict, Invalid
from runs.live import notify_run_changed
from runs.models import (
    Artifact,
    Command,
    Event,
    Handoff,
    Run,
    Runtime,
    Space,
)
from runs.selectors import active_run_of
from runs.signals import run_ended
from runs.timestamps import iso
from runs.webhooks import webhook_enqueue

logger = logging.getLogger(__name__)


def run_create(
    *,
    space: Space,
    runtime: Runtime | None = None,
    name: str = "",
    labels: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    browser_options: dict[str, Any] | None = None,
    browser_secrets: bytes = b"",
) -> Run:
    with transaction.atomic():
        if runtime is not None:
            Runtime.objects.select_for_update().filter(pk=runtime.pk).first()
            active = active_run_of(runtime)
            if active is not None:
                raise Conflict(
                    f"Runtime {runtime.id} already has an active run {active.id}.",
                    code="runtime.run_active",
                    details={"runId": active.id},
                )
        run = Run.objects.create(
            space=space,
            runtime=runtime,
            name=name,
            labels=labels or {},
            metadata=metadata or {},
            browser_options=browser_options or {},
            browser_secrets=browser_secrets,
        )
    return run


def _lock_active_run(run: Run) -> Run:
    """Locks the run row for the rest of the transaction and refuses writes to ended runs."""
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if not locked.is_active:
        raise Conflict(f"Run {run.id} has ended ({locked.status}).", code="run.ended")
    return locked


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int
    next_seq: int


def events_append(*, run: Run, events: list[dict[str, Any]]) -> AppendResult:
    """Appends a batch of events, keeping each run's seq unique and gap-free.

    Each event is {seq?, type, time?, page_id, data}. Without seqs the server numbers
    the batch; with seqs the batch must be contiguous and continue the run or repeat
    events it already has. A repeated event is accepted once (same content) or refused
    with 409 (other content); a batch that would leave a gap is refused with 409 and the
    expected seq. A refused batch writes nothing.
    """
    given = [event.get("seq") for event in events]
    if any(seq is not None for seq in given) and any(seq is None for seq in given):
        raise Conflict("Give every event a seq, or none.", code="events.mixed_seq")
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_active_run(run)
        last = locked.event_count
        if given and given[0] is None:
            seqs = list(range(last + 1, last + 1 + len(events)))
        else:
            seqs = [int(seq) for seq in given if seq is not None]
            if any(b != a + 1 for a, b in itertools.pairwise(seqs)):
                raise Conflict(
                    "Seqs in a batch must be contiguous and ascending.",
                    code="events.out_of_order",
                    details={"expectedSeq": last + 1},
                )
            if seqs and seqs[0] > last + 1:
                raise Conflict(
                    f"Batch starts at seq {seqs[0]} but the run's next seq is {last + 1}.",
                    code="events.out_of_order",
                    details={"expectedSeq": last + 1},
                )
        rows = [
            {**event, "seq": seq, "time": event.get("time") or now}
            for event, seq in zip(events, seqs, strict=True)
        ]
        repeated = [row for row in rows if row["seq"] <= last]
        fresh = [row for row in rows if row["seq"] > last]
        if repeated:
            stored = {
                event.seq: event
                for event in Event.objects.filter(
                    run=locked, seq__gte=repeated[0]["seq"], seq__lte=repeated[-1]["seq"]
                )
            }
            for row, event in zip(rows, events, strict=True):
                sent = {**row, "time": event.get("time")}  # without the server's time
                if row["seq"] <= last and not stored[row["seq"]].same_content(sent):
                    raise Conflict(
                        f"Seq {row['seq']} was already stored with other content.",
                        code="events.seq_conflict",
                        details={"seq": row["seq"], "expectedSeq": last + 1},
                    )
        if fresh:
            Event.objects.bulk_create(
                [
                    Event(
                        run=locked,
                        seq=row["seq"],
                        time=row["time"],
                        type=row["type"],
                        page_id=row.get("page_id", ""),
                        data=row.get("data") or {},
                    )
                    for row in fresh
                ]
            )
            Run.objects.filter(pk=locked.pk).update(event_count=fresh[-1]["seq"])
            notify_run_changed(run.id, "events")
        next_seq = (fresh[-1]["seq"] if fresh else last) + 1
    return AppendResult(accepted=len(fresh), duplicates=len(repeated), next_seq=next_seq)


def event_emit(*, run: Run, type: str, data: dict[str, Any], page_id: str = "") -> None:
    """A server-side event (artifact.created, …), numbered after whatever the run has."""
    events_append(run=run, events=[{"type": type, "data": data, "page_id": page_id}])


def commands_record(*, run: Run, commands: list[dict[str, Any]]) -> list[Command]:
    """Records commands; one that repeats a known id of this run is taken once."""
    with transaction.atomic():
        locked = _lock_active_run(run)
        ids = [command["id"] for command in commands if command.get("id")]
        known = dict(Command.objects.filter(pk__in=ids).values_list("pk", "run_id"))
        foreign = [command_id for command_id, run_id in known.items() if run_id != locked.pk]
        if foreign:
            raise Conflict(
                f"Command id {foreign[0]} belongs to another run.", code="commands.id_conflict"
            )
        created = [
            Command(
                run=locked,
                **({"id": command["id"]} if command.get("id") else {}),
                method=command["method"],
                params=command.get("params") or {},
                status=command.get("status") or Command.Status.SUCCEEDED,
                source=command.get("source") or "cdp",
                page_id=command.get("page_id") or "",
                started_at=command.get("started_at") or timezone.now(),
                ended_at=command.get("ended_at"),
                duration_ms=_duration_ms(command),
                error=command.get("error"),
            )
            for command in commands
            if command.get("id") not in known
        ]
        Command.objects.bulk_create(created)
        if created:
            Run.objects.filter(pk=locked.pk).update(command_count=F("command_count") + len(created))
            notify_run_changed(run.id, "commands")
    return created


def _duration_ms(command: dict[str, Any]) -> int | None:
    if command.get("duration_ms") is not None:
        return int(command["duration_ms"])
    started, ended = command.get("started_at"), command.get("ended_at")
    if isinstance(started, datetime) and isinstance(ended, datetime):
        return max(0, int((ended - started).total_seconds() * 1000))
    return None


def artifact_store(
    *,
    run: Run,
    kind: str,
    name: str,
    content: IO[bytes],
    content_type: str = "application/octet-stream",
    metadata: dict[str, Any] | None = None,
    require_active: bool = True,
) -> Artifact:
    """Streams a file into storage, hashing it on the way, and records it on the run.

    The bytes go from `content` to the storage as they are read (to the bucket in parts,
    on object storage): no copy on local disk, and at most a part in memory."""
    with contextlib.suppress(OSError, AttributeError):
        content.seek(0)  # an export's ZIP has just been written
    reader = _DigestingReader(content)
    artifact = Artifact(
        run=run,
        kind=kind,
        name=name,
        content_type=content_type or "application/octet-stream",
        metadata=metadata or {},
    )
    artifact.file.save(safe_filename(name), File(cast(IO[bytes], reader), name=name), save=False)
    artifact.size, artifact.sha256 = reader.count, reader.digest.hexdigest()
    size = artifact.size
    try:
        with transaction.atomic():
            locked = (
                _lock_active_run(run)
                if require_active
                else Run.objects.select_for_update().get(pk=run.pk)
            )
            artifact.save()
            changes: dict[str, Any] = {
                "artifact_count": F("artifact_count") + 1,
                "artifact_bytes": F("artifact_bytes") + size,
            }
            if kind == Artifact.Kind.SCREENSHOT:
                changes["thumbnail"] = artifact
            Run.objects.filter(pk=locked.pk).update(**changes)
            if locked.is_active:
                event_emit(
                    run=locked,
                    type="artifact.created",
                    data={"artifactId": artifact.id, "kind": kind, "name": name, "size": size},
                )
            notify_run_changed(run.id, "artifacts")
    except Exception:
        artifact.file.delete(save=False)
        raise
    return artifact


def runtime_upload(
    *, runtime: Runtime, name: str, content: IO[bytes], content_type: str = ""
) -> Artifact:
    """Stores a file for the runtime's browser as an `upload` artifact of its run; the
    runtime's host copies it into the browser's uploads folder (upload_placed)."""
    run = active_run_of(runtime)
    if runtime.status != Runtime.Status.RUNNING or run is None:
        raise Conflict(
            f"Runtime {runtime.id} is {runtime.status}: files go to a running browser; "
            "start it first.",
            code="runtime.not_running",
        )
    return artifact_store(
        run=run,
        kind=Artifact.Kind.UPLOAD,
        name=name,
        content=content,
        content_type=content_type,
        metadata={"placed": False},
    )


def uploads_pending(*, run_ids: list[str]) -> list[Artifact]:
    """Uploads of these runs that their host has not put in the browser's folder yet."""
    return list(
        Artifact.objects.filter(
            run_id__in=run_ids, kind=Artifact.Kind.UPLOAD, metadata__placed=False
        ).order_by("created_at")
    )


def upload_placed(*, artifact: Artifact, path: str) -> None:
    """The host put the upload at `path`, where the browser's file choosers reach it."""
    artifact.metadata = {**artifact.metadata, "placed": True, "path": path}
    Artifact.objects.filter(pk=artifact.pk).update(metadata=artifact.metadata)
    notify_run_changed(artifact.run_id, "artifacts")


class _DigestingReader(io.RawIOBase):
    """Reads through to `source`, counting and hashing what passes (not seekable, so a
    storage reads it once, from where it is)."""

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self.source = source
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.source.read(-1 if size is None else size)
        self.digest.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "file"
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base)[:120]


def run_stop(*, run: Run, status: str = Run.Status.COMPLETED, error: Any = None) -> Run:
    """Ends a run and settles its usage from the stored rows. Stopping twice is harmless."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.is_active:
            for handoff in locked.handoffs.filter(status=Handoff.Status.OPEN):
                _handoff_close(handoff, Handoff.Status.CANCELLED, reason="The run ended.")
            ended_at = timezone.now()
            artifacts = locked.artifacts.aggregate(count=Count("id"), bytes=Sum("size"))
            Run.objects.filter(pk=locked.pk).update(
                status=status,
                error=error,
                ended_at=ended_at,
                duration_ms=max(0, int((ended_at - locked.started_at).total_seconds() * 1000)),
                event_count=locked.events.count(),
                command_count=locked.commands.count(),
                artifact_count=artifacts["count"] or 0,
                artifact_bytes=artifacts["bytes"] or 0,
            )
            notify_run_changed(run.id, "status")
            run_ended.send(sender=Run, run=locked)
    return Run.objects.select_related("runtime", "thumbnail").get(pk=run.pk)


# Handoffs: an automation asks a person to do a step ---------------------------------------


def handoff_request(
    *, run: Run, instructions: str, timeout_ms: int, notify: bool, requested_by: str
) -> Handoff:
    """Opens a handoff on a running run: one open at a time (409 `handoff.open`)."""
    with transaction.atomic():
        locked = _lock_active_run(run)
        handoffs_expire(run=locked)
        open_one = locked.handoffs.filter(status=Handoff.Status.OPEN).first()
        if open_one is not None:
            raise Conflict(
                f"Run {run.id} already has an open handoff {open_one.id}.",
                code="handoff.open",
                details={"handoffId": open_one.id},
            )
        now = timezone.now()
        handoff = Handoff.objects.create(
            run=locked,
            instructions=instructions,
            notify=notify,
            requested_by=requested_by,
            created_at=now,
            expires_at=now + timedelta(milliseconds=timeout_ms),
        )
        data = {
            "handoffId": handoff.id,
            "instructions": instructions,
            "expiresAt": iso(handoff.expires_at),
        }
        event_emit(run=locked, type="handoff.requested", data=data)
        if notify:
            webhook_enqueue(space=locked.space, event="handoff.requested", data=_notice(handoff))
        notify_run_changed(run.id, "handoff")
    return handoff


def handoff_finish(*, handoff: Handoff, status: str, who: str = "", note: str = "") -> Handoff:
    """Completes or cancels an open handoff; 409 `handoff.ended` when it is not open."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=handoff.run_id)
        current = Handoff.objects.select_for_update().get(pk=handoff.pk)
        if current.status == Handoff.Status.OPEN and current.expires_at <= timezone.now():
            _handoff_close(current, Handoff.Status.EXPIRED, run=run)
        if current.status != Handoff.Status.OPEN:
            raise Conflict(
                f"Handoff {handoff.id} has ended ({current.status}).",
                code="handoff.ended",
                details={"status": current.status},
            )
        _handoff_close(current, status, who=who, note=note, run=run)
    return current


def handoffs_expire(*, run: Run | None = None, now: datetime | None = None) -> int:
    """Ends open handoffs whose time is up (of one run, or all: the beat's sweep)."""
    due = Handoff.objects.filter(status=Handoff.Status.OPEN, expires_at__lte=now or timezone.now())
    if run is not None:
        due = due.filter(run=run)
    ended = 0
    for handoff_id in list(due.values_list("id", flat=True)[:500]):
        with transaction.atomic():
            current = (
                Handoff.objects.select_for_update()
                .filter(pk=handoff_id, status=Handoff.Status.OPEN)
                .first()
            )
            if current is not None:
                _handoff_close(current, Handoff.Status.EXPIRED)
                ended += 1
    return ended


def _notice(handoff: Handoff) -> dict[str, Any]:
    """What a webhook receiver learns of a handoff (never a viewer URL: those are shown
    once, to the automation that asked)."""
    return {
        "handoffId": handoff.id,
        "runId": handoff.run_id,
        "status": handoff.status,
        "instructions": handoff.instructions,
        "expiresAt": iso(handoff.expires_at),
        "completedBy": handoff.completed_by or None,
        "note": handoff.note or None,
    }


def _handoff_close(
    handoff: Handoff,
    status: str,
    *,
    who: str = "",
    note: str = "",
    reason: str = "",
    run: Run | None = None,
) -> None:
    """Ends an open handoff (its row locked by the caller) and tells the run's streams,
    its event log (while the run is running) and, if asked, the space's webhook."""
    handoff.status = status
    handoff.ended_at = timezone.now()
    handoff.completed_by = who
    handoff.note = note
    handoff.save(update_fields=["status", "ended_at", "completed_by", "note"])
    run = run or Run.objects.select_related("space").get(pk=handoff.run_id)
    data: dict[str, Any] = {"handoffId": handoff.id}
    if status == Handoff.Status.COMPLETED:
        data.update(who=who, note=note)
    if reason:
        data["reason"] = reason
    with contextlib.suppress(Conflict):  # a run that ended meanwhile logs nothing more
        event_emit(run=run, type=f"handoff.{status}", data=data)
    if handoff.notify:
        webhook_enqueue(space=run.space, event=f"handoff.{status}", data=_notice(handoff))
    notify_run_changed(handoff.run_id, "handoff")


def run_network_usage(*, run: Run, bytes_in: int, bytes_out: int) -> None:
    """What the run's browser moved through its egress proxy, counted by its host."""
    Run.objects.filter(pk=run.pk).update(network_bytes_in=bytes_in, network_bytes_out=bytes_out)


# Spaces -------------------------------------------------------------------------------


def space_embed_origins_set(*, space: Space, origins: Any) -> Space:
    """Sets the sites that may embed the space's viewers (bctrl_site.origins): `["*"]`,
    `[]` or origins, normalized. Anything else is a 422 naming `embedOrigins` (and the
    index of the first bad entry), and nothing is saved."""
    try:
        checked = embed_origins_checked(origins)
    except InvalidEmbedOrigins as exc:
        details: dict[str, Any] = {"field": "embedOrigins"}
        if exc.index is not None:
            details["index"] = exc.index
        raise Invalid(f"embedOrigins: {exc}", details=details) from exc
    space.allowed_embed_origins = checked
    space.save(update_fields=["allowed_embed_origins"])
    return space
