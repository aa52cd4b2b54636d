"""What one runtime host holds: memory and CPU per idle and per busy recorded browser, and
how many recorded runtimes at once this machine sustains.

    .venv/bin/python -m benchmarks.capacity      (or `make benchmark-capacity`)

Starts a real daphne and a real runtime host (`manage.py runtime_host`, with a cap above
the largest stage and its default warm pool) on the embedded defaults, as
benchmarks.runtimes does. For K = 1, 2, 4, 6, 8…: starts K runtimes at once through the API
and connects Playwright to each (`connect_over_cdp(connectUrl)`), each opens the demo
shop and idles (memory and CPU of the browsers sampled), then each works through the shop
as a script does for a fixed time (home, a product, the sign-in form typed and submitted,
a 0.3 s pause; sampled again), and all stop. The host runs without a warm pool here (it
adds one idle browser). Memory is the proportional set size (PSS, /proc/<pid>/smaps_rollup)
of every Chromium process under the host, so shared pages count once; CPU is their share
of one core.

K is sustained when the starts' p50 stays within the start target (1.5 s), each browser
keeps at least half the page rate of K = 1, and every recording keeps up (its host has
written all it got within 10 s of the stop). The report suggests the cap: the
largest sustained K. Prints a Markdown table and writes benchmarks/results/capacity.md.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import write_results
from benchmarks.recording_ingest import cpu_name, load_averages
from benchmarks.runtimes import TARGET_START_P50_S, Servers, p50, recorded

PAUSE_S = 0.3
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (state first); [] when the
    process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _children() -> dict[int, list[int]]:
    """Every process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(root_pid: int) -> list[int]:
    children = _children()
    found, todo = [], list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def chromium_pids(root_pid: int) -> list[int]:
    """Chromium processes descending from `root_pid` (the runtime host)."""
    found = []
    for pid in _descendants(root_pid):
        with contextlib.suppress(OSError):
            if "chrom" in Path(f"/proc/{pid}/comm").read_text():
                found.append(pid)
    return found


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def cpu_ticks(pids: list[int], *, waited: bool = False) -> int:
    """utime + stime of `pids` (and, with `waited`, of their children that ended and were
    waited for)."""
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])
            if waited:
                total += int(fields[13]) + int(fields[14])
    return total


def tree_cpu_seconds(root_pid: int) -> tuple[float, float]:
    """CPU seconds of `root_pid` itself, and of its descendants (live ones, and those that
    ended and were waited for, counted in their parents' children's times)."""
    own = cpu_ticks([root_pid])
    descendants = cpu_ticks([root_pid], waited=True) - own
    descendants += cpu_ticks(_descendants(root_pid), waited=True)
    return own / CLK_TCK, descendants / CLK_TCK


async def sample(host_pid: int, seconds: float) -> tuple[int, float]:
    """Memory (PSS) of the browsers and their CPU (cores) over `seconds`."""
    pids = chromium_pids(host_pid)
    before = cpu_ticks(pids)
    await asyncio.sleep(seconds)
    pids = chromium_pids(host_pid)
    cores = (cpu_ticks(pids) - before) / CLK_TCK / seconds
    return pss_bytes(pids), cores


@dataclass
class Stage:
    count: int
    starts: list[float]
    idle_pss: int
    idle_cpu: float
    busy_pss: int
    busy_cpu: float
    rates: list[float]  # pages/s per browser
    rrweb_events: int
    settle_s: float


async def run_stage(base: str, key: str, host_pid: int, count: int, busy_s: float) -> Stage:
    import httpx
    from playwright.async_api import async_playwright

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as api:
        runtimes = [
            (await api.post("/v1/runtimes", json={"name": f"cap-{count}-{i}"})).json()["id"]
            for i in range(count)
        ]
        async with async_playwright() as playwright:

            async def start(runtime_id: str) -> tuple[Any, str, float]:
                t0 = time.perf_counter()
                answer = (await api.post(f"/v1/runtimes/{runtime_id}/start", json={})).json()
                browser = await playwright.chromium.connect_over_cdp(answer["connectUrl"])
                return browser, answer["runId"], time.perf_counter() - t0

            started = await asyncio.gather(*(start(runtime) for runtime in runtimes))
            pages = []
            for browser, _, _ in started:
                page = await browser.contexts[0].new_page()
                await page.goto(base + "/demo/")
                pages.append(page)
            await asyncio.sleep(2)
            idle_pss, idle_cpu = await sample(host_pid, 5)

            async def work(page: Any) -> float:
                done, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < busy_s:
                    await page.goto(base + "/demo/")
                    await page.click("a.product-link >> nth=0")
                    await page.goto(base + "/demo/signin")
                    await page.fill("#email", "ada@example.com")
                    await page.fill("#password", "correct horse")
                    await page.click("#signin-submit")
                    await page.wait_for_load_state()
                    done += 4
                    await asyncio.sleep(PAUSE_S)
                return done / (time.perf_counter() - t0)

            busy = asyncio.gather(*(work(page) for page in pages))
            await asyncio.sleep(busy_s / 3)
            busy_pss, busy_cpu = await sample(host_pid, busy_s / 3)
            rates = list(await busy)
            for browser, _, _ in started:
                await browser.close()
        t0 = time.perf_counter()
        await asyncio.gather(*(api.post(f"/v1/runtimes/{r}/stop") for r in runtimes))
        while True:
            states = [(await api.get(f"/v1/runtimes/{r}")).json()["status"] for r in runtimes]
            if all(state in ("stopped", "failed") for state in states):
                break
            await asyncio.sleep(0.1)
        settle_s = time.perf_counter() - t0
    events = sum(recorded(run_id)[0] for _, run_id, _ in started)
    return Stage(
        count=count,
        starts=[seconds for _, _, seconds in started],
        idle_pss=idle_pss,
        idle_cpu=idle_cpu,
        busy_pss=busy_pss,
        busy_cpu=busy_cpu,
        rates=rates,
        rrweb_events=events,
        settle_s=settle_s,
    )


def sustained(stage: Stage, first: Stage) -> bool:
    return (
        p50(stage.starts) <= TARGET_START_P50_S
        and min(stage.rates) >= 0.5 * statistics.median(first.rates)
        and stage.settle_s <= 10
    )


def report(stages: list[Stage], load_before: str, load_after: str) -> str:
    first = stages[0]
    held = [stage.count for stage in stages if sustained(stage, first)]
    cap = max(held) if held else 0
    mib = 1024 * 1024
    lines = [
        "# Capacity of one runtime host",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores "
        f"({cpu_name()}), embedded defaults, the client (Playwright) on the same machine. "
        f"Load average {load_before} before, {load_after} after.",
        "",
        "| runtimes at once | start p50 | idle PSS / browser | idle CPU | busy PSS / browser "
        "| busy CPU (cores) | pages/s per browser (min) | rrweb events stored "
        "| stop → all written | sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for stage in stages:
        lines.append(
            f"| {stage.count} | {p50(stage.starts) * 1000:.0f} ms "
            f"| {stage.idle_pss / stage.count / mib:.0f} MiB | {stage.idle_cpu:.2f} "
            f"| {stage.busy_pss / stage.count / mib:.0f} MiB | {stage.busy_cpu:.2f} "
            f"| {min(stage.rates):.2f} | {stage.rrweb_events:,} | {stage.settle_s:.1f} s "
            f"| {'yes' if sustained(stage, first) else 'no'} |"
        )
    lines += [
        "",
        f"Sustained: start p50 ≤ {TARGET_START_P50_S:g} s, every browser at ≥ half the "
        "page rate of one alone, all recordings written within 10 s of the stop. "
        f"Largest sustained: **{cap}** runtimes at once.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stages", default="1,2,4,6,8", help="runtimes at once, in order")
    parser.add_argument("--busy", type=float, default=15.0, help="seconds of stress per stage")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.stages.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="bctrl-bench-capacity-"))
    print(f"Working in {workdir}", flush=True)
    load_before = load_averages()
    servers = Servers(
        workdir,
        {"BCTRL_RUNTIME_MAX_BROWSERS": str(max(counts) + 1), "BCTRL_RUNTIME_WARM_BROWSERS": "0"},
    )
    stages: list[Stage] = []
    try:
        from benchmarks.runtimes import tenant

        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        key, _ = tenant()
        for count in counts:
            print(f"{count} runtimes at once…", flush=True)
            stage = asyncio.run(run_stage(servers.base, key, servers.host.pid, count, args.busy))
            stages.append(stage)
            print(
                f"  start p50 {p50(stage.starts) * 1000:.0f} ms, busy "
                f"{stage.busy_pss / count / 2**20:.0f} MiB and "
                f"{stage.busy_cpu:.2f} cores, min {min(stage.rates):.2f} pages/s",
                flush=True,
            )
            if not sustained(stage, stages[0]):
                break
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(stages, load_before, load_averages())
    print("\n" + text)
    write_results("capacity.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
