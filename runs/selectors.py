"""Reads. Every queryset that reaches a caller is scoped to a space here, and only here."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from runs.errors import ObjectNotFound
from runs.models import (
    Artifact,
    Command,
    Event,
    FileExport,
    Handoff,
    Run,
    Runtime,
    RuntimeHost,
    Space,
)


def runs_of(space: Space) -> QuerySet[Run]:
    return Run.objects.filter(space=space).select_related("runtime", "thumbnail")


def run_of(space: Space, run_id: str) -> Run:
    run = runs_of(space).filter(pk=run_id).first()
    if run is None:
        raise ObjectNotFound(f"No run {run_id!r}.")
    return run


def handoff_of(run: Run, handoff_id: str) -> Handoff:
    handoff = run.handoffs.filter(pk=handoff_id).first()
    if handoff is None:
        raise ObjectNotFound(f"No handoff {handoff_id!r} on run {run.id}.")
    return handoff


def open_handoff_of(run_id: str) -> Handoff | None:
    """The run's open handoff whose time is not up, if any."""
    return (
        Handoff.objects.filter(run_id=run_id, status=Handoff.Status.OPEN)
        .filter(expires_at__gt=timezone.now())
        .first()
    )


def open_handoffs_of(run_ids: list[str]) -> dict[str, Handoff]:
    """The open handoffs of these runs (of one space: the caller's page), by run id."""
    found = Handoff.objects.filter(
        run_id__in=run_ids, status=Handoff.Status.OPEN, expires_at__gt=timezone.now()
    )
    return {handoff.run_id: handoff for handoff in found} if run_ids else {}


def live_hosts() -> QuerySet[RuntimeHost]:
    """Runtime hosts that heartbeated within BCTRL_RUNTIME_STALE_HEARTBEATS heartbeats."""
    stale = settings.BCTRL_RUNTIME_HEARTBEAT_S * settings.BCTRL_RUNTIME_STALE_HEARTBEATS
    return RuntimeHost.objects.filter(heartbeat_at__gte=timezone.now() - timedelta(seconds=stale))


def runtimes_of(space: Space) -> QuerySet[Runtime]:
    return Runtime.objects.filter(space=space)


def runtime_of(space: Space, runtime_id: str) -> Runtime:
    runtime = runtimes_of(space).filter(pk=runtime_id).first()
    if runtime is None:
        raise ObjectNotFound(f"No runtime {runtime_id!r}.")
    return runtime


def active_run_of(runtime: Runtime) -> Run | None:
    return runtime.runs.filter(status=Run.Status.RUNNING).order_by("-id").first()


def active_run_ids(space: Space) -> dict[str, str]:
    """Runtime id → its active run id, for a page of runtimes, in one query."""
    return dict(
        Run.objects.filter(space=space, status=Run.Status.RUNNING, runtime__isnull=False)
        .order_by("id")
        .values_list("runtime_id", "id")
    )


def spaces_of_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Space]:
    if not user.is_authenticated:
        return Space.objects.none()
    return Space.objects.filter(memberships__user_id=user.pk)


def run_of_user(user: AbstractBaseUser | AnonymousUser, run_id: str) -> Run:
    """A run that the dashboard user may see: one of the spaces they belong to."""
    run = (
        Run.objects.filter(pk=run_id, space__in=spaces_of_user(user))
        .select_related("space", "runtime", "thumbnail")
        .first()
    )
    if run is None:
        raise ObjectNotFound(f"No run {run_id!r}.")
    return run


def events_of(
    run: Run,
    *,
    types: list[str] | None = None,
    page_id: str | None = None,
    after_seq: int | None = None,
) -> QuerySet[Event]:
    events = Event.objects.filter(run=run)
    if types:
        events = events.filter(type__in=types)
    if page_id:
        events = events.filter(page_id=page_id)
    if after_seq is not None:
        events = events.filter(seq__gt=after_seq)
    return events.order_by("seq")


def page_of(run: Run, page_id: str) -> str:
    """A page (tab) id of the run: one that any of its events names."""
    if not page_id or not Event.objects.filter(run=run, page_id=page_id).exists():
        raise ObjectNotFound(f"No page {page_id!r} in this run.")
    return page_id


def commands_of(run: Run) -> QuerySet[Command]:
    return Command.objects.filter(run=run).order_by("started_at", "id")


def artifacts_of(run: Run, *, kinds: list[str] | None = None) -> QuerySet[Artifact]:
    artifacts = Artifact.objects.filter(run=run)
    if kinds:
        artifacts = artifacts.filter(kind__in=kinds)
    return artifacts.order_by("created_at", "id")


def files_of(run: Run, *, kinds: list[str] | None = None) -> QuerySet[Artifact]:
    """A run's files: every artifact except the recording, which has its own surfaces."""
    return artifacts_of(run, kinds=kinds).exclude(kind=Artifact.Kind.RECORDING)


def artifact_of(run: Run, artifact_id: str) -> Artifact:
    artifact = Artifact.objects.filter(run=run, pk=artifact_id).first()
    if artifact is None:
        raise ObjectNotFound(f"No artifact {artifact_id!r}.")
    return artifact


def export_of(run: Run, export_id: str) -> FileExport:
    export = FileExport.objects.filter(run=run, pk=export_id).select_related("artifact").first()
    if export is None:
        raise ObjectNotFound(f"No export {export_id!r}.")
    return export
