"""Seeds the benchmark database with PostgreSQL COPY: a big "bench" space and a small "other".

Rows are written in time order with ids whose time part is the row's own timestamp, the
way `runs.ids.new_id` would have made them had each row been created at that moment, so
newest-first (`-id`) order is the realistic one. Imported only after `django.setup()`.
"""

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, models, transaction

from runs.ids import _ALPHABET, new_id
from runs.models import (
    ApiKey,
    Artifact,
    Command,
    Event,
    FileExport,
    Membership,
    Run,
    Runtime,
    Space,
)

BENCH_SLUG = "bench"
OTHER_SLUG = "other"
BENCH_USERNAME = "bench"
BENCH_PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throwaway local user)
DAYS = 90
PROGRESS_EVERY = 100_000


@dataclass(frozen=True)
class Size:
    runs: int = 100_000
    event_runs: int = 10_000
    events_per_run: int = 100
    other_runs: int = 10_000
    other_event_runs: int = 500
    runtimes: int = 300
    other_runtimes: int = 20

    def scaled(self, factor: float) -> "Size":
        def times(value: int) -> int:
            return max(1, round(value * factor))

        return Size(
            runs=times(self.runs),
            event_runs=times(self.event_runs),
            events_per_run=self.events_per_run,
            other_runs=times(self.other_runs),
            other_event_runs=times(self.other_event_runs),
            runtimes=times(self.runtimes),
            other_runtimes=times(self.other_runtimes),
        )

    @property
    def events(self) -> int:
        return self.event_runs * self.events_per_run


def id_at(prefix: str, when: datetime) -> str:
    """An id as `new_id(prefix)` makes it at `when`: 10 chars of milliseconds + 16 random."""
    ms = int(when.timestamp() * 1000)
    chars = []
    for _ in range(10):
        chars.append(_ALPHABET[ms & 31])
        ms >>= 5
    return f"{prefix}_{''.join(reversed(chars))}{new_id(prefix)[-16:]}"


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.start = time.perf_counter()

    def step(self, count: int = 1) -> None:
        before = self.done // PROGRESS_EVERY
        self.done += count
        if self.done // PROGRESS_EVERY != before or self.done == self.total:
            self.report()

    def report(self) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        print(
            f"  {self.label}: {self.done:>9,}/{self.total:,}"
            f"  {self.done / elapsed:>9,.0f} rows/s  {elapsed:6.1f} s",
            flush=True,
        )


def columns(model: type[models.Model], names: Sequence[str]) -> str:
    quoted = []
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field)
        quoted.append(connection.ops.quote_name(field.column or field.name))
    return ", ".join(quoted)


def copy_rows(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterator[Sequence[Any]],
    label: str,
    total: int,
) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    progress = Progress(label, total)
    # Columns the seed does not set get their model default, as the ORM would give them
    # (the database has no defaults of its own), so a field added later needs no change here.
    defaulted = [
        field for field in model._meta.concrete_fields if field.name not in names and not field.null
    ]
    names = [*names, *(field.name for field in defaulted)]
    defaults = tuple(field.get_db_prep_save(field.get_default(), connection) for field in defaulted)
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns(model, names)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row((*row, *defaults))
            progress.step()


# --- what gets seeded -------------------------------------------------------------------

FLOWS = [
    "checkout",
    "login",
    "signup",
    "search",
    "price-watch",
    "invoice-download",
    "form-fill",
    "scrape-listings",
    "support-ticket",
    "report-export",
    "cart-abandon",
    "newsletter",
    "onboarding",
    "inventory-sync",
    "booking",
    "lead-enrich",
]
HOSTS = ["shop.example.com", "app.example.org", "portal.example.net", "www.example.io"]
TEAMS = ["growth", "ops", "data", "qa", "support"]
ERRORS = [
    {"code": "timeout", "message": "Navigation timeout of 30000 ms exceeded"},
    {"code": "selector", "message": "Timed out waiting for selector 'button[type=submit]'"},
    {"code": "crash", "message": "Target page, context or browser has been closed"},
    {"code": "http", "message": "Unexpected response 503 from https://app.example.org/api/cart"},
]
RESOURCE_TYPES = ["document", "script", "xhr", "fetch", "image", "stylesheet"]
MIME_TYPES = ["text/html", "application/javascript", "application/json", "image/png", "text/css"]


@dataclass
class RunRow:
    id: str
    space_id: str
    runtime_id: str | None
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    labels: str
    metadata: str
    event_count: int
    command_count: int
    artifact_count: int
    artifact_bytes: int
    duration_ms: int | None

    def values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.space_id,
            self.runtime_id,
            self.name,
            self.status,
            self.started_at,
            self.ended_at,
            self.error,
            self.labels,
            self.metadata,
            self.event_count,
            self.command_count,
            self.artifact_count,
            self.artifact_bytes,
            self.duration_ms,
        )


RUN_FIELDS = [
    "id",
    "space",
    "runtime",
    "name",
    "status",
    "started_at",
    "ended_at",
    "error",
    "labels",
    "metadata",
    "event_count",
    "command_count",
    "artifact_count",
    "artifact_bytes",
    "duration_ms",
]
EVENT_FIELDS = ["id", "run", "seq", "time", "type", "page_id", "data"]
RUNTIME_FIELDS = ["id", "space", "name", "status", "config", "created_at", "updated_at"]


def make_runs(
    rng: random.Random,
    now: datetime,
    spaces: list[tuple[Space, int, list[str]]],
) -> list[RunRow]:
    """Runs of every space, interleaved in one timeline over the last DAYS days."""
    stamps: list[tuple[float, int]] = []
    for index, (_, count, _) in enumerate(spaces):
        stamps += [(rng.uniform(0, DAYS * 86400), index) for _ in range(count)]
    stamps.sort(reverse=True)  # oldest first: seconds before now, largest first
    rows: list[RunRow] = []
    for ordinal, (seconds_ago, index) in enumerate(stamps, start=1):
        space, _, runtime_ids = spaces[index]
        started = now - timedelta(seconds=seconds_ago)
        flow = rng.choice(FLOWS)
        if seconds_ago < 2 * 3600:
            status = Run.Status.RUNNING
        else:
            status = Run.Status.FAILED if rng.random() < 0.12 else Run.Status.COMPLETED
        duration = int(min(rng.lognormvariate(10.7, 0.9), 3_600_000))  # median ≈ 45 s
        ended = started + timedelta(milliseconds=duration) if status != "running" else None
        commands = rng.randint(5, 400)
        artifacts = rng.choice([0, 0, 1, 1, 2, 3, 5])
        rows.append(
            RunRow(
                id=id_at("run", started),
                space_id=space.id,
                runtime_id=rng.choice(runtime_ids) if rng.random() < 0.95 else None,
                name=f"{flow} #{ordinal}",
                status=status,
                started_at=started,
                ended_at=ended,
                error=dumps(rng.choice(ERRORS)) if status == "failed" else None,
                labels=dumps(
                    {
                        "env": rng.choice(["prod", "prod", "staging"]),
                        "team": rng.choice(TEAMS),
                        "flow": flow,
                    }
                ),
                metadata=dumps(
                    {
                        "trigger": rng.choice(["schedule", "api", "ci"]),
                        "commit": f"{rng.getrandbits(28):07x}",
                    }
                ),
                event_count=0,  # set once the runs with events are picked
                command_count=commands,
                artifact_count=artifacts,
                artifact_bytes=artifacts * rng.randint(20_000, 900_000),
                duration_ms=duration if status != "running" else None,
            )
        )
    return rows


def pick_event_runs(rows: list[RunRow], space_id: str, count: int) -> set[str]:
    """`count` runs of a space, spread evenly over its timeline (every n-th run)."""
    ids = [row.id for row in rows if row.space_id == space_id]
    if count <= 0:
        return set()
    step = max(len(ids) // count, 1)
    return set(ids[::step][:count])


def event_rows(
    rng: random.Random, runs: list[RunRow], per_run: int, now: datetime
) -> Iterator[tuple[Any, ...]]:
    """`per_run` events per run, seq 1..per_run without gaps, ~200 bytes of data each."""
    for run in runs:
        host = rng.choice(HOSTS)
        page_id = f"{rng.getrandbits(128):032X}"
        span = (run.ended_at or now) - run.started_at
        step = span / (per_run + 1)
        url = f"https://{host}/"
        request_id = 0
        for seq in range(1, per_run + 1):
            when = run.started_at + step * seq
            kind = seq % 10
            if kind == 1:
                url = f"https://{host}/{rng.choice(FLOWS)}/{rng.randint(1, 99999)}?ref=bench"
                type_ = "navigation"
                data: dict[str, Any] = {
                    "url": url,
                    "frameId": page_id,
                    "transitionType": rng.choice(["link", "typed", "form_submit"]),
                    "title": f"{host} - {rng.choice(FLOWS).replace('-', ' ').title()}",
                    "loaderId": f"{rng.getrandbits(64):016X}",
                }
            elif kind in (2, 4, 6, 8):
                request_id += 1
                type_ = "network.request"
                data = {
                    "requestId": f"{rng.randint(1000, 9999)}.{request_id}",
                    "method": rng.choice(["GET", "GET", "GET", "POST"]),
                    "url": f"https://{host}/api/v2/items/{rng.randint(1, 99999)}",
                    "resourceType": rng.choice(RESOURCE_TYPES),
                    "headers": {"accept": "application/json", "x-client": "bctrl"},
                }
            elif kind in (3, 5, 7, 9):
                type_ = "network.response"
                data = {
                    "requestId": f"{rng.randint(1000, 9999)}.{request_id}",
                    "status": rng.choice([200, 200, 200, 200, 204, 304, 404, 500]),
                    "url": f"https://{host}/api/v2/items/{rng.randint(1, 99999)}",
                    "mimeType": rng.choice(MIME_TYPES),
                    "encodedDataLength": rng.randint(200, 400_000),
                    "fromCache": False,
                }
            else:
                type_ = "console.message"
                data = {
                    "level": rng.choice(["log", "info", "warning", "error"]),
                    "text": f"[app] step {seq} done in {rng.randint(1, 900)} ms; url={url}",
                    "source": "console-api",
                    "line": rng.randint(1, 4000),
                }
            yield (id_at("evt", when), run.id, seq, when, type_, page_id, dumps(data))


# --- the seed itself ----------------------------------------------------------------------


def seeded(size: Size) -> bool:
    """The marker: the bench space holds exactly the target number of runs and events."""
    bench = Space.objects.filter(slug=BENCH_SLUG).first()
    other = Space.objects.filter(slug=OTHER_SLUG).first()
    if bench is None or other is None:
        return False
    return (
        Run.objects.filter(space=bench).count() == size.runs
        and Event.objects.filter(run__space=bench).count() == size.events
        and Run.objects.filter(space=other).count() == size.other_runs
    )


def wipe() -> None:
    tables = [
        model._meta.db_table
        for model in (Event, Command, FileExport, Artifact, Run, Runtime, ApiKey, Membership, Space)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def bench_user() -> User:
    User = get_user_model()
    user = User.objects.filter(username=BENCH_USERNAME).first()
    if user is None:
        user = User.objects.create_user(username=BENCH_USERNAME, password=BENCH_PASSWORD)
    return user


def seed(size: Size, *, force: bool = False) -> None:
    if not force and seeded(size):
        print("Data: already seeded to the target size; skipping (--reseed to redo).")
        return
    started = time.perf_counter()
    rng = random.Random(20250101)
    now = datetime.now(UTC).replace(microsecond=0)
    print(
        f"Seeding {size.runs:,} runs and {size.events:,} events in space {BENCH_SLUG!r}, "
        f"{size.other_runs:,} runs in {OTHER_SLUG!r}…",
        flush=True,
    )
    with transaction.atomic():
        wipe()
        bench = Space.objects.create(name="Bench", slug=BENCH_SLUG)
        other = Space.objects.create(name="Other", slug=OTHER_SLUG)
        Membership.objects.create(user=bench_user(), space=bench, role=Membership.Role.OWNER)

        created = now - timedelta(days=DAYS + 1)
        runtimes: dict[str, list[str]] = {bench.id: [], other.id: []}
        runtime_rows = []
        for space, count in ((bench, size.runtimes), (other, size.other_runtimes)):
            for number in range(count):
                when = created + timedelta(minutes=number)
                runtime_id = id_at("rt", when)
                runtimes[space.id].append(runtime_id)
                status = rng.choice(["idle", "idle", "stopped", "running"])
                config = dumps({"viewport": {"width": 1280, "height": 800}, "region": "eu"})
                runtime_rows.append(
                    (runtime_id, space.id, f"browser-{number:03d}", status, config, when, when)
                )
        runtime_rows.sort()
        copy_rows(Runtime, RUNTIME_FIELDS, iter(runtime_rows), "runtimes", len(runtime_rows))

        rows = make_runs(
            rng,
            now,
            [(bench, size.runs, runtimes[bench.id]), (other, size.other_runs, runtimes[other.id])],
        )
        with_events = pick_event_runs(rows, bench.id, size.event_runs) | pick_event_runs(
            rows, other.id, size.other_event_runs
        )
        for row in rows:
            row.event_count = size.events_per_run if row.id in with_events else 0
        copy_rows(Run, RUN_FIELDS, (row.values() for row in rows), "runs", len(rows))

        event_runs = [row for row in rows if row.id in with_events]
        total = len(event_runs) * size.events_per_run
        copy_rows(
            Event,
            EVENT_FIELDS,
            event_rows(rng, event_runs, size.events_per_run, now),
            "events",
            total,
        )
    print("  VACUUM ANALYZE…", flush=True)
    with connection.cursor() as cursor:
        for model in (Runtime, Run, Event):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
    print(f"Seeded in {time.perf_counter() - started:.0f} s.", flush=True)
