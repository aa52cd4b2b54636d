"""One crash is local: `kill -9` of the runtime host and of the Celery worker under a running
`manage.py serve` (what `make run` starts), while a client keeps calling the API.

The whole product runs as `make run` runs it, on the embedded defaults in a folder of the
test's own (SQLite, the filesystem broker, the in-memory channel layer) and with the real
runtime host, so Chromium starts.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .processes import ROOT, SERVER_SETTINGS, call, free_port, wait_until_answers

pytestmark = pytest.mark.browser

HOST_GONE_REASON = "runtime host stopped responding"  # runtimes.sweep.HOST_GONE_REASON


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    key: str
    log: Path

    def children(self) -> dict[str, int]:
        """The live children of serve, by their name in serve.py."""
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    state, parent = handle.read().rsplit(") ", 1)[1].split()[:2]
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if int(parent) != self.process.pid or state == "Z":
                continue
            for name, marker in CHILD_MARKERS.items():
                if marker in argv:
                    found[name] = int(entry.name)
        return found

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call as a client makes it: a 503 with Retry-After (no runtime host up yet,
        right after serve or a host's restart) is tried again after that wait."""
        deadline = time.monotonic() + 60
        while True:
            answer = call(method, self.url + path, key=self.key, body=body, timeout=60)
            retry = answer.headers.get("Retry-After")
            if answer.status != 503 or not retry or time.monotonic() > deadline:
                break
            time.sleep(float(retry))
        assert answer.status in (200, 201), (method, path, answer.status, answer.body)
        return answer.json()


CHILD_MARKERS = {
    "web": b"bctrl_site.webserver",
    "runtime_host": b"runtime_host",
    "worker": b"worker",
    "beat": b"beat",
}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    env = {name: value for name, value in os.environ.items() if name not in SERVER_SETTINGS}
    env["BCTRL_VAR_DIR"] = str(tmp_path / "var")
    port = free_port()
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    printed = manage(env, "bootstrap")
    key = re.search(r"API key\s+(bctrl_sk_\S+)", printed)
    assert key is not None, printed
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    serve = Serve(process, url, key[1], log)
    try:
        # Four processes start at once: on a busy two-core machine that takes a while.
        wait_until_answers(url + "/v1/runs", timeout=90, process=process)
        yield serve
    finally:
        leftovers = list(serve.children().values())
        if process.poll() is None:
            process.kill()  # the test failed before its own Ctrl-C
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Poller:
    """Calls `GET /v1/runs` without pause from a thread, noting each answer's status."""

    serve: Serve
    answers: list[tuple[float, int]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status = call("GET", self.serve.url + "/v1/runs", key=self.serve.key).status
            except OSError:
                status = 0  # refused or cut: the web server is down
            self.answers.append((time.monotonic(), status))
            time.sleep(0.02)

    def answers_between(self, start: float, end: float) -> list[int]:
        return [status for at, status in self.answers if start <= at <= end]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def processes_naming(text: str) -> list[int]:
    """Processes with `text` in their command line (a runtime's browser names its runtime)."""
    needle, found = text.encode(), []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_child(serve: Serve, name: str) -> tuple[float, float]:
    """SIGKILL of one child; returns when it died and when its successor was running."""
    pid = serve.children()[name]
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: serve.children().get(name, pid) != pid, f"{name} to be started again")
    return killed_at, time.monotonic()


def test_killing_the_runtime_host_and_the_worker_leaves_the_api_up_and_both_come_back(
    serve: Serve,
) -> None:
    first = serve.api("POST", "/v1/runtimes", {"name": "before the crash"})
    started = serve.api("POST", f"/v1/runtimes/{first['id']}/start")
    assert started["connectUrl"].startswith("ws://")
    poller = Poller(serve)
    polling = threading.Thread(target=poller.run, daemon=True)
    polling.start()
    try:
        host_down = kill_child(serve, "runtime_host")
        wait_for(lambda: not processes_naming(first["id"]), "the killed host's browser to end")
        worker_down = kill_child(serve, "worker")

        # A run of the killed host ends `failed` with the reason (the beat's sweep, run by
        # the restarted worker), and a new start goes to the restarted host.
        def failed_run() -> Any:
            run = serve.api("GET", f"/v1/runs/{started['runId']}")
            return run if run["status"] == "failed" else None

        crashed = wait_for(failed_run, "the run of the killed host to fail")
        second = serve.api("POST", "/v1/runtimes", {"name": "after the crash"})
        restarted = serve.api("POST", f"/v1/runtimes/{second['id']}/start")
        serve.api("POST", f"/v1/runtimes/{second['id']}/stop")
    finally:
        poller.stopping.set()
        polling.join(10)

    assert crashed["error"] == {"code": "runtime.failed", "message": HOST_GONE_REASON}
    assert restarted["connectUrl"].startswith("ws://")
    assert restarted["status"] == "running"
    # The API answered all along, including while each child was down.
    assert poller.answers and {status for _, status in poller.answers} == {200}
    assert poller.answers_between(*host_down) and poller.answers_between(*worker_down)
    log = serve.log.read_text()
    assert re.search(r"runtime_host \(pid \d+\) exited with signal SIGKILL", log)
    assert re.search(r"worker \(pid \d+\) exited with signal SIGKILL", log)
    assert "Restarted runtime_host" in log and "Restarted worker" in log

    # Ctrl-C still stops everything.
    children = serve.children()
    serve.process.send_signal(signal.SIGINT)
    assert serve.process.wait(30) == 0
    assert not [pid for pid in children.values() if os.path.exists(f"/proc/{pid}/cmdline")]
