"""The `bctrl` command (sdk/python, bctrl.cli) run as a process against the live server:
human output, `--json`, and exit codes that mean something."""

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from bctrl import Bctrl
from django.conf import settings

from runs.models import Event, Run
from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, fake_host

pytestmark = pytest.mark.django_db(transaction=True)

SDK = str(Path(settings.BASE_DIR) / "sdk" / "python")


def bctrl(
    *args: str, key: str, server: str, expect: int = 0, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`bctrl ARGS…` as a user runs it (the package's entry point, `python -m bctrl.cli`)."""
    env = {
        **os.environ,
        "BCTRL_API_KEY": key,
        "BCTRL_BASE_URL": server,
        "PYTHONPATH": os.pathsep.join([SDK, os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bctrl.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture
def client(asgi_server: str, tenant: Tenant) -> Bctrl:
    return Bctrl(api_key=tenant.raw_key, base_url=asgi_server)


def test_runs_list_and_show_for_people_and_for_scripts(
    client: Bctrl, asgi_server: str, tenant: Tenant
) -> None:
    runtime = client.runtimes.create(name="cli")
    first = client.runs.create(name="checkout flow")
    second = client.runs.create(runtime_id=runtime.id, name="search flow")
    client.runs.stop(first.id, status="failed", error={"message": "card declined"})
    key = tenant.raw_key

    shown = bctrl("runs", "list", key=key, server=asgi_server).stdout
    assert "RUN" in shown and first.id in shown and "search flow" in shown
    assert shown.index(second.id) < shown.index(first.id)  # newest first
    listed = json.loads(bctrl("runs", "list", "--json", key=key, server=asgi_server).stdout)
    assert [run["id"] for run in listed] == [second.id, first.id]
    failed = bctrl("runs", "list", "--status", "failed", "--json", key=key, server=asgi_server)
    assert [run["id"] for run in json.loads(failed.stdout)] == [first.id]
    on_runtime = bctrl("runs", "list", "--runtime", runtime.id, key=key, server=asgi_server)
    assert second.id in on_runtime.stdout and first.id not in on_runtime.stdout
    paged = bctrl("runs", "list", "--limit", "1", "--json", key=key, server=asgi_server)
    assert len(json.loads(paged.stdout)) == 1

    detail = bctrl("runs", "show", first.id, key=key, server=asgi_server).stdout
    assert "failed" in detail and "card declined" in detail and f"/runs/{first.id}" in detail
    as_json = json.loads(
        bctrl("runs", "show", first.id, "--json", key=key, server=asgi_server).stdout
    )
    assert as_json["id"] == first.id and as_json["error"] == {"message": "card declined"}


def test_exit_codes_say_what_went_wrong(client: Bctrl, asgi_server: str, tenant: Tenant) -> None:
    missing = bctrl("runs", "show", "run_nope", key=tenant.raw_key, server=asgi_server, expect=4)
    assert "not_found" in missing.stderr and "HTTP 404" in missing.stderr
    refused = bctrl("runs", "list", key="bctrl_sk_wrong", server=asgi_server, expect=3)
    assert "HTTP 401" in refused.stderr
    invalid = bctrl(
        "runs",
        "list",
        "--status",
        "asleep",
        "--json",
        key=tenant.raw_key,
        server=asgi_server,
        expect=5,
    )
    assert json.loads(invalid.stderr)["error"]["code"] == "validation_error"
    gone = bctrl("runs", "list", key="k", server="http://127.0.0.1:9", expect=6)
    assert "Is the server running?" in gone.stderr
    assert (
        "Usage"
        in bctrl("runs", "list", "--limit", "0", key="k", server=asgi_server, expect=2).stderr
    )


def test_tail_prints_the_activity_and_says_how_the_run_ended(
    client: Bctrl, asgi_server: str, tenant: Tenant
) -> None:
    run = client.runs.create(name="tail")
    client.runs.events.append(
        run.id,
        [
            {"seq": 1, "type": "navigation", "pageId": "p1", "data": {"url": "https://a.example/"}},
            {"seq": 2, "type": "page.error", "pageId": "p1", "data": {"message": "Boom [x]"}},
        ],
    )
    client.runs.stop(run.id, status="failed")
    tailed = bctrl("runs", "tail", run.id, key=tenant.raw_key, server=asgi_server, expect=7)
    assert "Boom [x]" in tailed.stdout and f"Run {run.id} failed." in tailed.stdout
    as_json = bctrl(
        "runs", "tail", run.id, "--json", key=tenant.raw_key, server=asgi_server, expect=7
    )
    items = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert any("Boom" in item["message"] for item in items)


def test_export_writes_the_zip(
    client: Bctrl, asgi_server: str, tenant: Tenant, tmp_path: Path
) -> None:
    run = client.runs.create(name="export")
    client.runs.artifacts.upload(run.id, b"a,b\n1,2\n", kind="download", name="table.csv")
    target = tmp_path / "files.zip"
    done = bctrl(
        "runs", "export", run.id, "-o", str(target), key=tenant.raw_key, server=asgi_server
    )
    assert str(target) in done.stdout and "1 files" in done.stdout
    with zipfile.ZipFile(target) as zipped:
        assert any(name.endswith("table.csv") for name in zipped.namelist())


def test_runtimes_start_and_stop_and_fresh_viewer_links(
    client: Bctrl, asgi_server: str, tenant: Tenant
) -> None:
    key = tenant.raw_key
    with fake_host():
        started = bctrl("runtimes", "start", "nightly", key=key, server=asgi_server).stdout
        runtime = next(r for r in client.runtimes.list() if r.name == "nightly")
        run_id = runtime.refresh().active_run_id
        assert run_id and run_id in started
        assert "connectUrl" in started and "/cdp/" in started and "/embed/live/" in started
        again = bctrl("runtimes", "start", "nightly", key=key, server=asgi_server, expect=5)
        assert "runtime.already_running" in again.stderr or "409" in again.stderr

        live_url = bctrl("live", run_id, "--control", "input", key=key, server=asgi_server).stdout
        assert "/embed/live/" in live_url
        replay = bctrl("replay", run_id, "--json", key=key, server=asgi_server).stdout
        assert "/embed/replay/" in json.loads(replay)["iframeUrl"]

        stopped = bctrl("runtimes", "stop", "nightly", "--json", key=key, server=asgi_server)
        assert json.loads(stopped.stdout)["id"] == runtime.id
    unknown = bctrl("runtimes", "stop", "never-made", key=key, server=asgi_server, expect=4)
    assert "No runtime named 'never-made'" in unknown.stderr


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_record_opens_the_url_runs_the_script_and_prints_the_replay(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, tmp_path: Path
) -> None:
    script = tmp_path / "steps.py"
    script.write_text(
        'page.click("#shop-now")\npage.wait_for_url("**/demo/products")\nprint("on", page.url)\n'
    )
    done = bctrl(
        "record",
        asgi_server + "/demo/",
        "--script",
        str(script),
        "--json",
        key=tenant.raw_key,
        server=asgi_server,
        timeout=200,
    )
    assert done.stdout.startswith(f"on {asgi_server}/demo/products\n")  # the script's print
    answer = json.loads(done.stdout[done.stdout.index("{") :])
    assert "/embed/replay/" in answer["replayUrl"] and answer["error"] is None
    deadline = time.monotonic() + 60
    while (run := Run.objects.get(pk=answer["runId"])).status == Run.Status.RUNNING:
        assert time.monotonic() < deadline, "the run did not end after the stop"
        time.sleep(0.2)
    assert run.status == Run.Status.COMPLETED
    urls = {e.data["url"] for e in Event.objects.filter(run=run, type="navigation")}
    assert asgi_server + "/demo/products" in urls
