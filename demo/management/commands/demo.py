"""`manage.py demo`: one command that shows a first recorded run end to end.

With `make run` running (found through the URL that `manage.py serve` notes in the var
folder, bctrl_site.serving; else SITE_URL; or `--base-url`), it creates (or reuses) a
runtime named "Demo" in the first space, issues itself an API key, starts the runtime
through the HTTP API with the Python client (`bctrl`, sdk/python: `POST
/v1/runtimes/{id}/start`, so the connectUrl is the real one through the CDP proxy), drives
the demo shop at `/demo/` with Playwright over `connect_over_cdp`, takes a screenshot
through the API, stops the runtime, waits until the run's recording is processed and
prints the run's dashboard and replay URLs. The key is revoked at the end.

`drive_demo` (the browsing) and `run_demo` (start → drive → stop → wait) are used by the
tests (tests/test_demo.py) and the runtimes benchmark (benchmarks/runtimes.py) too.
"""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bctrl import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    Bctrl,
    BctrlError,
    Usage,
)
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from bctrl_site.serving import running_server_url
from runs.models import ApiKey, Runtime, Space
from runtimes.services import runtime_create

DEMO_RUNTIME_NAME = "Demo"
DEMO_EMAIL = "ada@example.com"
DEMO_PASSWORD = "correct-horse-42"  # noqa: S105 (typed into the demo shop's sign-in form)
DEMO_CARD = "4242 4242 4242 4242"
STEP_TIMEOUT_MS = 15_000
TYPE_DELAY_MS = 12
BUSY = ("starting", "running", "stopping")

Say = Callable[[str], None]


class DemoError(Exception):
    """What went wrong, in words for the person who ran the command."""


def _quiet(message: str) -> None:
    pass


# The HTTP API, through the Python client (sdk/python, `bctrl`) ---------------------------


def client_for(base_url: str, api_key: str) -> Bctrl:
    return Bctrl(api_key=api_key, base_url=base_url, timeout=60.0)


@contextlib.contextmanager
def explained(base_url: str) -> Iterator[None]:
    """The client's errors in words for the person who ran the command (a DemoError)."""
    try:
        yield
    except APIConnectionError as exc:
        raise DemoError(
            f"No bctrl server answers at {base_url} ({exc.message}). Start it with "
            "`make run` (or pass --base-url)."
        ) from exc
    except AuthenticationError as exc:
        raise DemoError("The server refused the demo's API key (401).") from exc
    except APIStatusError as exc:
        if exc.code in ("runtime.no_host", "runtime.start_timeout"):
            raise DemoError(
                f"{exc.message}\nNo runtime host took the runtime: is `make run` running? It "
                "starts the web server, the runtime host (which launches the browsers) and the "
                "worker."
            ) from exc
        request = exc.request
        raise DemoError(
            f"{request.method} {request.url.path} answered {exc.status_code} {exc.code}: "
            f"{exc.message}"
        ) from exc


def redacted_connect_url(url: str) -> str:
    """The connect URL without its token (a credential), for printing."""
    parts = urlsplit(url)
    path = parts.path.rsplit("/", 1)[0] + "/…" if parts.path.startswith("/cdp/") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def with_query(url: str, query: str) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


# Browsing the demo shop -----------------------------------------------------------------


@dataclass
class DemoFlow:
    order_number: str = ""
    receipt_name: str = ""
    pages: list[str] = field(default_factory=list)


def drive_demo(
    browser: Any,
    base_url: str,
    *,
    say: Say = _quiet,
    screenshot: Callable[[], None] | None = None,
) -> DemoFlow:
    """Browses the demo shop in a new context of `browser` (Playwright, sync API, connected
    over CDP): products, sign-in and checkout typed key by key (a failed validation
    first), the receipt download, a second tab and a `window.open` pop-up, the status page
    with its console error and 404s, then `screenshot()` if given. Leaves the pages open."""
    shop = base_url.rstrip("/") + "/demo"
    flow = DemoFlow()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()

    def arrived(step: str) -> None:
        flow.pages.append(page.url)
        say(step)

    page.goto(shop + "/")
    arrived("Opened the demo shop's home page")
    page.click("#shop-now")
    page.wait_for_url("**/demo/products")
    page.locator("#product-filter").press_sequentially("pack", delay=TYPE_DELAY_MS)
    page.click("[data-product=summit-pack]")
    page.wait_for_url("**/demo/products/summit-pack")
    arrived("Filtered the product list and opened a product")

    page.click("#nav-signin")
    page.wait_for_url("**/demo/signin*")
    page.locator("#email").press_sequentially(DEMO_EMAIL, delay=TYPE_DELAY_MS)
    page.locator("#password").press_sequentially(DEMO_PASSWORD, delay=TYPE_DELAY_MS)
    page.click("#signin-submit")
    page.wait_for_url("**/demo/products")
    page.wait_for_selector("#signed-in-as")
    arrived("Signed in (email and password typed key by key)")

    page.click("[data-product=trail-runner]")
    page.wait_for_url("**/demo/products/trail-runner")
    page.click("#buy-now")
    page.wait_for_url("**/demo/checkout*")
    page.click("#place-order")  # empty: the page's validation refuses it
    page.wait_for_selector(".field.invalid")
    page.locator("#name").press_sequentially("Ada Lovelace", delay=TYPE_DELAY_MS)
    page.locator("#address").press_sequentially("12 Analytical Row, London", delay=TYPE_DELAY_MS)
    page.locator("#card").press_sequentially(DEMO_CARD, delay=TYPE_DELAY_MS)
    page.locator("#expiry").press_sequentially("12/29", delay=TYPE_DELAY_MS)
    page.fill("#quantity", "2")
    page.click("#place-order")
    page.wait_for_url("**/demo/orders/**")
    flow.order_number = (page.text_content("#order-number") or "").strip()
    arrived(f"Checked out (validation errors first, then order {flow.order_number})")

    with page.expect_download() as download_info:
        page.click("#download-receipt")
    flow.receipt_name = download_info.value.suggested_filename
    say(f"Downloaded the receipt {flow.receipt_name}")

    with context.expect_page() as tab_info:
        page.click("#track-new-tab")
    tab = tab_info.value
    tab.wait_for_selector("#help-title")
    with tab.expect_popup() as popup_info:
        tab.click("#open-chat")
    chat = popup_info.value
    chat.wait_for_selector("#chat-input")
    chat.locator("#chat-input").press_sequentially("Where is my order?", delay=TYPE_DELAY_MS)
    chat.press("#chat-input", "Enter")
    chat.wait_for_selector(".chat .me")
    flow.pages += [tab.url, chat.url]
    say("Opened the help center in a new tab and the live chat with window.open")

    page.bring_to_front()
    page.goto(shop + "/status")
    page.wait_for_selector("body[data-status=done]")
    arrived("Visited the status page (a console error, a failed API call, a missing image)")

    page.goto(shop + "/")
    page.wait_for_selector("#signed-in-as")
    arrived("Back on the home page")
    if screenshot is not None:
        screenshot()
    return flow


# Start → drive → stop → wait --------------------------------------------------------------


@dataclass
class DemoOutcome:
    run_id: str
    runtime_id: str
    flow: DemoFlow
    recording_status: str
    dashboard_url: str
    replay_url: str
    timings: dict[str, float] = field(default_factory=dict)


def wait_until(
    check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.25
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"Timed out after {timeout_s:g} s waiting for {what}.")
        time.sleep(interval_s)


def free_runtime(client: Bctrl, runtime_id: str, say: Say = _quiet, timeout_s: float = 60) -> None:
    """Stops the runtime if a start of it is still running (an earlier demo cut short)."""
    runtime = client.runtimes.retrieve(runtime_id)
    if runtime.status not in BUSY:
        return
    say(f"Runtime {runtime_id} is {runtime.status}; stopping it first")
    client.runtimes.stop(runtime_id)
    wait_until(
        lambda: client.runtimes.retrieve(runtime_id).status not in BUSY,
        timeout_s,
        f"runtime {runtime_id} to stop",
    )


def run_demo(
    *,
    base_url: str,
    api_key: str,
    runtime_id: str,
    say: Say = _quiet,
    run_timeout_s: float = 60,
    recording_timeout_s: float = 180,
) -> DemoOutcome:
    """Starts the runtime through the API, drives the demo shop over the connectUrl,
    screenshots, stops and waits for the run to end and its recording to be ready."""
    client = client_for(base_url, api_key)
    with explained(base_url), client:
        return _run_demo(
            client,
            runtime_id=runtime_id,
            say=say,
            run_timeout_s=run_timeout_s,
            recording_timeout_s=recording_timeout_s,
        )


def _run_demo(
    client: Bctrl,
    *,
    runtime_id: str,
    say: Say,
    run_timeout_s: float,
    recording_timeout_s: float,
) -> DemoOutcome:
    site = client.base_url
    timings: dict[str, float] = {}
    client.runs.list(limit=1)  # the key is refused (401) before anything starts

    free_runtime(client, runtime_id, say)
    say(f"Starting runtime {runtime_id} (POST /v1/runtimes/{runtime_id}/start)…")
    t0 = time.monotonic()
    started = client.runtimes.start(runtime_id)
    timings["start_s"] = time.monotonic() - t0
    run_id, connect_url = started.run_id, started.connect_url
    say(
        f"Run {run_id} is running ({timings['start_s']:.2f} s); connecting Playwright to "
        f"{redacted_connect_url(connect_url)}"
    )

    def screenshot() -> None:
        shot = client.runs.screenshot(run_id)
        say(f"Took a screenshot through the API: {shot.id} ({shot.size} bytes)")

    stopped = False
    try:
        with sync_playwright() as playwright:
            t0 = time.monotonic()
            browser = playwright.chromium.connect_over_cdp(connect_url, timeout=30_000)
            timings["connect_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            try:
                flow = drive_demo(browser, site, say=say, screenshot=screenshot)
            except PlaywrightError as exc:
                raise DemoError(f"Driving the demo shop failed: {exc}") from exc
            timings["flow_s"] = time.monotonic() - t0
            # The host stores a download in the background: let it land before stopping.
            wait_until(
                lambda: client.runs.artifacts.list(run_id, kind="download").data,
                30,
                "the receipt download to be stored",
            )
            say("The receipt is stored as a download artifact of the run")
            # Stopped while still connected, so the final screenshot shows the last page.
            say(f"Stopping runtime {runtime_id} (POST /v1/runtimes/{runtime_id}/stop)…")
            client.runtimes.stop(runtime_id)
            stopped = True
    finally:
        if not stopped:
            with contextlib.suppress(BctrlError):
                client.runtimes.stop(runtime_id)

    t0 = time.monotonic()
    run = wait_until(
        lambda: (r := client.runs.retrieve(run_id)).status != "running" and r,
        run_timeout_s,
        f"run {run_id} to end",
    )
    usage = run.usage or Usage()
    say(
        f"Run {run_id} {run.status}: {usage.event_count} events, "
        f"{usage.command_count} commands, {usage.artifact_count} artifacts"
    )
    say("Waiting for the recording to be processed…")

    def recording_settled() -> str:
        summary = client.runs.retrieve(run_id).recording_summary
        status = summary.status if summary else ""
        return status if status in ("ready", "failed", "not_available") else ""

    try:
        recording_status = wait_until(recording_settled, recording_timeout_s, "the recording")
    except DemoError as exc:
        raise DemoError(
            f"{exc} Is the Celery worker running? `make run` starts it; the run is at "
            f"{site}/runs/{run_id}"
        ) from exc
    timings["recording_s"] = time.monotonic() - t0
    if recording_status != "ready":
        raise DemoError(f"The recording of run {run_id} is {recording_status}.")
    say(f"The recording is ready ({timings['recording_s']:.1f} s after the stop)")
    return DemoOutcome(
        run_id=run_id,
        runtime_id=runtime_id,
        flow=flow,
        recording_status=recording_status,
        dashboard_url=f"{site}/runs/{run_id}",
        replay_url=f"{site}/runs/{run_id}/replay",
        timings=timings,
    )


# The command ----------------------------------------------------------------------------


def space_of(value: str | None) -> Space:
    spaces = Space.objects.order_by("created_at", "id")
    space = spaces.filter(Q(pk=value) | Q(slug=value)).first() if value else spaces.first()
    if space is None:
        raise CommandError(
            f"No space {value!r}." if value else "No space yet: run `make run` once to set up."
        )
    return space


def demo_runtime(space: Space, name: str = DEMO_RUNTIME_NAME) -> Runtime:
    existing = Runtime.objects.filter(space=space, name=name).order_by("created_at", "id").first()
    return existing or runtime_create(space=space, name=name)


def demo_server_url(given: str | None) -> str:
    """The server to drive: the one asked for, else the one that `manage.py serve` noted
    it runs on this var folder (bctrl_site.serving), else SITE_URL."""
    return (given or running_server_url(settings.VAR_DIR) or settings.SITE_URL).rstrip("/")


class Command(BaseCommand):
    help = (
        "Drives the demo shop (/demo/) through a runtime of the running server and prints "
        "the recorded run's dashboard and replay URLs. Needs `make run` running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--space", default=None, help="space id (spc_…) or slug; the first")
        parser.add_argument(
            "--base-url",
            default=None,
            help=(
                "the server (default: the one `make run` serves on this var folder, "
                f"else SITE_URL, {settings.SITE_URL})"
            ),
        )
        parser.add_argument("--runtime-name", default=DEMO_RUNTIME_NAME)
        parser.add_argument("--recording-timeout", type=float, default=180.0)

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = demo_server_url(options["base_url"])
        space = space_of(options["space"])
        runtime = demo_runtime(space, options["runtime_name"])
        api_key, raw_key = ApiKey.objects.issue(space=space, name="manage.py demo")

        def say(message: str) -> None:
            self.stdout.write(f"[{time.strftime('%H:%M:%S')}] {message}")

        say(f"Space {space.name} ({space.id}), runtime {runtime.name} ({runtime.id}), {base_url}")
        try:
            outcome = run_demo(
                base_url=base_url,
                api_key=raw_key,
                runtime_id=runtime.id,
                say=say,
                recording_timeout_s=options["recording_timeout"],
            )
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
        self.stdout.write(
            self.style.SUCCESS(f"\nDone: run {outcome.run_id}\n")
            + f"  dashboard  {outcome.dashboard_url}\n"
            + f"  replay     {outcome.replay_url}\n"
            + "  (sign in with the admin user that `make run` printed)"
        )
