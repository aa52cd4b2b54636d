"""Ingest throughput of rrweb batches into one web process, against one row per event.

    .venv/bin/python -m benchmarks.recording_ingest      (or `make benchmark-ingest`)

For each database (PostgreSQL: BENCH_INGEST_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/bctrl_bench_ingest, dropped and created afresh; and
SQLite, the embedded default, in a temporary folder) this starts ONE real daphne process
serving the app, creates a space, an API key and runs through the ORM, and drives gzip'd
rrweb batches (500 events each) from N client threads (the bctrl Python client, keep-alive)
for a fixed time against

- bctrl: `POST /v1/runs/{id}/recording/events` (one gzip file + one row per batch), and
- baselines that store one row per rrweb event in a table the script creates
  (`bench_rrweb_event`), behind the same authentication and parser, mounted only in a
  benchmark URLconf: `rrweb-bulk` inserts a batch with one multi-row INSERT, as
  django-rrweb does (`Event.objects.bulk_create`), and `rrweb-per-row` with one INSERT per
  event in one transaction (`Model.objects.create` per event, minus the ORM's overhead).

Prints a Markdown table and writes it to benchmarks/results/recording_ingest.md. See
benchmarks/README.md.
"""

import argparse
import gzip
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
from bctrl import APIConnectionError, APIStatusError, Bctrl

from benchmarks import write_results

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/bctrl_bench_ingest"
TARGET_EVENTS_PER_S = 50_000
TARGET_RATIO = 20.0
# bctrl-django: the same ingest view behind Django's URL resolver and middleware chain (as
# the baselines are), mounted in the benchmark URLconf: how much of bctrl's lead is the
# ASGI route of recordings/ingest_route.py rather than the storage.
IMPLS = ("bctrl", "bctrl-django", "rrweb-bulk", "rrweb-per-row", "rrweb-orm")
BASELINES = ("rrweb-bulk", "rrweb-per-row", "rrweb-orm")
BASELINE_TABLE = "bench_rrweb_event"


# --- realistic rrweb events (also used by benchmarks.recording_replay) -------------------

_WORD_TEXT = (
    "order cart invoice shipping account profile search result price stock update customer "
    "payment review delivery status pending approved refund discount total product category "
    "filter sort report export dashboard settings notification"
)
WORDS = _WORD_TEXT.split()
SITES = [
    "https://shop.example.com/catalog",
    "https://shop.example.com/cart",
    "https://shop.example.com/checkout",
    "https://app.example.org/orders",
    "https://app.example.org/reports",
    "https://portal.example.net/account",
]
TABLE_ROWS = 40
VIEW_W, VIEW_H = 1280, 800


def phrase(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


class PageState:
    """The recorded page: ids of its nodes, and what changes over time.

    Serialized as rrweb-snapshot nodes (Document 0, DocumentType 1, Element 2, Text 3):
    a header with a nav, a heading "Minute N", a table of TABLE_ROWS rows whose prices
    change, a list of notifications that grows and shrinks, a form, a footer: ~450 nodes.
    """

    def __init__(self, rng: random.Random, href: str, minute: int) -> None:
        self.rng = rng
        self.href = href
        self.minute = minute
        self.next_id = 1
        self.heading_text_id = 0
        self.cell_text_ids: list[int] = []
        self.cells: dict[int, str] = {}
        self.list_id = 0
        self.items: list[tuple[int, int, str]] = []  # (li id, text id, text)
        self.input_id = 0
        self.button_ids: list[int] = []
        self.body_id = 0
        self.prices = [f"{rng.uniform(5, 900):.2f}" for _ in range(TABLE_ROWS)]

    def new_id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def text(self, content: str) -> dict[str, Any]:
        return {"type": 3, "textContent": content, "id": self.new_id()}

    def el(self, tag: str, attributes: dict[str, Any], *children: dict[str, Any]) -> Any:
        node_id = self.new_id()
        return {
            "type": 2,
            "tagName": tag,
            "attributes": attributes,
            "childNodes": list(children),
            "id": node_id,
        }

    def snapshot(self) -> dict[str, Any]:
        """A FullSnapshot's node tree of the current state; ids are renumbered from 1, as a
        new rrweb record() does after a navigation (a checkout keeps them: same order)."""
        rng = random.Random(self.href)  # the static parts of a page stay the same
        self.next_id = 1
        doctype = {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": self.new_id()}
        style = self.el(
            "style",
            {},
            self.text(
                "body{font:15px system-ui,sans-serif;margin:0;color:#0f172a;background:#f8fafc}"
                "header{background:#1e293b;color:#fff;padding:12px 24px}nav a{color:#cbd5e1;"
                "margin-right:14px}main{padding:20px 24px}h1{font-size:28px;margin:0 0 12px}"
                "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid "
                "#e2e8f0;padding:4px 8px;text-align:left}.price{font-variant-numeric:"
                "tabular-nums}.notes li{color:#475569}footer{padding:16px;color:#64748b}"
            ),
        )
        head = self.el(
            "head",
            {},
            self.el("meta", {"charset": "utf-8"}),
            self.el("title", {}, self.text(f"{self.href.rsplit('/', 1)[-1].title()} · Example")),
            style,
        )
        links = [
            self.el("a", {"href": f"/{word}", "class": "nav-link"}, self.text(word.title()))
            for word in rng.sample(WORDS, 10)
        ]
        header = self.el(
            "header", {"class": "top"}, self.el("strong", {}, self.text("Example")), *links
        )
        heading_text = self.text(f"Minute {self.minute}")
        self.heading_text_id = heading_text["id"]
        heading = self.el("h1", {"id": "minute"}, heading_text)
        head_row = self.el(
            "tr", {}, *[self.el("th", {}, self.text(name)) for name in ("SKU", "Item", "Price")]
        )
        rows = []
        self.cell_text_ids = []
        for index in range(TABLE_ROWS):
            price = self.text(self.prices[index])
            self.cell_text_ids.append(price["id"])
            rows.append(
                self.el(
                    "tr",
                    {"data-row": str(index)},
                    self.el("td", {"class": "sku"}, self.text(f"SKU-{rng.randint(10000, 99999)}")),
                    self.el("td", {}, self.text(phrase(rng, 3).capitalize())),
                    self.el("td", {"class": "price"}, price),
                )
            )
        table = self.el("table", {"class": "grid"}, self.el("tbody", {}, head_row, *rows))
        items = []
        for _, _, content in self.items:
            text = self.text(content)
            items.append(self.el("li", {"class": "note"}, text))
        notes = self.el("ul", {"class": "notes"}, *items)
        self.list_id = notes["id"]
        self.items = [
            (item["id"], item["childNodes"][0]["id"], item["childNodes"][0]["textContent"])
            for item in items
        ]
        field_input = self.el("input", {"type": "text", "name": "q", "value": ""})
        self.input_id = field_input["id"]
        buttons = [self.el("button", {"type": "button"}, self.text(w.title())) for w in WORDS[:3]]
        self.button_ids = [button["id"] for button in buttons]
        form = self.el("form", {"class": "search"}, field_input, *buttons)
        footer = self.el("footer", {}, self.text("© Example Inc. · Terms · Privacy · Help"))
        main = self.el("main", {}, heading, form, table, notes)
        body = self.el("body", {}, header, main, footer)
        self.body_id = body["id"]
        html = self.el("html", {"lang": "en"}, head, body)
        return {"type": 0, "childNodes": [doctype, html], "id": self.new_id()}


def rrweb_stream(
    *,
    seed: int,
    start_ms: int,
    duration_ms: int,
    events_per_s: float = 139.0,
    checkout_ms: int = 10_000,
    navigations: int = 6,
) -> Iterator[dict[str, Any]]:
    """A recorder's rrweb event stream of one page target, in timestamp order.

    Meta + FullSnapshot at the start, on every checkout (rrweb `checkoutEveryNms`) and on a
    few navigations; in between mostly small incremental events of 60-300 bytes of JSON:
    text mutations (price ticks, 62 %), mouse moves (20 %), scrolls (8 %), node
    adds/removes (5 %), attribute changes (3.5 %), inputs (1.5 %: keystrokes) and a click
    now and then (0.05 %: one every ~14 s at 139 events/s); a text mutation
    sets the heading to "Minute N" at every minute.
    """
    rng = random.Random(seed)
    nav_every = duration_ms // (navigations + 1) if navigations else duration_ms + 1
    state = PageState(rng, SITES[0], 0)
    gap = 1000.0 / events_per_s
    t = float(start_ms)
    end = start_ms + duration_ms
    next_checkout = start_ms
    next_nav = start_ms + nav_every
    site = 0
    minute = 0
    user = User()
    while True:
        now = int(t)
        if now > end:
            return
        if now >= next_nav:
            site += 1
            state = PageState(rng, SITES[site % len(SITES)], minute)
            next_nav += nav_every
            next_checkout = now
        if now >= next_checkout:
            yield {
                "type": 4,
                "timestamp": now,
                "data": {"href": state.href, "width": VIEW_W, "height": VIEW_H},
            }
            yield {
                "type": 2,
                "timestamp": now,
                "data": {
                    "node": state.snapshot(),
                    "initialOffset": {"left": 0, "top": user.scroll},
                },
            }
            next_checkout = now + checkout_ms
        elif (now - start_ms) // 60_000 > minute:
            minute = (now - start_ms) // 60_000
            state.minute = minute
            yield {
                "type": 3,
                "timestamp": now,
                "data": {
                    "source": 0,
                    "texts": [{"id": state.heading_text_id, "value": f"Minute {minute}"}],
                    "attributes": [],
                    "removes": [],
                    "adds": [],
                },
            }
        else:
            yield incremental(rng, state, now, user)
        t += rng.expovariate(1.0 / gap)


@dataclass
class User:
    """What the simulated user did so far: pointer position, scroll offset, typed text."""

    x: float = VIEW_W / 2
    y: float = VIEW_H / 2
    scroll: int = 0
    typed: str = ""


def incremental(rng: random.Random, state: PageState, now: int, user: User) -> dict[str, Any]:
    """One incremental event of the simulated user and page."""
    roll = rng.random()
    data: dict[str, Any]
    if roll < 0.62:
        changes = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            row = rng.randrange(TABLE_ROWS)
            state.prices[row] = (
                f"{max(1.0, float(state.prices[row]) * rng.uniform(0.97, 1.03)):.2f}"
            )
            changes.append({"id": state.cell_text_ids[row], "value": state.prices[row]})
        data = {"source": 0, "texts": changes, "attributes": [], "removes": [], "adds": []}
    elif roll < 0.82:
        positions = []
        for step in range(rng.randint(1, 5)):
            user.x = min(VIEW_W, max(0.0, user.x + rng.gauss(0, 40)))
            user.y = min(VIEW_H, max(0.0, user.y + rng.gauss(0, 30)))
            positions.append(
                {
                    "x": round(user.x),
                    "y": round(user.y),
                    "id": rng.choice(state.cell_text_ids) - 1,
                    "timeOffset": -50 * step,
                }
            )
        data = {"source": 1, "positions": positions}
    elif roll < 0.90:
        user.scroll = max(0, user.scroll + rng.choice((-1, 1)) * rng.randint(20, 240))
        data = {"source": 3, "id": 1, "x": 0, "y": user.scroll}
    elif roll < 0.915:
        user.typed = (user.typed + rng.choice("abcdefghijklmnopqrstuvwxyz "))[-40:]
        data = {"source": 5, "text": user.typed, "isChecked": False, "id": state.input_id}
    elif roll < 0.965:
        if state.items and (len(state.items) > 12 or rng.random() < 0.4):
            li, _, _ = state.items.pop(0)
            data = {
                "source": 0,
                "texts": [],
                "attributes": [],
                "removes": [{"parentId": state.list_id, "id": li}],
                "adds": [],
            }
        else:
            content = f"{now % 100000:05d} {phrase(rng, rng.randint(3, 9))}"
            li, text = state.new_id(), state.new_id()
            state.items.append((li, text, content))
            data = {
                "source": 0,
                "texts": [],
                "attributes": [],
                "removes": [],
                "adds": [
                    {
                        "parentId": state.list_id,
                        "nextId": None,
                        "node": {
                            "type": 2,
                            "tagName": "li",
                            "attributes": {"class": "note", "data-ts": str(now)},
                            "childNodes": [],
                            "id": li,
                        },
                    },
                    {
                        "parentId": li,
                        "nextId": None,
                        "node": {"type": 3, "textContent": content, "id": text},
                    },
                ],
            }
    elif roll < 0.9995:
        row = rng.randrange(TABLE_ROWS)
        data = {
            "source": 0,
            "texts": [],
            "attributes": [
                {
                    "id": state.cell_text_ids[row] - 1,
                    "attributes": {"class": rng.choice(("price up", "price down", "price"))},
                }
            ],
            "removes": [],
            "adds": [],
        }
    else:
        data = {
            "source": 2,
            "type": 2,
            "id": rng.choice(state.button_ids),
            "x": round(user.x),
            "y": round(user.y),
        }
    return {"type": 3, "timestamp": now, "data": data}


def batches_of(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- child processes: settings, URLconf, setup ---------------------------------------------


def write_child_modules(folder: Path, *, urlconf_extra: str, settings_extra: str = "") -> str:
    """A settings module and a URLconf in `folder` (put on PYTHONPATH of the children):
    the app's settings with ROOT_URLCONF = the app's URLs plus the benchmark's."""
    (folder / "bench_child_settings.py").write_text(
        "from bctrl_site.settings import *  # noqa: F403\n"
        'ROOT_URLCONF = "bench_child_urls"\n' + settings_extra
    )
    (folder / "bench_child_urls.py").write_text(
        "from bctrl_site.urls import *  # noqa: F403\n"
        "from bctrl_site.urls import urlpatterns as _app\n"
        f"{urlconf_extra}\n"
    )
    return "bench_child_settings"


def child_env(workdir: Path, database_url: str, settings_module: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT")
    }
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONPATH=os.pathsep.join(
            [str(workdir), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        BCTRL_VAR_DIR=str(workdir / "var"),
        MEDIA_ROOT=str(workdir / "files"),
        DEBUG="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    # The benchmarks measure how much the server takes, not its rate limits.
    for scope in ("INGEST", "RUNTIME_START", "LEASE"):
        env[f"BCTRL_RATE_{scope}_PER_KEY"] = env[f"BCTRL_RATE_{scope}_PER_IP"] = "off"
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Daphne:
    """One daphne process serving the app; stopped by its own pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "bctrl_site.asgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"daphne did not start in 60 s; see {log}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def baseline_urlpatterns() -> list[Any]:
    """The one-row-per-event baselines, for the benchmark URLconf only (never the app's)."""
    from django.db import connection, models, transaction
    from django.urls import path
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from recordings import services
    from recordings.api import RecordingBatchParser
    from runs import selectors
    from runs.api.auth import space_of
    from runs.errors import Invalid

    postgres = connection.vendor == "postgresql"
    value = "(%s, %s, %s, %s, %s, %s::jsonb)" if postgres else "(%s, %s, %s, %s, %s, %s)"
    insert = f"INSERT INTO {BASELINE_TABLE} (recording, target, seq, ts, type, data) VALUES "
    # Django's bulk_create sends one statement per batch on PostgreSQL and splits at 999
    # query parameters on SQLite (6 columns: 166 rows).
    rows_per_statement = 10_000 if postgres else 999 // 6

    def rows(run_id: str, target: str, seq: int, events: list[dict[str, Any]]) -> list[Any]:
        return [
            (
                run_id,
                target,
                seq,
                int(event["timestamp"]),
                event["type"],
                orjson.dumps(event["data"]).decode(),
            )
            for event in events
        ]

    class BaselineView(APIView):
        parser_classes = [RecordingBatchParser]
        bulk = True

        def post(self, request: Request, run_id: str) -> Response:
            run = selectors.run_of(space_of(request), run_id)
            body = request.data if isinstance(request.data, dict) else {}
            target, seq = body.get("target"), body.get("seq")
            if not isinstance(target, str) or type(seq) is not int:
                raise Invalid("target and seq are required.")
            events = services.validate_rrweb_events(body.get("events"))
            values = rows(run.id, target, seq, events)
            with transaction.atomic(), connection.cursor() as cursor:
                if self.bulk:
                    for start in range(0, len(values), rows_per_statement):
                        part = values[start : start + rows_per_statement]
                        cursor.execute(
                            insert + ", ".join([value] * len(part)),
                            [item for row in part for item in row],
                        )
                else:
                    for row in values:
                        cursor.execute(insert + value, row)
            return Response({"target": target, "seq": seq, "eventCount": len(events)}, 201)

    class PerRowView(BaselineView):
        bulk = False

    class RrwebEvent(models.Model):
        """The baseline table as an (unmanaged) model, for `objects.create` per event."""

        recording = models.TextField()
        target = models.TextField()
        seq = models.IntegerField()
        ts = models.BigIntegerField()
        type = models.IntegerField()
        data = models.JSONField()
        objects: Any = models.Manager()

        class Meta:
            app_label = "runs"
            db_table = BASELINE_TABLE
            managed = False

        def __str__(self) -> str:
            return f"{self.recording}/{self.target}#{self.seq}"

    class OrmView(APIView):
        parser_classes = [RecordingBatchParser]

        def post(self, request: Request, run_id: str) -> Response:
            run = selectors.run_of(space_of(request), run_id)
            body = request.data if isinstance(request.data, dict) else {}
            target, seq = body.get("target"), body.get("seq")
            if not isinstance(target, str) or type(seq) is not int:
                raise Invalid("target and seq are required.")
            events = services.validate_rrweb_events(body.get("events"))
            with transaction.atomic():
                for event in events:
                    RrwebEvent.objects.create(
                        recording=run.id,
                        target=target,
                        seq=seq,
                        ts=int(event["timestamp"]),
                        type=event["type"],
                        data=event["data"],
                    )
            return Response({"target": target, "seq": seq, "eventCount": len(events)}, 201)

    from recordings.api import RecordingEventsView

    return [
        path("bench/bctrl-django/<str:run_id>/events", RecordingEventsView.as_view()),
        path("bench/rrweb-bulk/<str:run_id>/events", BaselineView.as_view()),
        path("bench/rrweb-per-row/<str:run_id>/events", PerRowView.as_view()),
        path("bench/rrweb-orm/<str:run_id>/events", OrmView.as_view()),
    ]


def child_setup(clients: int) -> None:
    """In a child with the benchmark's environment: migrate, create the baseline table, a
    space, an API key and `clients` runs per implementation; prints them as JSON."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from runs.models import ApiKey, Run, Space

    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE TABLE {BASELINE_TABLE} (id bigserial PRIMARY KEY, recording text, "
                "target text, seq int, ts bigint, type int, data jsonb)"
            )
        else:
            cursor.execute(
                f"CREATE TABLE {BASELINE_TABLE} (id integer PRIMARY KEY AUTOINCREMENT, "
                "recording text, target text, seq int, ts bigint, type int, data text)"
            )
        # The foreign key to the session/recording that django-rrweb's model has.
        cursor.execute(f"CREATE INDEX {BASELINE_TABLE}_rec ON {BASELINE_TABLE} (recording)")
    space = Space.objects.create(name="Ingest bench", slug=f"ingest-{int(time.time())}")
    _, raw_key = ApiKey.objects.issue(space=space, name="ingest bench")
    started = datetime.fromtimestamp(STREAM_START_MS / 1000 - 60, tz=UTC)
    runs = {
        impl: [
            Run.objects.create(space=space, name=f"{impl} {i}", started_at=started).id
            for i in range(clients)
        ]
        for impl in IMPLS
    }
    print(orjson.dumps({"key": raw_key, "runs": runs}).decode())


def child_counts() -> None:
    """In a child: what was stored, as JSON (rows and events per implementation, sizes)."""
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Sum

    from recordings.models import RecordingBatch

    out: dict[str, Any] = {
        "bctrl_rows": RecordingBatch.objects.count(),
        "bctrl_events": RecordingBatch.objects.aggregate(n=Sum("event_count"))["n"] or 0,
        "bctrl_stored_bytes": RecordingBatch.objects.aggregate(n=Sum("stored_bytes"))["n"] or 0,
        "bctrl_raw_bytes": RecordingBatch.objects.aggregate(n=Sum("raw_bytes"))["n"] or 0,
    }
    table = RecordingBatch._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {BASELINE_TABLE}")
        out["baseline_rows"] = cursor.fetchone()[0]
        if connection.vendor == "postgresql":
            cursor.execute("CHECKPOINT")
            for name, key in ((table, "bctrl_table_bytes"), (BASELINE_TABLE, "baseline_bytes")):
                cursor.execute("SELECT pg_total_relation_size(%s)", [name])
                out[key] = cursor.fetchone()[0]
    print(orjson.dumps(out).decode())


# --- the load -------------------------------------------------------------------------------


@dataclass
class Phase:
    impl: str
    clients: int
    batch_events: int
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    body_bytes: int = 0
    exhausted: bool = False
    load_start: float = 0.0
    load_end: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed if self.elapsed else 0.0

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.elapsed if self.elapsed else 0.0

    def pct(self, q: int) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


# The recorded stream's first timestamp; the runs started a minute before it (a recording
# takes timestamps from its run's start on).
STREAM_START_MS = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp() * 1000)


def make_bodies(count: int, batch_events: int, seed: int) -> list[tuple[bytes, int]]:
    """`count` gzip'd request bodies {target, seq, events} of consecutive batches of one
    recorder's stream (seq 0, 1, …), with their event counts."""
    start = STREAM_START_MS
    duration = int(count * batch_events / 139.0 * 1000) + 1000
    stream = rrweb_stream(seed=seed, start_ms=start, duration_ms=duration)
    bodies = []
    for seq, batch in enumerate(batches_of(stream, batch_events)):
        if seq == count:
            break
        raw = orjson.dumps({"target": "page-1", "seq": seq, "events": batch})
        bodies.append((gzip.compress(raw, compresslevel=6), len(batch)))
    return bodies


def drive(
    base: str,
    key: str,
    impl: str,
    run_ids: list[str],
    bodies: list[tuple[bytes, int]],
    *,
    warmup: int,
    duration: float,
    batch_events: int,
) -> Phase:
    """Each client thread posts its own run's batches in seq order on one keep-alive
    connection: `warmup` batches, a barrier, then as many as fit in `duration` seconds."""
    phase = Phase(impl, len(run_ids), batch_events, load_start=load_average())
    barrier = threading.Barrier(len(run_ids) + 1)
    lock = threading.Lock()
    stop_at = [0.0]

    def path_of(run_id: str) -> str:
        if impl == "bctrl":
            return f"/v1/runs/{run_id}/recording/events"
        return f"/bench/{impl}/{run_id}/events"

    def client(run_id: str) -> None:
        # The Python client, one keep-alive connection per thread, no retries: a refused or
        # failed batch is counted as an error, not sent again.
        api = Bctrl(api_key=key, base_url=base, timeout=60.0, max_retries=0)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        path = path_of(run_id)
        seq = 0

        def post() -> tuple[bool, float, int, int]:
            body, events = bodies[seq]
            t0 = time.perf_counter()
            try:
                api.post(path, content=body, headers=headers)
            except APIStatusError as exc:
                with lock:
                    phase.errors.append(f"{exc.status_code}: {exc.message[:200]}")
                return False, time.perf_counter() - t0, 0, 0
            except APIConnectionError as exc:
                with lock:
                    phase.errors.append(f"{type(exc).__name__}: {exc}")
                return False, 0.0, 0, 0
            return True, time.perf_counter() - t0, events, len(body)

        try:
            for _ in range(warmup):
                post()
                seq += 1
        finally:
            barrier.wait()
        while time.perf_counter() < stop_at[0]:
            if seq >= len(bodies):
                phase.exhausted = True
                break
            ok, took, events, size = post()
            seq += 1
            if ok:
                with lock:
                    phase.latencies.append(took)
                    phase.events += events
                    phase.batches += 1
                    phase.body_bytes += size
        api.close()

    threads = [threading.Thread(target=client, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    stop_at[0] = float("inf")
    barrier.wait()
    started = time.perf_counter()
    stop_at[0] = started + duration
    progress_stop = threading.Event()

    def progress() -> None:
        while not progress_stop.wait(5):
            elapsed = time.perf_counter() - started
            print(
                f"    {impl}: {elapsed:5.1f} s  {phase.events:>9,} events  "
                f"{phase.events / elapsed:>8,.0f} events/s",
                flush=True,
            )

    reporter = threading.Thread(target=progress, daemon=True)
    reporter.start()
    for thread in threads:
        thread.join()
    phase.elapsed = time.perf_counter() - started
    phase.load_end = load_average()
    progress_stop.set()
    return phase


# --- one database ---------------------------------------------------------------------------


@dataclass
class BackendResult:
    name: str
    phases: dict[str, Phase]
    counts: dict[str, Any]
    sizes: dict[str, int]
    durability: str


def ensure_fresh_pg(url: str) -> None:
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"Refusing to use database {name!r}: its name must contain 'bench'.")
    try:
        with psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        print(
            f"PostgreSQL is not reachable ({str(exc).strip()}); start it with\n"
            "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
            "or set BENCH_INGEST_DATABASE_URL, or pass --backends sqlite.",
            file=sys.stderr,
        )
        sys.exit(2)


def pg_settings(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    return (
        f"PostgreSQL {version[0] if version else '?'}, synchronous_commit="
        f"{sync[0] if sync else '?'}, fsync={fsync[0] if fsync else '?'}"
    )


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) under a folder."""
    total = files = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_size
            files += 1
    return total, files


def sqlite_sizes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        indexes = conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type='index'"
        ).fetchall()
    by_name = {name: int(size) for name, size in rows}
    table_of = {name: table for name, table in indexes}

    def total(table: str) -> int:
        return by_name.get(table, 0) + sum(
            size for name, size in by_name.items() if table_of.get(name) == table
        )

    return {
        "bctrl_table_bytes": total("recordings_recordingbatch"),
        "baseline_bytes": total(BASELINE_TABLE),
    }


def run_backend(
    name: str,
    database_url: str,
    args: argparse.Namespace,
    bodies: list[Any],
    extra_env: dict[str, str] | None = None,
) -> BackendResult:
    """One database's run; `extra_env` goes to the server and its children (such as the
    S3_* settings of benchmarks/object_storage.py)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bctrl-bench-ingest-{name}-"))
    try:
        settings_module = write_child_modules(
            workdir,
            urlconf_extra=(
                "from benchmarks.recording_ingest import baseline_urlpatterns\n"
                "urlpatterns = [*baseline_urlpatterns(), *_app]"
            ),
        )
        env = {**child_env(workdir, database_url, settings_module), **(extra_env or {})}
        if database_url:
            ensure_fresh_pg(database_url)
            durability = pg_settings(database_url)
        else:
            durability = "SQLite WAL, synchronous=NORMAL (the app's settings)"
        print(f"[{name}] migrating a fresh database and creating runs…", flush=True)
        setup = subprocess.run(
            [
                PYTHON,
                "-m",
                "benchmarks.recording_ingest",
                "--child",
                "setup",
                "--clients",
                str(args.clients),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"setup failed:\n{setup.stderr[-3000:]}")
        info = orjson.loads(setup.stdout.strip().splitlines()[-1])
        server = Daphne(env, workdir / "daphne.log")
        phases: dict[str, Phase] = {}
        try:
            print(
                f"[{name}] daphne on {server.base}; {args.clients} clients, "
                f"{args.duration:.0f} s per implementation",
                flush=True,
            )
            for impl in args.impls:
                print(f"  {impl}…", flush=True)
                phase = drive(
                    server.base,
                    info["key"],
                    impl,
                    info["runs"][impl],
                    bodies,
                    warmup=args.warmup,
                    duration=args.duration,
                    batch_events=args.batch_events,
                )
                phases[impl] = phase
                print(
                    f"  {impl}: {phase.events:,} events in {phase.batches:,} batches, "
                    f"{phase.events_per_s:,.0f} events/s, p50 {phase.pct(50):.1f} ms, "
                    f"p95 {phase.pct(95):.1f} ms, {len(phase.errors)} errors"
                    + (f" (first: {phase.errors[0]})" if phase.errors else ""),
                    flush=True,
                )
                if phase.exhausted:
                    print("  (a client ran out of prepared batches: raise --prepared)", flush=True)
        finally:
            server.stop()
        counted = subprocess.run(
            [PYTHON, "-m", "benchmarks.recording_ingest", "--child", "counts"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if counted.returncode != 0:
            raise RuntimeError(f"counting failed:\n{counted.stderr[-3000:]}")
        counts = orjson.loads(counted.stdout.strip().splitlines()[-1])
        files, file_count = folder_bytes(workdir / "files")
        sizes = {"files": files, "file_count": file_count}
        if database_url:
            sizes["bctrl_table"] = counts.get("bctrl_table_bytes", 0)
            sizes["baseline"] = counts.get("baseline_bytes", 0)
        else:
            sqlite = sqlite_sizes(workdir / "var" / "db.sqlite3")
            sizes["bctrl_table"] = sqlite["bctrl_table_bytes"]
            sizes["baseline"] = sqlite["baseline_bytes"]
        return BackendResult(name, phases, counts, sizes, durability)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"[{name}] kept {workdir}")


# --- reporting ------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    return os.getloadavg()[0]


def load_averages() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def mib(value: float) -> str:
    return f"{value / 1024 / 1024:,.1f} MiB"


def report(
    results: list[BackendResult], args: argparse.Namespace, bodies: list[Any], load: str
) -> tuple[str, bool]:
    import django

    raw_sample = sum(len(gzip.decompress(body)) for body, _ in bodies[:50])
    gz_sample = sum(len(body) for body, _ in bodies[:50])
    events_sample = sum(count for _, count in bodies[:50])
    lines = [
        "# Recording ingest benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores "
        f"({cpu_name()}), Python {platform.python_version()}, Django {django.get_version()}, "
        "one daphne process (bctrl: the app's ASGI route for the ingest, outside the "
        "middleware chain, storing batches in the process's ingest threads; the "
        "baselines: sync DRF views behind the full middleware chain, which Django runs in a "
        f"thread of their own per request), the load generator on the same machine. {load}",
        f"Load: {args.clients} client threads (the bctrl Python client, keep-alive), "
        "each posting its own "
        f"run's batches of {args.batch_events} rrweb events in seq order, gzip'd "
        f"(level 6): {raw_sample / events_sample:.0f} bytes of JSON per event on average, "
        f"{gz_sample / len(bodies[:50]) / 1024:.1f} KiB per request body "
        f"({raw_sample / gz_sample:.1f}x); {args.warmup} warm-up batches per client, then "
        f"{args.duration:.0f} s timed per implementation. events/s = events acknowledged "
        "(201) per second of wall time.",
        "",
        "| database | impl | events/s | batches/s | p50 ms | p95 ms | errors | load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    ok = True
    for result in results:
        for impl, phase in result.phases.items():
            lines.append(
                f"| {result.name} | {impl} | {phase.events_per_s:,.0f} | "
                f"{phase.batches_per_s:,.1f} | {phase.pct(50):.1f} | {phase.pct(95):.1f} | "
                f"{len(phase.errors)} | {phase.load_start:.1f} → {phase.load_end:.1f} |"
            )
    lines += [
        "",
        "bctrl = `POST /v1/runs/{id}/recording/events` (`batch_ingest`: one gzip file and "
        "one `RecordingBatch` row per batch), taken by the app's ASGI route; bctrl-django = "
        "the same view and storage behind Django's URL resolver and middleware chain, as "
        "the baselines are; rrweb-bulk = one row per event with one "
        "multi-row INSERT per batch, as django-rrweb's `bulk_create`; rrweb-per-row = one "
        "INSERT per event in one transaction (`cursor.execute`); rrweb-orm = "
        "`Model.objects.create` per event in one transaction (an unmanaged model on the "
        "same table). All of them behind the same API-key "
        "authentication, gzip parser and event validation.",
        "",
        "## Storage",
        "",
        "| database | impl | events stored | rows | on disk | bytes/event |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        counts, sizes = result.counts, result.sizes
        ours_bytes = sizes["files"] + sizes["bctrl_table"]
        ours_events = max(int(counts["bctrl_events"]), 1)
        base_rows = max(int(counts["baseline_rows"]), 1)
        lines.append(
            f"| {result.name} | bctrl (both routes) | {counts['bctrl_events']:,} | "
            f"{counts['bctrl_rows']:,} | "
            f"{mib(ours_bytes)} ({sizes['file_count']:,} files {mib(sizes['files'])} + "
            f"table {mib(sizes['bctrl_table'])}) | {ours_bytes / ours_events:.1f} |"
        )
        lines.append(
            f"| {result.name} | rrweb baselines (one table) | {counts['baseline_rows']:,} | "
            f"{counts['baseline_rows']:,} | {mib(sizes['baseline'])} (table and indexes) | "
            f"{sizes['baseline'] / base_rows:.1f} |"
        )
    lines += [
        "",
        "On disk: batch files (FileSystemStorage) plus the `recordings_recordingbatch` table "
        "with its indexes; the baseline table `bench_rrweb_event` with its primary key and "
        "an index on `recording` (PostgreSQL: `pg_total_relation_size` after a CHECKPOINT, "
        "TOAST included; SQLite: `dbstat` pages). Received JSON: "
        f"{raw_sample / events_sample:.0f} bytes/event.",
        "",
        "## Targets (bctrl)",
        "",
    ]
    for result in results:
        ours = result.phases["bctrl"]
        fast = ours.events_per_s >= TARGET_EVENTS_PER_S
        ok &= fast
        lines.append(
            f"- {result.name}: ≥ {TARGET_EVENTS_PER_S:,} events/s: "
            + ("**holds**" if fast else "**does not hold**")
            + f" ({ours.events_per_s:,.0f})"
        )
        via_django = result.phases.get("bctrl-django")
        if via_django is not None and via_django.events_per_s:
            lines.append(
                f"- {result.name}: the ASGI route's share: bctrl / bctrl-django = "
                f"{ours.events_per_s / via_django.events_per_s:.1f}x (not a target)"
            )
        for base in BASELINES:
            if base not in result.phases:
                continue
            other = result.phases[base]
            ratio = ours.events_per_s / other.events_per_s if other.events_per_s else float("inf")
            holds = ratio >= TARGET_RATIO
            ok &= holds
            lines.append(
                f"- {result.name}: ≥ {TARGET_RATIO:.0f}x {base}: "
                + ("**holds**" if holds else "**does not hold**")
                + f" ({ratio:.1f}x)"
            )
    lines += [
        "",
        "Durability of an acknowledged batch: "
        + "; ".join(f"{r.name}: {r.durability}" for r in results)
        + ".",
    ]
    return "\n".join(lines) + "\n", ok


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backends", default="postgresql,sqlite", help="postgresql,sqlite")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    parser.add_argument("--duration", type=float, default=20.0, help="timed seconds per impl")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up batches per client")
    parser.add_argument("--batch-events", type=int, default=500, help="events per batch")
    parser.add_argument(
        "--prepared", type=int, default=1200, help="batches prepared per client (seq 0…)"
    )
    parser.add_argument(
        "--impls", default=",".join(IMPLS), help="implementations to drive, comma-separated"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--child", choices=["setup", "counts"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "setup":
        child_setup(args.clients)
        return 0
    if args.child == "counts":
        child_counts()
        return 0

    args.impls = [impl.strip() for impl in args.impls.split(",") if impl.strip()]
    if "bctrl" not in args.impls or set(args.impls) - set(IMPLS):
        sys.exit(f"--impls: bctrl and any of {', '.join(IMPLS[1:])}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bctrl_site.settings")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    print(f"Preparing {args.prepared:,} gzip'd batches of {args.batch_events} events…", flush=True)
    started = time.perf_counter()
    bodies = make_bodies(args.prepared, args.batch_events, seed=7)
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    load_before = load_averages()
    results = []
    for name in backends:
        if name in ("postgresql", "postgres", "pg"):
            url = os.environ.get("BENCH_INGEST_DATABASE_URL") or DEFAULT_PG_URL
            results.append(run_backend("PostgreSQL", url, args, bodies))
        elif name == "sqlite":
            results.append(run_backend("SQLite", "", args, bodies))
        else:
            sys.exit(f"Unknown backend {name!r}: use postgresql and/or sqlite.")
    load = f"Load averages (1, 5, 15 min): {load_before} before, {load_averages()} after."
    text, ok = report(results, args, bodies, load)
    print()
    print(text)
    write_results("recording_ingest.md", text)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
