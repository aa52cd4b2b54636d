"""Files exports: a ZIP of a run's files and of the files built from its record (HAR,
trace, replay file; runs.exports.BUILDERS), built by a Celery task and stored as one
more artifact of the run."""

import json
import tempfile
import zipfile

from django.db import IntegrityError, transaction
from django.utils import timezone

from runs.errors import Conflict
from runs.exports import BUILT_TYPES, builder_of
from runs.live import notify_run_changed
from runs.models import Artifact, FileExport, Run
from runs.queue import queue
from runs.selectors import files_of
from runs.services import artifact_store, safe_filename


def export_request(
    *, run: Run, name: str, types: list[str], idempotency_key: str = ""
) -> tuple[FileExport, bool]:
    """Creates an export, or returns the one this Idempotency-Key already made.

    The same key with a different request is a 409: a key names one request. When the
    task queue refuses the build, the export is removed again and the error raised.
    """
    if idempotency_key:
        existing = FileExport.objects.filter(run=run, idempotency_key=idempotency_key).first()
        if existing is not None:
            _check_same_export(existing, name, types)
            return existing, False
    for kind in types:
        if kind in BUILT_TYPES:
            builder_of(kind).check(run)  # a 409 now rather than a failed export later
    try:
        with transaction.atomic():
            export = FileExport.objects.create(
                run=run, name=name, types=sorted(set(types)), idempotency_key=idempotency_key
            )
    except IntegrityError:
        existing = FileExport.objects.get(run=run, idempotency_key=idempotency_key)
        _check_same_export(existing, name, types)
        return existing, False

    def enqueue() -> None:
        try:
            queue("runs.tasks.build_export", export.id)
        except Exception:
            # Nothing would ever build it: no export, and the caller's 503 says try again.
            FileExport.objects.filter(pk=export.pk).delete()
            raise

    transaction.on_commit(enqueue)
    return export, True


def _check_same_export(export: FileExport, name: str, types: list[str]) -> None:
    if export.name != name or export.types != sorted(set(types)):
        raise Conflict(
            "This Idempotency-Key was used for a different export request.",
            code="idempotency_key_reused",
        )


def export_build(*, export_id: str) -> FileExport | None:
    """Builds the ZIP of an export. Re-running a finished export does nothing."""
    export = FileExport.objects.select_related("run").filter(pk=export_id).first()
    if export is None:
        return None  # its request was undone (the queue refused the task)
    if export.status != FileExport.Status.PENDING:
        return export
    kinds = [kind for kind in export.types if kind not in BUILT_TYPES]
    built = [kind for kind in export.types if kind in BUILT_TYPES]
    files = (
        list(files_of(export.run, kinds=kinds or None).exclude(kind=Artifact.Kind.EXPORT))
        if kinds or not built
        else []
    )
    try:
        with tempfile.TemporaryFile() as archive_file:
            used_names: set[str] = set()
            manifest = []
            with zipfile.ZipFile(archive_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for artifact in files:
                    arcname = _unique_name(
                        f"{artifact.kind}/{safe_filename(artifact.name)}", used_names
                    )
                    with artifact.file.open("rb") as source, archive.open(arcname, "w") as target:
                        while chunk := source.read(256 * 1024):
                            target.write(chunk)
                    manifest.append(
                        {
                            "path": arcname,
                            "artifactId": artifact.id,
                            "kind": artifact.kind,
                            "name": artifact.name,
                            "size": artifact.size,
                            "sha256": artifact.sha256,
                        }
                    )
                for kind in ("har", "trace", "replay"):
                    if kind not in built:
                        continue
                    builder = builder_of(kind)
                    name, chunks = builder.filename(export.run), builder.chunks(export.run)
                    arcname = _unique_name(f"{kind}/{name}", used_names)
                    size = 0
                    with archive.open(arcname, "w") as target:
                        for chunk in chunks:
                            target.write(chunk)
                            size += len(chunk)
                    manifest.append({"path": arcname, "kind": kind, "name": name, "size": size})
                archive.writestr(
                    "manifest.json",
                    json.dumps({"runId": export.run_id, "files": manifest}, indent=2),
                )
            # The ZIP's artifact and the export's `ready` commit together: a worker killed
            # in between leaves the export pending, and its redelivered task builds one ZIP.
            with transaction.atomic():
                artifact = artifact_store(
                    run=export.run,
                    kind=Artifact.Kind.EXPORT,
                    name=f"{safe_filename(export.name)}.zip",
                    content=archive_file,
                    content_type="application/zip",
                    metadata={"exportId": export.id},
                    require_active=False,
                )
                FileExport.objects.filter(pk=export.pk).update(
                    status=FileExport.Status.READY,
                    artifact=artifact,
                    file_count=len(manifest),
                    finished_at=timezone.now(),
                )
    except Exception as exc:
        FileExport.objects.filter(pk=export.pk).update(
            status=FileExport.Status.FAILED, error=str(exc)[:1000], finished_at=timezone.now()
        )
        raise
    notify_run_changed(export.run_id, "exports")
    export.refresh_from_db()
    return export


def _unique_name(name: str, used: set[str]) -> str:
    candidate, counter = name, 1
    while candidate in used:
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}-{counter}.{ext}" if dot else f"{name}-{counter}"
        counter += 1
    used.add(candidate)
    return candidate
