"""Benchmark of the runs and events lists on PostgreSQL, against a naive DRF baseline.

    .venv/bin/python -m benchmarks.runs_api      (or `make benchmark`)

Creates (if missing) and migrates a PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/bctrl_bench), seeds it once (100,000 runs and
1,000,000 events in a "bench" space, a smaller "other" space), then times each endpoint
in-process through Django's test Client and counts its queries. Prints a Markdown table
and writes it to benchmarks/results/runs_api.md. See benchmarks/README.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from benchmarks import write_results

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bctrl_bench"
P95_TARGET_MS = 50.0
DEEP_PAGES = 50  # follow the cursor this many times, then measure the next page
FAR_ROW = 50_000  # and a page this many rows in (offset 50,000 for the baseline)


# --- database ---------------------------------------------------------------------------


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL


def ensure_database(url: str) -> None:
    """Creates the database if it is missing; exits with a clear message if PostgreSQL is down."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if parsed.scheme not in ("postgres", "postgresql", "pgsql") or not name:
        sys.exit(f"BENCH_DATABASE_URL must be a postgres:// URL with a database name, not {url!r}.")
    if "bench" not in name:
        # The seed truncates every table of the runs app: never point it at real data.
        sys.exit(f"Refusing to use database {name!r}: its name must contain 'bench'.")
    try:
        with psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=5) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if exists is None:
                print(f"Creating database {name!r}…", flush=True)
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"
        print(
            f"PostgreSQL is not reachable at {where} ({str(exc).strip()}).\n"
            "The benchmark needs a running PostgreSQL server. Start the local one with\n"
            "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
            "or point BENCH_DATABASE_URL at another server "
            "(postgres://user@host:port/bctrl_bench).",
            file=sys.stderr,
        )
        sys.exit(2)


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bctrl_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    # Production serves hashed names from a manifest that `collectstatic` writes; the
    # benchmark does not run collectstatic (it would rewrite var/static under the feet of
    # whoever runs the app), so templates get plain /static/ URLs: a dict lookup less.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    print("Migrating…", flush=True)
    call_command("migrate", interactive=False, verbosity=0)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Case:
    endpoint: str
    impl: str
    path: str
    client: Any
    timed: bool = True
    samples: list[float] = field(default_factory=list)
    queries: int = 0
    sql: list[dict[str, Any]] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.samples, n=100, method="inclusive")[94] * 1000


def get(case: Case) -> Any:
    response = case.client.get(case.path)
    if response.status_code != 200:
        raise RuntimeError(
            f"{case.impl} {case.path} answered {response.status_code}: {response.content[:300]!r}"
        )
    return response


def count_queries(case: Case) -> None:
    """Fewest queries over three requests: the API key's last-used stamp writes at most once
    a minute, and that occasional UPDATE is not part of a page's cost."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    best: list[dict[str, Any]] | None = None
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            get(case)
        if best is None or len(captured.captured_queries) < len(best):
            best = list(captured.captured_queries)
    case.sql = best or []
    case.queries = len(case.sql)


def run_cases(cases: list[Case], *, warmup: int, requests: int) -> None:
    """Warm-up, then `requests` timed rounds that visit every case in turn, so that noise
    from anything else on the machine spreads evenly over all of them."""
    timed = [case for case in cases if case.timed]
    for case in cases:
        count_queries(case)
    print(f"Warm-up: {warmup} requests per endpoint…", flush=True)
    for _ in range(warmup):
        for case in timed:
            get(case)
    print(f"Timing: {requests} requests per endpoint, {len(timed)} endpoints…", flush=True)
    started = time.perf_counter()
    for round_ in range(requests):
        for case in timed:
            t0 = time.perf_counter()
            get(case)
            case.samples.append(time.perf_counter() - t0)
        if (round_ + 1) % 50 == 0:
            print(
                f"  {round_ + 1}/{requests} rounds  {time.perf_counter() - started:5.1f} s",
                flush=True,
            )


def explain(cases: list[Case]) -> str:
    """EXPLAIN ANALYZE of the slowest two queries of every case, for the record."""
    from django.db import connection

    out = ["# EXPLAIN (ANALYZE, BUFFERS) of the slowest queries of each case", ""]
    with connection.cursor() as cursor:
        for case in cases:
            selects = [q for q in case.sql if q["sql"].lstrip().upper().startswith("SELECT")]
            slowest = sorted(selects, key=lambda q: float(q["time"]), reverse=True)[:2]
            out += [f"## {case.impl}: {case.endpoint}", f"`{case.path}`", ""]
            for query in slowest:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = "\n".join(row[0] for row in cursor.fetchall())
                out += ["```sql", query["sql"], "```", "```", plan, "```", ""]
    return "\n".join(out)


# --- the cases ----------------------------------------------------------------------------


def build_cases(dashboard_large: str | None) -> tuple[list[Case], dict[str, Any]]:
    from django.test import Client

    from benchmarks.seed import BENCH_SLUG, bench_user
    from runs.api.pagination import encode_cursor
    from runs.models import ApiKey, Run, Space

    bench = Space.objects.get(slug=BENCH_SLUG)
    ApiKey.objects.filter(space=bench, name="bench key").delete()
    _, raw_key = ApiKey.objects.issue(space=bench, name="bench key")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    dashboard = Client()
    dashboard.force_login(bench_user())

    cursor: str | None = None
    for _ in range(DEEP_PAGES):
        page = api.get("/v1/runs?limit=20" + (f"&cursor={cursor}" if cursor else "")).json()
        cursor = page["nextCursor"]
    deep_offset = DEEP_PAGES * 20
    ids = Run.objects.filter(space=bench).order_by("-id").values_list("id", flat=True)
    far_row = min(FAR_ROW, ids.count() // 2)
    far_cursor = encode_cursor([ids[far_row - 1]])
    run = (
        Run.objects.filter(space=bench, event_count=100, status=Run.Status.COMPLETED)
        .order_by("-id")
        .first()
    )
    assert run is not None, "no run with 100 events in the bench space"

    def pair(endpoint: str, ours: str, naive: str, *, timed: bool = True) -> list[Case]:
        return [
            Case(endpoint, "bctrl", ours, api, timed),
            Case(endpoint, "naive", naive, api, timed),
        ]

    events = f"/v1/runs/{run.id}/events"
    from dashboard.views import RUNS_PAGE_SIZE  # after django.setup()

    dashboard_rows = f" ({RUNS_PAGE_SIZE} rows)"
    cases = [
        *pair("runs, first page, limit 20", "/v1/runs?limit=20", "/naive/v1/runs?limit=20"),
        *pair("runs, first page, limit 100", "/v1/runs?limit=100", "/naive/v1/runs?limit=100"),
        *pair(
            f"runs, page {DEEP_PAGES + 1} (rows {deep_offset + 1:,}…), limit 20",
            f"/v1/runs?limit=20&cursor={cursor}",
            f"/naive/v1/runs?limit=20&offset={deep_offset}",
        ),
        *pair(
            f"runs, rows {far_row + 1:,}…, limit 20",
            f"/v1/runs?limit=20&cursor={far_cursor}",
            f"/naive/v1/runs?limit=20&offset={far_row}",
        ),
        *pair("runs, status=failed", "/v1/runs?status=failed", "/naive/v1/runs?status=failed"),
        Case(f"dashboard `/`, default page{dashboard_rows}", "bctrl", "/", dashboard),
    ]
    if dashboard_large:
        cases.append(
            Case(f"dashboard `/{dashboard_large}`", "bctrl", f"/{dashboard_large}", dashboard)
        )
    cases += [
        *pair("events, limit 100", f"{events}?limit=100", f"/naive{events}?limit=100"),
        *pair(
            "events, limit 100, after=50",
            f"{events}?limit=100&after=50",
            f"/naive{events}?limit=100&after=50",
        ),
        *pair(
            "events, type=navigation",
            f"{events}?type=navigation",
            f"/naive{events}?type=navigation",
        ),
        # Counted, not timed: the same lists at a small page, for the page-size comparison.
        *pair("events, limit 20", f"{events}?limit=20", f"/naive{events}?limit=20", timed=False),
    ]
    context = {"run_id": run.id, "bench_space": bench.id}
    return cases, context


# --- reporting ----------------------------------------------------------------------------


def machine() -> str:
    from django import get_version
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), PostgreSQL {pg_version} on the same host, "
        f"Python {platform.python_version()}, Django {get_version()}"
    )


def find(cases: list[Case], endpoint: str, impl: str) -> Case | None:
    return next((c for c in cases if c.endpoint == endpoint and c.impl == impl), None)


def report(
    cases: list[Case], *, size: Any, requests: int, warmup: int, note: str, load: str
) -> tuple[str, bool]:
    lines = [
        "# Runs API benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Data: {size.runs:,} runs and {size.events:,} events in the measured space "
        f"({size.event_runs:,} runs x {size.events_per_run} events), plus {size.other_runs:,} "
        "runs in another space.",
        f"Server time in-process (Django test Client, DEBUG off), {warmup} warm-up requests "
        f"then {requests} timed requests per endpoint, endpoints interleaved. {load}",
        "",
        "| endpoint | impl | p50 ms | p95 ms | queries |",
        "|---|---|---:|---:|---:|",
    ]
    for case in cases:
        if case.timed:
            lines.append(
                f"| {case.endpoint} | {case.impl} | {case.p50:.1f} | {case.p95:.1f} | "
                f"{case.queries} |"
            )
    lines += [
        "",
        "bctrl = the app's views (keyset cursor); naive = benchmarks/naive.py (ModelSerializer, "
        "LimitOffsetPagination, nested space/runtime without select_related, `-started_at`). "
        "The deep pages are the equivalent `offset` for the baseline.",
        "",
        "## Queries per request against page size",
        "",
        "| list | impl | small page | large page | independent of page size |",
        "|---|---|---:|---:|---|",
    ]
    comparisons = [
        ("runs", "runs, first page, limit 20", "runs, first page, limit 100", "20 / 100"),
        ("events", "events, limit 20", "events, limit 100", "20 / 100"),
    ]
    dashboard_cases = [c for c in cases if c.endpoint.startswith("dashboard")]
    independent = True
    for name, small_name, large_name, sizes in comparisons:
        for impl in ("bctrl", "naive"):
            small, large = find(cases, small_name, impl), find(cases, large_name, impl)
            if small is None or large is None:
                continue
            same = small.queries == large.queries
            if impl == "bctrl":
                independent &= same
            lines.append(
                f"| {name} (limit {sizes}) | {impl} | {small.queries} | {large.queries} | "
                f"{'yes' if same else 'no'} |"
            )
    if len(dashboard_cases) == 2:
        small, large = dashboard_cases
        same = small.queries == large.queries
        independent &= same
        lines.append(
            f"| dashboard (`{small.path}` / `{large.path}`) | bctrl | {small.queries} | "
            f"{large.queries} | {'yes' if same else 'no'} |"
        )
    slow = [c for c in cases if c.impl == "bctrl" and c.timed and c.p95 > P95_TARGET_MS]
    fast_enough = not slow
    lines += [
        "",
        "## Targets (bctrl)",
        "",
        f"- p95 ≤ {P95_TARGET_MS:.0f} ms on every endpoint: "
        + (
            "**holds**"
            if fast_enough
            else "**does not hold** for "
            + ", ".join(f"{c.endpoint} ({c.p95:.1f} ms)" for c in slow)
        ),
        "- query count independent of page size: "
        + ("**holds**" if independent else "**does not hold**"),
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n", fast_enough and independent


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per endpoint")
    parser.add_argument("--reseed", action="store_true", help="wipe and seed again")
    parser.add_argument(
        "--dashboard-large",
        default=os.environ.get("BENCH_DASHBOARD_LARGE", "?limit=50"),
        help="query string of the dashboard's larger page ('' to skip)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="data size factor (1 = 100,000 runs; for trials)"
    )
    args = parser.parse_args(argv)

    url = database_url()
    ensure_database(url)
    setup_django(url)

    from django.test.utils import override_settings

    from benchmarks.seed import Size, seed

    size = Size().scaled(args.scale)
    seed(size, force=args.reseed)
    with override_settings(ROOT_URLCONF="benchmarks.naive"):
        cases, context = build_cases(args.dashboard_large or None)
        load_before = os.getloadavg()[0]
        run_cases(cases, warmup=args.warmup, requests=args.requests)
        load = (
            f"Machine load average (1 min) {load_before:.1f} before timing, "
            f"{os.getloadavg()[0]:.1f} after."
        )
        plans = explain(cases)

    note = dashboard_note(cases)
    table, ok = report(
        cases, size=size, requests=args.requests, warmup=args.warmup, note=note, load=load
    )
    print()
    print(table)
    write_results("runs_api.md", table)
    write_results("runs_api_explain.md", plans)
    print(f"Events measured on run {context['run_id']}.")
    return 1 if args.strict and not ok else 0


def dashboard_note(cases: list[Case]) -> str:
    """Says so when the dashboard did not render a real runs list."""
    notes = []
    for case in (c for c in cases if c.endpoint.startswith("dashboard")):
        body = get(case).content
        if len(body) < 500:
            notes.append(
                f"Note: `{case.path}` answered only {len(body)} bytes ({body[:60]!r}): the "
                "dashboard looks like a stub, so its figures say nothing about a runs list yet."
            )
    return "\n".join(notes)


if __name__ == "__main__":
    sys.exit(main())
