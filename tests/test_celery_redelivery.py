"""A task whose worker process dies is delivered again and finishes, with nothing twice.

A real Celery worker (prefork, as `make run` starts it) on a broker of the test's own:
the filesystem broker of the embedded default in a folder of the test, and Redis (when
REDIS_URL is set) on a queue of the test's own, so no development worker takes the tasks.
tests/celery_pause.py holds each task mid-way (a recording's first target saved, the
second to do; an export's ZIP stored but the export not yet ready) until the test kills
that pool process with SIGKILL.
"""

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from recordings.models import Recording, RecordingTarget
from recordings.services import batch_ingest, recording_start, recording_stop
from recordings.tasks import process_recording
from runs import services
from runs.exports.files import export_request
from runs.models import Artifact, FileExport, Run
from runs.tasks import build_export

from .conftest import Tenant, hours_ago_ms, started_at_ms
from .processes import ROOT, process_env, stop

pytestmark = pytest.mark.django_db(transaction=True)

T0 = hours_ago_ms(1)


class Broker:
    """Where the test sends tasks and where its worker takes them from."""

    def __init__(self, url: str, var_dir: Path, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.options: dict[str, Any] = {}
        if url.startswith("filesystem://"):
            folder = var_dir / "celery"
            for name in ("queue", "control"):
                (folder / name).mkdir(parents=True, exist_ok=True)
            self.options = {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "control_folder": str(folder / "control"),
            }
        # Not the current app: the project's shared tasks would follow it in later tests.
        self.app = Celery(
            "bctrl-test", broker=url, broker_transport_options=self.options, set_as_current=False
        )

    def send(self, task_name: str, *args: Any) -> None:
        self.app.send_task(task_name, args=args, queue=self.queue)

    def close(self) -> None:
        if not self.url.startswith("filesystem://"):
            with self.app.connection_for_write() as connection:
                connection.default_channel.queue_delete(self.queue)
        self.app.close()


@pytest.fixture(params=["filesystem", pytest.param("redis", marks=pytest.mark.services)])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    url = "filesystem://" if request.param == "filesystem" else request.getfixturevalue("redis_url")
    broker = Broker(url, tmp_path / "var", f"test-redelivery-{uuid.uuid4().hex[:12]}")
    yield broker
    broker.close()


@pytest.fixture
def worker(broker: Broker, tmp_path: Path) -> Iterator[Path]:
    """A prefork worker with two pool processes on the test's broker; yields the folder
    where tests/celery_pause.py notes the pid of a process it holds."""
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    extra = {"BCTRL_TEST_PAUSE_DIR": str(pauses)}
    if not broker.url.startswith("filesystem://"):
        extra["REDIS_URL"] = broker.url
    argv = [
        sys.executable, "-m", "celery", "-A", "bctrl_site", "worker", "-I", "tests.celery_pause",
        "--pool", "prefork", "--concurrency", "2", "-Q", broker.queue,
        "-n", f"{broker.queue}@%h", "--without-heartbeat", "--without-gossip",
        "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    env = process_env(tmp_path / "var", **extra)
    process = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        yield pauses
    finally:
        stop(process)


@pytest.fixture
def enqueue_to(monkeypatch: pytest.MonkeyPatch, broker: Broker) -> Callable[[Any], None]:
    """Sends what the code under test enqueues with `task.delay` to the test's broker."""

    def route(task: Any) -> None:
        monkeypatch.setattr(task, "delay", lambda *args: broker.send(task.name, *args))

    return route


def kill_when_held(pauses: Path, *points: str, timeout: float = 60.0) -> None:
    """Kills each pool process as soon as it is held at one of `points`, in the order
    they come (a held export keeps SQLite's write lock, which the other task waits for)."""
    waiting = set(points)
    deadline = time.monotonic() + timeout
    while waiting:
        for point in sorted(waiting):
            marker = pauses / point
            if marker.exists() and marker.read_text().endswith("\n"):
                os.kill(int(marker.read_text()), signal.SIGKILL)
                waiting.discard(point)
        assert time.monotonic() < deadline, f"no task reached {', '.join(sorted(waiting))}"
        time.sleep(0.02)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def rrweb_page(events: int) -> list[dict[str, Any]]:
    """What rrweb records of a page: Meta, a full snapshot, then `events - 2` mutations."""
    node = {"type": 0, "id": 1, "childNodes": []}
    return [
        {"type": 4, "timestamp": T0, "data": {"href": "https://shop.example/"}},
        {"type": 2, "timestamp": T0 + 1, "data": {"node": node, "initialOffset": {}}},
        *(
            {
                "type": 3,
                "timestamp": T0 + 100 * n,
                "data": {"source": 0, "texts": [], "attributes": [], "removes": [], "adds": []},
            }
            for n in range(1, events - 1)
        ),
    ]


def recorded_run(tenant: Tenant) -> Run:
    """A run whose recording has two pages of 51 events each."""
    run = started_at_ms(services.run_create(space=tenant.space), T0)
    recording_start(run=run)
    for target in ("page-1", "page-2"):
        batch_ingest(run=run, target=target, seq=0, events=rrweb_page(51))
    return run


def test_a_killed_worker_process_loses_neither_a_recording_nor_an_export(
    tenant: Tenant, broker: Broker, worker: Path, enqueue_to: Callable[[Any], None]
) -> None:
    enqueue_to(process_recording)
    enqueue_to(build_export)
    run = recorded_run(tenant)
    services.artifact_store(
        run=run, kind="download", name="report.csv", content=io.BytesIO(b"a,b\n1,2\n")
    )
    recording = recording_stop(recording=Recording.objects.get(run=run))
    export, _ = export_request(run=run, name="files", types=["download"])

    kill_when_held(worker, "recording-second-target", "export-zip-stored")

    def settled() -> bool:
        recording.refresh_from_db()
        export.refresh_from_db()
        return recording.status == Recording.Status.READY and (
            export.status == FileExport.Status.READY
        )

    # Celery notices a lost pool process after `worker_lost_wait` (10 s) and puts the
    # message back; a new pool process takes it.
    wait_for(settled, "the recording and the export to be ready")
    assert recording.attempts == 2
    targets = RecordingTarget.objects.filter(recording=recording).order_by("target")
    assert [(t.target, t.playable, t.event_count) for t in targets] == [
        ("page-1", True, 51),
        ("page-2", True, 51),
    ]
    assert recording.event_count == 102
    zips = Artifact.objects.filter(run=run, kind=Artifact.Kind.EXPORT)
    assert list(zips.values_list("id", flat=True)) == [export.artifact_id]
    assert export.file_count == 1
