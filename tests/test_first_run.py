"""A first run without wrong turns: `make run`'s banners print where bctrl really listens,
the links it hands out follow the port served, and `manage.py demo` in a second terminal
finds that server without flags (bctrl_site.serving)."""

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from bctrl_site.serving import (
    SERVER_FILE,
    local_url,
    running_server_url,
    server_announce,
    server_withdraw,
)
from demo.management.commands.demo import demo_server_url
from runs.management.commands.serve import banner
from tests.processes import ROOT, SERVER_SETTINGS, call, free_port, wait_until_answers
from tests.test_serve_faults import manage


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8610, "http://127.0.0.1:8610"),
        ("0.0.0.0", 8610, "http://127.0.0.1:8610"),  # noqa: S104
        ("::", 9000, "http://127.0.0.1:9000"),
        ("192.168.1.20", 8000, "http://192.168.1.20:8000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("bctrl.internal", 80, "http://bctrl.internal:80"),
    ],
)
def test_the_local_url_is_where_a_browser_here_reaches_the_server(
    host: str, port: int, url: str
) -> None:
    assert local_url(host, port) == url


def test_the_banner_says_where_to_open_bctrl_and_what_else_decides_its_links() -> None:
    assert banner("http://127.0.0.1:8610", "127.0.0.1", "") == (
        "bctrl is running at http://127.0.0.1:8610/ (Ctrl-C stops it)"
    )
    wide = banner("http://127.0.0.1:8610", "0.0.0.0", "https://bctrl.example.com/")  # noqa: S104
    assert wide.splitlines() == [
        "bctrl is running at http://127.0.0.1:8610/ (Ctrl-C stops it)",
        "  listening on every interface (0.0.0.0) of this machine",
        "  links it hands out use SITE_URL, https://bctrl.example.com",
    ]


def test_a_noted_server_is_believed_only_while_its_process_lives(tmp_path: Path) -> None:
    assert running_server_url(tmp_path) is None
    server_announce(tmp_path, "http://127.0.0.1:8610")
    assert running_server_url(tmp_path) == "http://127.0.0.1:8610"
    assert [path.name for path in tmp_path.iterdir()] == [SERVER_FILE]

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp_path / SERVER_FILE).write_text(
        json.dumps({"url": "http://127.0.0.1:1", "pid": int(gone.stdout)})
    )
    assert running_server_url(tmp_path) is None  # a serve that was killed outright
    for garbage in ("", "[]", '{"url": 5, "pid": 1}', '{"url": "http://x:1"}', "{"):
        (tmp_path / SERVER_FILE).write_text(garbage)
        assert running_server_url(tmp_path) is None, garbage

    # Another serve's note stays when this one stops.
    (tmp_path / SERVER_FILE).write_text(json.dumps({"url": "http://127.0.0.1:2", "pid": 1}))
    server_withdraw(tmp_path)
    assert (tmp_path / SERVER_FILE).exists()
    server_announce(tmp_path, "http://127.0.0.1:8610")
    server_withdraw(tmp_path)
    assert not (tmp_path / SERVER_FILE).exists()
    server_withdraw(tmp_path)  # twice is harmless


def test_demo_goes_to_the_given_then_the_noted_server_then_site_url(
    tmp_path: Path, settings: Any
) -> None:
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = "http://127.0.0.1:8000"
    assert demo_server_url(None) == "http://127.0.0.1:8000"
    server_announce(tmp_path, "http://127.0.0.1:8610")
    assert demo_server_url(None) == "http://127.0.0.1:8610"
    assert demo_server_url("http://10.0.0.5:9000/") == "http://10.0.0.5:9000"


def test_bootstrap_prints_the_address_served_and_how_to_reset_the_password(
    db: None, settings: Any
) -> None:
    settings.SITE_URL = "http://127.0.0.1:8610"
    first = io.StringIO()
    call_command("bootstrap", stdout=first)
    assert "dashboard   http://127.0.0.1:8610/   user admin   password " in first.getvalue()
    assert "manage.py changepassword admin" in first.getvalue()
    again = io.StringIO()
    call_command("bootstrap", stdout=again)
    assert again.getvalue().strip() == (
        "bctrl is set up already: sign in at http://127.0.0.1:8610/ as admin "
        "(a new password: .venv/bin/python manage.py changepassword admin)."
    )


@pytest.mark.timeout(180)
def test_demo_finds_the_server_that_serve_started_on_another_port(tmp_path: Path) -> None:
    """`PORT` says one port (as a shell may have it), serve is told another: the banner,
    the links the API hands out and the demo all follow the port really served."""
    stale_port, port = free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if name not in SERVER_SETTINGS}
    env.update(BCTRL_VAR_DIR=str(tmp_path / "var"), PORT=str(stale_port))
    # As `make run` (collectstatic aside: no page is opened).
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    printed = manage(env, "bootstrap")
    assert f"dashboard   http://127.0.0.1:{stale_port}/   user admin" in printed
    key = re.search(r"API key\s+(bctrl_sk_\S+)", printed)
    assert key is not None

    note = tmp_path / "var" / SERVER_FILE
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(url + "/v1/runs", process=serve)
        assert log.read_text().splitlines()[0] == f"bctrl is running at {url}/ (Ctrl-C stops it)"
        assert json.loads(note.read_text()) == {"url": url, "pid": serve.pid}

        # The demo, without flags, in its own process whose SITE_URL says `stale_port`:
        # it starts its runtime through that server (tests/test_demo.py follows a whole
        # demo; here it is stopped once its run is running).
        demo = subprocess.Popen(
            [sys.executable, "-u", "manage.py", "demo"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert demo.stdout is not None
            said = [demo.stdout.readline(), demo.stdout.readline(), demo.stdout.readline()]
            assert said[0].rstrip().endswith(f"), {url}"), said
            assert re.search(
                rf"Run run_\w+ is running .*connecting Playwright to ws://127\.0\.0\.1:{port}/cdp/",
                said[2],
            ), said
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)

        run = call("POST", f"{url}/v1/runs", body={"name": "shared"}, key=key[1]).json()
        viewer = call("POST", f"{url}/v1/runs/{run['id']}/recording", body={}, key=key[1])
        assert viewer.status == 200, viewer.body
        assert viewer.json()["iframeUrl"].startswith(f"{url}/embed/replay/")
    finally:
        serve.send_signal(signal.SIGINT)
        assert serve.wait(60) == 0
    assert not note.exists()

    # Stopped: the demo falls back to SITE_URL and says nothing answers there.
    after = subprocess.run(
        [sys.executable, "manage.py", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert after.returncode != 0
    assert f"No bctrl server answers at http://127.0.0.1:{stale_port}" in after.stderr
    assert "make run" in after.stderr


# The sign-in page ---------------------------------------------------------------------


@pytest.mark.browser
def test_the_sign_in_page_tells_the_truth_about_the_first_user(
    transactional_db: None, asgi_server: str, page: Any
) -> None:
    page.goto(f"{asgi_server}/login/")
    assert "No user yet: make run creates admin" in page.inner_text("[data-first-user]")

    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    password = re.search(r"password (\S+)", out.getvalue())
    assert password is not None
    page.reload()
    foot = page.inner_text(".auth-foot")
    assert "The first user is admin." in foot
    assert "printed the password once, in its terminal" in foot
    assert ".venv/bin/python manage.py changepassword admin" in foot
    assert "createsuperuser" not in foot
    command = page.locator(".auth-foot pre")
    assert command.evaluate("pre => pre.scrollWidth <= pre.clientWidth")  # all of it in sight
    page.screenshot(path="/tmp/first-run-sign-in.png")

    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{asgi_server}/")
    page.context.clear_cookies()
    page.goto(f"{asgi_server}/login/")
    foot = page.inner_text(".auth-foot")
    assert "Forgot your password?" in foot
    assert "admin" not in foot  # once someone has signed in, the page names no one
