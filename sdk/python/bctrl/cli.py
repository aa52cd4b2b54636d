"""The `bctrl` command: runs, runtimes, recordings and viewer links from a terminal.

Human output by default; `--json` prints the API's JSON for scripts. The server and key
come from `--base-url` / `--api-key` or BCTRL_BASE_URL / BCTRL_API_KEY.
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from bctrl._client import AsyncBctrl, Bctrl
from bctrl._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BctrlError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableEntityError,
)
from bctrl._models import Export, Model
from bctrl._resources import Run, Runtime

# Exit codes: what went wrong, for scripts.
OK = 0
ERROR = 1  # the server refused for another reason, or something else failed
USAGE = 2  # a wrong command line (click's own)
AUTH = 3  # the key is missing, invalid or not allowed (401, 403)
NOT_FOUND = 4  # no such run or runtime in the key's space (404)
REFUSED = 5  # a conflict or invalid values (409, 422)
UNREACHABLE = 6  # no answer from the server (refused, timed out)
RUN_FAILED = 7  # the run (tail, record) ended failed

EXIT_CODES_HELP = (
    "Exit codes: 0 done, 1 other error, 2 wrong usage, 3 key missing or refused, "
    "4 not found, 5 conflict or invalid values, 6 server unreachable, 7 the run failed."
)

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


class NoSuchRuntime(BctrlError):
    """A runtime name that no runtime of the key's space has."""


class State:
    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self._client: Bctrl | None = None

    @property
    def client(self) -> Bctrl:
        if self._client is None:
            self._client = Bctrl(api_key=self.api_key, base_url=self.base_url)
        return self._client


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def fail(message: str, exit_code: int, as_json: bool, **extra: Any) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"message": message, **extra}}), err=True)
    else:
        err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    sys.exit(exit_code)


@contextmanager
def reporting(as_json: bool) -> Iterator[None]:
    """Turns the client's errors into a message and an exit code that mean something."""
    try:
        yield
    except APIStatusError as exc:
        code = ERROR
        if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
            code = AUTH
        elif isinstance(exc, NotFoundError):
            code = NOT_FOUND
        elif isinstance(exc, (ConflictError, UnprocessableEntityError)):
            code = REFUSED
        fail(
            f"{exc.message} ({exc.code}, HTTP {exc.status_code})",
            code,
            as_json,
            code=exc.code,
            status=exc.status_code,
            details=exc.details,
        )
    except APIConnectionError as exc:
        fail(f"{exc.message} Is the server running?", UNREACHABLE, as_json)
    except NoSuchRuntime as exc:
        fail(exc.message, NOT_FOUND, as_json)
    except BctrlError as exc:
        fail(exc.message, AUTH if "API key" in exc.message else ERROR, as_json)


def print_json(value: Any) -> None:
    if isinstance(value, Model):
        value = value.raw
    elif isinstance(value, list):
        value = [item.raw if isinstance(item, Model) else item for item in value]
    click.echo(json.dumps(value, indent=2, default=str))


def fields(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        if value not in (None, ""):
            out.print(f"{name:<{width}}  {value}")


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# The command group -----------------------------------------------------------------------


@click.group(epilog=EXIT_CODES_HELP)
@click.option("--api-key", envvar="BCTRL_API_KEY", help="API key (BCTRL_API_KEY).")
@click.option("--base-url", envvar="BCTRL_BASE_URL", help="The server (BCTRL_BASE_URL).")
@click.version_option(package_name="bctrl", prog_name="bctrl")
@click.pass_context
def main(ctx: click.Context, api_key: str | None, base_url: str | None) -> None:
    """bctrl: runs, runtimes, recordings and viewer links of a bctrl server."""
    ctx.obj = State(api_key, base_url)


# Runs ----------------------------------------------------------------------------------------


@main.group()
def runs() -> None:
    """Runs: list, show, follow, export their files."""


@runs.command("list")
@click.option("--status", help="running, completed, failed (comma-separated).")
@click.option("--runtime", "runtime_id", help="Only the runs of this runtime id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@click.pass_obj
def runs_list(
    state: State, status: str | None, runtime_id: str | None, limit: int, as_json: bool
) -> None:
    """The newest runs first (following the pages up to --limit)."""
    with reporting(as_json):
        found: list[Run] = []
        for run in state.client.runs.list(
            status=status, runtime_id=runtime_id, limit=min(limit, 100)
        ):
            found.append(run)
            if len(found) >= limit:
                break
        if as_json:
            print_json(found)
            return
        if not found:
            out.print("No runs.")
            return
        table = Table(box=None, pad_edge=False)
        for column in ("RUN", "STATUS", "NAME", "STARTED", "DURATION", "EVENTS"):
            table.add_column(column)
        for run in found:
            usage = run.usage
            table.add_row(
                run.id,
                run.status,
                run.name,
                when(run.started_at),
                duration(usage.duration_ms if usage else None),
                str(usage.event_count if usage else ""),
            )
        out.print(table)


@runs.command("show")
@click.argument("run_id")
@json_option
@click.pass_obj
def runs_show(state: State, run_id: str, as_json: bool) -> None:
    """One run: its state, usage and recording."""
    with reporting(as_json):
        run = state.client.runs.retrieve(run_id)
        if as_json:
            print_json(run)
            return
        usage = run.usage
        recording = run.recording_summary
        fields(
            [
                ("run", run.id),
                ("name", run.name),
                ("status", run.status),
                ("runtime", run.runtime_id),
                ("started", when(run.started_at)),
                ("ended", when(run.ended_at)),
                ("duration", duration(usage.duration_ms if usage else None)),
                ("events", usage.event_count if usage else None),
                ("commands", usage.command_count if usage else None),
                ("artifacts", usage.artifact_count if usage else None),
                ("recording", recording.status if recording else None),
                ("error", json.dumps(run.error) if run.error else None),
                ("dashboard", state.client.url(f"/runs/{run.id}")),
            ]
        )


SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": ""}


@runs.command("tail")
@click.argument("run_id")
@json_option
@click.pass_obj
def runs_tail(state: State, run_id: str, as_json: bool) -> None:
    """Follows the run's activity as it happens, until the run ends."""
    with reporting(as_json):
        for item in state.client.runs.activity.stream(run_id):
            if as_json:
                click.echo(json.dumps({**item.raw, "event": item.event}))
                continue
            style = SEVERITY_STYLE.get(item.severity, "")
            mark = "~" if item.event == "activity.updated" else " "
            text = f"{when(item.time)} {mark} {item.message}"
            out.print(f"[{style}]{escape(text)}[/{style}]" if style else text, markup=bool(style))
        run = state.client.runs.retrieve(run_id)
        if not as_json:
            out.print(f"Run {run.id} {run.status}.")
        if run.status == "failed":
            sys.exit(RUN_FAILED)


@runs.command("export")
@click.argument("run_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--type", "types", multiple=True, help="Only files of this kind (repeatable).")
@click.option("--name", default="run-files", show_default=True)
@json_option
@click.pass_obj
def runs_export(
    state: State, run_id: str, output: Path, types: tuple[str, ...], name: str, as_json: bool
) -> None:
    """Exports the run's files as a ZIP and downloads it."""
    with reporting(as_json):
        files = state.client.runs.files
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            disable=as_json,
        )
        with progress:
            building = progress.add_task("Building the ZIP", total=None)

            def built(export: Export) -> None:
                progress.update(building, description=f"Building the ZIP: {export.status}")

            export = files.export(run_id, name=name, type=list(types), wait=True, on_progress=built)
            progress.update(building, total=1, completed=1)
            download = progress.add_task(f"Downloading {output.name}", total=None)

            def arrived(done: int, total: int | None) -> None:
                progress.update(download, completed=done, total=total)

            files.download_export(export, to=output, on_progress=arrived)
        if as_json:
            print_json({**export.raw, "path": str(output)})
        else:
            out.print(f"{output} ({export.file_count} files, {output.stat().st_size} bytes)")


# Runtimes ------------------------------------------------------------------------------------


@main.group()
def runtimes() -> None:
    """Runtimes: list, start, stop."""


def runtime_named(client: Bctrl, name: str, create: bool) -> Runtime:
    """The runtime with this id or name (the oldest of that name); made if `create`."""
    if name.startswith("rt_"):
        return client.runtimes.retrieve(name)
    found = [runtime for runtime in client.runtimes.list(limit=100) if runtime.name == name]
    if found:
        return found[-1]
    if not create:
        raise NoSuchRuntime(f"No runtime named {name!r}.")
    return client.runtimes.create(name=name)


@runtimes.command("list")
@json_option
@click.pass_obj
def runtimes_list(state: State, as_json: bool) -> None:
    with reporting(as_json):
        found = list(state.client.runtimes.list(limit=100))
        if as_json:
            print_json(found)
            return
        table = Table(box=None, pad_edge=False)
        for column in ("RUNTIME", "NAME", "STATUS", "ACTIVE RUN"):
            table.add_column(column)
        for runtime in found:
            table.add_row(runtime.id, runtime.name, runtime.status, runtime.active_run_id or "")
        out.print(table)


@runtimes.command("start")
@click.argument("name")
@click.option("--no-recording", is_flag=True, help="Do not record the pages with rrweb.")
@click.option("--keep-alive-ms", type=int, help="Stop after this long without a client.")
@json_option
@click.pass_obj
def runtimes_start(
    state: State, name: str, no_recording: bool, keep_alive_ms: int | None, as_json: bool
) -> None:
    """Starts the runtime NAME (an id, or a name: made if there is none) and prints its
    connectUrl for `chromium.connect_over_cdp`, the run id and a live view URL."""
    with reporting(as_json):
        client = state.client
        runtime = runtime_named(client, name, create=True)
        started = client.runtimes.start(
            runtime.id, recording=False if no_recording else None, keep_alive_ms=keep_alive_ms
        )
        live = client.runs.live(started.run_id)
        if as_json:
            print_json({**started.raw, "liveUrl": live.url})
            return
        fields(
            [
                ("runtime", f"{runtime.id} ({runtime.name})"),
                ("run", started.run_id),
                ("connectUrl", started.connect_url),
                ("live", live.url),
            ]
        )


@runtimes.command("stop")
@click.argument("name")
@json_option
@click.pass_obj
def runtimes_stop(state: State, name: str, as_json: bool) -> None:
    """Stops the runtime NAME (an id or a name); its run ends and its recording is kept."""
    with reporting(as_json):
        client = state.client
        runtime = client.runtimes.stop(runtime_named(client, name, create=False).id)
        if as_json:
            print_json(runtime)
        else:
            out.print(f"Runtime {runtime.id} ({runtime.name}) is {runtime.status}.")


# Record, live, replay ----------------------------------------------------------------------


@main.command("record")
@click.argument("url")
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Python file run with `page`, `context`, `browser`, `client` and `run_id` set.",
)
@click.option("--runtime", "runtime_name", default="bctrl record", show_default=True)
@json_option
@click.pass_obj
def record(state: State, url: str, script: Path | None, runtime_name: str, as_json: bool) -> None:
    """Starts a hosted runtime, opens URL (then runs --script), stops and prints the
    replay URL."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        fail("`bctrl record` needs Playwright: pip install 'bctrl[playwright]'.", ERROR, as_json)
    with reporting(as_json):
        client = state.client
        runtime = runtime_named(client, runtime_name, create=True)
        started = client.runtimes.start(runtime.id)
        failure: str | None = None
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.connect_over_cdp(started.connect_url)
                context = browser.contexts[0] if browser.contexts else browser.new_context()
                page = context.new_page()
                page.goto(url)
                if script is not None:
                    runpy.run_path(
                        str(script),
                        init_globals={
                            "page": page,
                            "context": context,
                            "browser": browser,
                            "client": client,
                            "run_id": started.run_id,
                        },
                        run_name="__main__",
                    )
        except PlaywrightError as exc:
            failure = str(exc).splitlines()[0]
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            client.runtimes.stop(runtime.id)
        viewer = client.runs.recording(started.run_id)
        if as_json:
            print_json({"runId": started.run_id, "replayUrl": viewer.iframe_url, "error": failure})
        else:
            fields(
                [
                    ("run", started.run_id),
                    ("replay", viewer.iframe_url),
                    ("dashboard", client.url(f"/runs/{started.run_id}/replay")),
                ]
            )
        if failure is not None:
            fail(failure, RUN_FAILED, as_json)


@main.command("live")
@click.argument("run_id")
@click.option("--control", type=click.Choice(["none", "input"]), default="none")
@click.option("--expires-in", type=int, help="Seconds the link lives (60 to 86400).")
@json_option
@click.pass_obj
def live(state: State, run_id: str, control: str, expires_in: int | None, as_json: bool) -> None:
    """A fresh live view URL of the run (watch, or take control with --control input)."""
    with reporting(as_json):
        viewer = state.client.runs.live(run_id, control=control, expires_in_seconds=expires_in)
        if as_json:
            print_json(viewer)
        else:
            out.print(viewer.url)


@main.command("replay")
@click.argument("run_id")
@click.option("--activity", is_flag=True, help="With the activity beside the replay.")
@click.option("--expires-in", type=int, help="Seconds the link lives (60 to 86400).")
@json_option
@click.pass_obj
def replay(
    state: State, run_id: str, activity: bool, expires_in: int | None, as_json: bool
) -> None:
    """A fresh replay URL of the run's recording."""
    with reporting(as_json):
        viewer = state.client.runs.recording(
            run_id,
            components=["activity"] if activity else None,
            expires_in_seconds=expires_in,
        )
        if as_json:
            print_json(viewer)
        else:
            out.print(viewer.iframe_url)
            if viewer.status != "ready":
                err.print(f"(the recording is {viewer.status})")


# MCP -----------------------------------------------------------------------------------------


@main.command("mcp")
@click.pass_obj
def mcp(state: State) -> None:
    """Serves bctrl's MCP server on stdin/stdout, for an agent that runs it as a command:
    tools to start and stop browsers, read runs, their activity and screenshots, get
    replay and live URLs, ask a person for help. The key and server are the command's
    (--api-key / BCTRL_API_KEY, --base-url / BCTRL_BASE_URL)."""
    try:
        from bctrl.mcp import serve_stdio
    except ImportError:
        fail("`bctrl mcp` needs the MCP SDK: pip install 'bctrl[mcp]'.", ERROR, False)
    with reporting(False):
        serve_stdio(AsyncBctrl(api_key=state.api_key, base_url=state.base_url))


if __name__ == "__main__":
    main()
