"""bctrl processes that tests start as `make run` would (a Celery worker, daphne, the whole
`manage.py serve`), on the test database and the test's files."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

# Settings a test process may have from its environment that would point a child at the
# developer's own servers; each test says which of them its child gets.
SERVER_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PORT", "SITE_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a child with its own var/ folder (its Celery broker folders,
    its secret key) that reads and writes the test database and the test's files.

    With SQLite, `var_dir/db.sqlite3` is a link to the test database (SQLite follows it,
    for the write-ahead log too), so a test can take the database away from the child
    alone by pointing the link elsewhere.
    """
    env = {name: value for name, value in os.environ.items() if name not in SERVER_SETTINGS}
    env.update(
        # Static files from their folders (no collectstatic), as in the test process.
        BCTRL_TESTING="1",
        BCTRL_VAR_DIR=str(var_dir),
        SECRET_KEY=settings.SECRET_KEY,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        BCTRL_COLD_STORAGE_ROOT=str(settings.BCTRL_COLD_STORAGE_ROOT),
    )
    database = connection.settings_dict
    var_dir.mkdir(parents=True, exist_ok=True)
    if connection.vendor == "sqlite":
        (var_dir / "db.sqlite3").symlink_to(database["NAME"])
    else:
        credentials = quote(database["USER"] or "")
        if database["PASSWORD"]:
            credentials += ":" + quote(database["PASSWORD"])
        # Named, so that a test can end this child's connections and no others.
        env["DATABASE_URL"] = (
            f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}?application_name={var_dir.name}-"
            f"{os.getpid()}-{id(var_dir)}"
        )
    env.update(extra)
    return env


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    *,
    key: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One HTTP request (JSON `body`, API `key`), whatever the status of the answer."""
    parts = urlsplit(url)
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    client = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        client.request(method, path, body=data, headers=sent)
        response = client.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        client.close()


def wait_until_answers(
    url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Waits until an HTTP server answers `url` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            call("GET", url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def web_server(env: dict[str, str]) -> Iterator[str]:
    """daphne serving bctrl as `manage.py serve` starts it; yields its base URL."""
    port = free_port()
    argv = [
        sys.executable, "-m", "bctrl_site.webserver", "-b", "127.0.0.1", "-p", str(port),
        "bctrl_site.asgi:application",
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_answers(base_url + "/v1/runs", process=process)
        yield base_url
    finally:
        stop(process)
