"""Object storage against the local folder, side by side in one run (issue 14).

    .venv/bin/python -m benchmarks.object_storage      (or `make benchmark-s3`)

Starts moto's S3 server (`moto_server`, from `moto[server]`) on a loopback port, then:

- **replay**: the 2 h recording of benchmarks/recording_replay.py (generated once, cached
  under var/bench_replay/), its processed target file copied to a bucket under the same name;
  two daphne processes on the same database, one reading the local folder, one with
  S3_BUCKET set; headless Chromium loads the replay page of each in turn (alternated, so the
  machine's load falls on both alike) and takes the time to the first frame and the seek to
  the end, as recording_replay.py measures them;
- **ingest**: benchmarks/recording_ingest.py's `bctrl` load (8 clients posting 500-event
  gzip'd batches to `POST /v1/runs/{id}/recording/events` of one daphne process on
  PostgreSQL) with the batches written to the local folder, then to the bucket.

Prints a Markdown table and writes it to benchmarks/results/object_storage.md. moto keeps
its objects in memory and answers on loopback: the S3 numbers are the cost of the S3
protocol path (boto3, signing, HTTP), not of a network to AWS.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import write_results
from benchmarks.recording_ingest import (
    PYTHON,
    TARGET_EVENTS_PER_S,
    Daphne,
    cpu_name,
    free_port,
    load_averages,
    make_bodies,
    run_backend,
)

TARGET_ADDED_MS = 100.0
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/bctrl_bench_ingest_s3"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


class MotoServer:
    """moto's S3 server on a free loopback port, stopped by its own pid."""

    def __init__(self) -> None:
        binary = Path(PYTHON).with_name("moto_server")
        if not binary.exists():
            sys.exit("moto_server is not installed: pip install 'moto[server]'")
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def bucket(self, name: str) -> dict[str, str]:
        """A new bucket, and the environment of a bctrl process that uses it."""
        self.client.create_bucket(Bucket=name)
        return {
            "S3_BUCKET": name,
            "S3_COLD_BUCKET": name + "-cold",
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": "us-east-1",
            **CREDENTIALS,
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- replay -----------------------------------------------------------------------------------


def replay(moto: MotoServer, runs: int) -> dict[str, dict[str, list[float]]]:
    from benchmarks import recording_replay as bench

    env = bench.environment()
    bench.setup_django(env)
    info = bench.cached() or bench.generate()
    data = bench.stored(info)
    from recordings.models import RecordingTarget

    s3_env = {**env, **moto.bucket("bench-replay")}
    paths = RecordingTarget.objects.filter(recording_id=info["recording_id"]).values_list(
        "path", flat=True
    )
    for path in paths:
        moto.client.upload_file(str(bench.WORKDIR / "files" / path), "bench-replay", path)
    from django.db import connections

    connections.close_all()
    servers = {
        "local folder": Daphne(env, bench.WORKDIR / "daphne-local.log"),
        "S3 (moto)": Daphne(s3_env, bench.WORKDIR / "daphne-s3.log"),
    }
    results: dict[str, dict[str, list[float]]] = {
        name: {"first": [], "seek": []} for name in servers
    }
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=bench.CHROMIUM, args=bench.CHROMIUM_ARGS
            )
            states = {name: bench.sign_in(browser, server.base) for name, server in servers.items()}
            for name, server in servers.items():  # one untimed load each
                bench.measure_bctrl(
                    browser, states[name], server.base, data, info["run_id"], play_s=0
                )
            for index in range(runs):
                for name, server in servers.items():
                    sample = bench.measure_bctrl(
                        browser, states[name], server.base, data, info["run_id"], play_s=0
                    )
                    results[name]["first"].append(sample.first_frame_ms)
                    results[name]["seek"].append(sample.seek_end_ms or float("nan"))
                    print(
                        f"  replay #{index + 1} {name}: first frame "
                        f"{sample.first_frame_ms:,.0f} ms, seek to end "
                        f"{sample.seek_end_ms or float('nan'):,.0f} ms",
                        flush=True,
                    )
            browser.close()
    finally:
        for server in servers.values():
            server.stop()
    return results


# --- ingest -----------------------------------------------------------------------------------


def ingest(moto: MotoServer, args: argparse.Namespace) -> dict[str, Any]:
    ingest_args = argparse.Namespace(
        clients=args.clients,
        duration=args.duration,
        warmup=3,
        batch_events=500,
        impls=["bctrl"],
        keep=False,
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bctrl_site.settings")
    bodies = make_bodies(args.prepared, 500, seed=7)
    url = os.environ.get("BENCH_INGEST_DATABASE_URL") or DEFAULT_PG_URL
    phases = {}
    for name, extra in (("local folder", {}), ("S3 (moto)", moto.bucket("bench-ingest"))):
        print(f"Ingest, {name}…", flush=True)
        result = run_backend(f"PostgreSQL, {name}", url, ingest_args, bodies, extra_env=extra)
        phases[name] = result.phases["bctrl"]
    objects = moto.client.list_objects_v2(Bucket="bench-ingest", MaxKeys=1000).get("KeyCount", 0)
    return {"phases": phases, "objects": objects}


# --- report -----------------------------------------------------------------------------------


def report(
    replayed: dict[str, dict[str, list[float]]] | None,
    ingested: dict[str, Any] | None,
    load: str,
) -> tuple[str, bool]:
    ok = True
    lines = [
        "# Object storage vs the local folder (benchmarks/object_storage.py)",
        "",
        f"{cpu_name()}, {os.cpu_count()} cores. {load}",
        "",
    ]
    if replayed:
        local, s3 = replayed["local folder"], replayed["S3 (moto)"]
        lines += [
            "## Replay of the 2 h recording (headless Chromium, cold cache, alternated loads)",
            "",
            "| storage | loads | first frame p50 ms | p95 ms | seek to end p50 ms | p95 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, values in replayed.items():
            lines.append(
                f"| {name} | {len(values['first'])} | {statistics.median(values['first']):,.0f} "
                f"| {pct(values['first'], 95):,.0f} | {statistics.median(values['seek']):,.0f} "
                f"| {pct(values['seek'], 95):,.0f} |"
            )
        added_first = statistics.median(s3["first"]) - statistics.median(local["first"])
        added_seek = statistics.median(s3["seek"]) - statistics.median(local["seek"])
        holds = added_first <= TARGET_ADDED_MS and added_seek <= TARGET_ADDED_MS
        ok = ok and holds
        lines += [
            "",
            f"S3 adds {added_first:+,.0f} ms to the first frame and {added_seek:+,.0f} ms to the "
            f"seek at the median: target ≤ {TARGET_ADDED_MS:.0f} ms "
            f"**{'holds' if holds else 'does not hold'}**.",
            "",
        ]
    if ingested:
        phases = ingested["phases"]
        lines += [
            "## Ingest, `bctrl` load on PostgreSQL (8 clients, 500-event batches)",
            "",
            "| hot tier | events/s | batches | p50 ms | p95 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, phase in phases.items():
            lines.append(
                f"| {name} | {phase.events_per_s:,.0f} | {phase.batches:,} | "
                f"{phase.pct(50):.1f} | {phase.pct(95):.1f} | {len(phase.errors)} |"
            )
        s3_rate = phases["S3 (moto)"].events_per_s
        holds = s3_rate >= TARGET_EVENTS_PER_S
        ok = ok and holds
        lines += [
            "",
            f"Floor {TARGET_EVENTS_PER_S:,} events/s with S3 as the hot tier: "
            f"**{'holds' if holds else 'does not hold'}** ({s3_rate:,.0f} events/s).",
            "",
        ]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", default="replay,ingest", help="replay and/or ingest")
    parser.add_argument("--runs", type=int, default=7, help="replay page loads per storage")
    parser.add_argument("--clients", type=int, default=8, help="ingest client connections")
    parser.add_argument("--duration", type=float, default=20.0, help="timed ingest seconds")
    parser.add_argument("--prepared", type=int, default=1200, help="batches per ingest client")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.parts.split(",")}
    if (
        "replay" in parts
        and not shutil.which("chromium")
        and not os.path.exists("/usr/bin/chromium")
    ):
        sys.exit("Chromium is not installed; `make chromium` installs it.")

    load_before = load_averages()
    moto = MotoServer()
    try:
        replayed = replay(moto, args.runs) if "replay" in parts else None
        ingested = ingest(moto, args) if "ingest" in parts else None
    finally:
        moto.stop()
    load = f"Load averages (1, 5, 15 min): {load_before} before, {load_averages()} after."
    text, ok = report(replayed, ingested, load)
    print()
    print(text)
    write_results("object_storage.md", text)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
