"""What the page and the browser did: console output, errors, dialogs, downloads, stored
files, tabs, client connections, the browser's lifecycle; and the screenshot and dialog
commands whose items these events complete.
"""

from datetime import timedelta

from runs.activity.folding import append_call, plumbing_child
from runs.activity.grouping import BURST_GAP
from runs.activity.items import MAX_CHILDREN, ConsoleGroup, Dialog, Item, child
from runs.activity.naming import command_status, human_duration, size
from runs.activity.records import CommandRecord, EventRecord, as_int, error_text, text
from runs.activity.timeline import Timeline
from runs.models import Command

# The marker Playwright's setContent logs: its plumbing, not the page's.
PLAYWRIGHT_MARKER = "--playwright--"
SCREENSHOT_METHODS = frozenset({"Page.captureScreenshot", "Page.printToPDF"})
DIALOG_METHOD = "Page.handleJavaScriptDialog"
# How long after a screenshot step its stored file still belongs to it.
SHOT_WINDOW = timedelta(seconds=10)

# How a CDP client connected (runtimes.cdp_proxy.ProxyGrant.client), and why a browser stopped.
CLIENT_KINDS = {
    "api_key": "a client with an API key",
    "connect_token": "a client through the connect URL",
    "browser_run": "a Browser Run client",
}
STOP_REASONS = {"idle": "no client for the keep_alive time"}
LIFECYCLE_LABELS = {
    "starting": "Browser starting",
    "started": "Browser started",
    "stopped": "Browser stopped",
    "failed": "Browser failed",
}


class PageEvents:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.dialogs: dict[str, Dialog] = {}  # the open dialog item by page
        self.screenshot: Item | None = None  # the latest screenshot step
        self.artifacts: dict[str, Item] = {}  # artifact items by id, for their download

    def console_message(self, ev: EventRecord) -> None:
        """Errors and warnings are items of their own; other messages in a row (same
        page, gaps < BURST_GAP, no other item in between) are one group."""
        level = str(ev.data.get("level") or "log")
        message = text(ev.data.get("text"))
        if message.startswith(PLAYWRIGHT_MARKER):
            return
        if level in ("error", "warning"):
            label = "Console error" if level == "error" else "Console warning"
            self.timeline.event_item(ev, "console.message", f"{label}: {message}", severity=level)
            return
        group = self.timeline.console
        if (
            group is None
            or group.page_id != ev.page_id
            or ev.time - group.last >= BURST_GAP
            or len(group.events) >= MAX_CHILDREN
        ):
            group = ConsoleGroup(
                id=f"act_{ev.id}", time=ev.time, type="console.message", page_id=ev.page_id,
                order=self.timeline.order, last=ev.time,
            )  # fmt: skip
            self.timeline.console = group
            self.timeline.add(group)
        group.events.append(ev.seq)
        group.last = ev.time
        group.extend_to(ev.time)
        group.children.append(
            child(ev.time, "console.message", f"Console {level}: {message}", events=[ev.seq])
        )

    def page_error(self, ev: EventRecord) -> None:
        message = text(str(ev.data.get("message") or "Unknown error").splitlines()[0])
        self.timeline.event_item(ev, "page.error", f"Page error: {message}", severity="error")

    def dialog(self, ev: EventRecord) -> None:
        kind = str(ev.data.get("type") or "dialog")
        label = {"alert": "Alert", "prompt": "Prompt"}.get(
            kind, "Leave-page dialog" if kind == "beforeunload" else "Dialog"
        )
        said = text(ev.data.get("message"))
        self.dialogs[ev.page_id] = self.timeline.add(
            Dialog(
                id=f"act_{ev.id}", time=ev.time, type="dialog", page_id=ev.page_id,
                order=self.timeline.order, events=[ev.seq],
                label=f'{label} "{said}"' if said else label,
            )
        )  # fmt: skip

    def has_dialog(self, page_id: str) -> bool:
        return self.dialogs.get(page_id) is not None

    def dialog_command(self, cmd: CommandRecord) -> None:
        """The client's answer to a dialog: part of the dialog's item."""
        item = self.dialogs[cmd.page_id]
        item.commands.append(cmd.id)
        append_call(item.follow, plumbing_child(cmd))
        if cmd.status != Command.Status.FAILED and item.accepted is None:
            item.accepted = bool(cmd.params.get("accept"))

    def dialog_closed(self, ev: EventRecord) -> None:
        item = self.dialogs.pop(ev.page_id, None)
        if item is None:
            return
        item.events.append(ev.seq)
        item.extend_to(ev.time)
        item.accepted = bool(ev.data.get("accepted"))

    def screenshot_command(self, cmd: CommandRecord) -> None:
        pdf = cmd.method == "Page.printToPDF"
        message = "Saved the page as a PDF" if pdf else "Took a screenshot"
        severity = "info"
        if cmd.status == Command.Status.FAILED:
            severity = "error"
            error = error_text(cmd.error)
            message = ("Saving the page as a PDF" if pdf else "A screenshot") + " failed"
            message += f": {error}" if error else ""
        item = self.timeline.add(
            Item(
                id=f"act_{cmd.id}", time=cmd.started_at, type="browser.screenshot",
                page_id=cmd.page_id, order=self.timeline.order, commands=[cmd.id],
                duration_ms=cmd.duration_ms, status=command_status(cmd.status),
                severity=severity, message=message,
            )
        )  # fmt: skip
        self.screenshot = item
        self.timeline.plumbing.step_grew(item, cmd.end)

    def artifact_created(self, ev: EventRecord) -> None:
        kind = str(ev.data.get("kind") or "file")
        name = text(ev.data.get("name") or "")
        stored = size(ev.data.get("size"))
        if kind == "screenshot":
            message = f"Captured a screenshot {name}".rstrip()
        else:
            message = f"Saved {kind} {name}".rstrip()
        message = f"{message} ({stored})" if stored else message
        shot = self.screenshot
        if kind == "screenshot" and shot is not None and ev.time - shot.time <= SHOT_WINDOW:
            # The file of the screenshot step just taken (POST /v1/runs/{id}/screenshot).
            self.screenshot = None
            shot.events.append(ev.seq)
            shot.children.append(child(ev.time, "artifact.created", message, events=[ev.seq]))
            return
        item = self.timeline.event_item(ev, "artifact.created", message)
        if ev.data.get("artifactId"):
            self.artifacts[str(ev.data["artifactId"])] = item

    def download(self, ev: EventRecord) -> None:
        name = text(ev.data.get("suggestedFilename") or ev.data.get("url") or "a file")
        item = self.timeline.event_item(ev, "download", f"Downloaded {name}")
        stored = self.artifacts.pop(str(ev.data.get("artifactId") or ""), None)
        if stored is not None:  # the file it was stored as is part of the download
            stored.hidden = True
            item.events[0:0] = stored.events
            item.children.append(
                child(stored.time, stored.type, stored.message, events=stored.events)
            )

    def target(self, ev: EventRecord) -> None:
        if ev.data.get("type") not in ("page", "tab"):
            return  # workers, iframes, the browser target: noise for a person
        url = text(ev.data.get("url"))
        blank = not url or url == "about:blank"
        if ev.type == "target.created":
            message = "Opened a new tab" + ("" if blank else f": {url}")
            self.timeline.event_item(ev, "tab.opened", message)
        else:
            self.timeline.event_item(
                ev, "tab.closed", "Closed a tab" + ("" if blank else f": {url}")
            )

    def connection(self, ev: EventRecord) -> None:
        client = CLIENT_KINDS.get(str(ev.data.get("client")), "a client")
        where = text(ev.data.get("remoteAddress") or "")
        if ev.type == "connection.opened":
            message = f"Connected {client}" + (f" from {where}" if where else "")
        else:
            seconds = as_int(ev.data.get("durationMs")) // 1000
            message = f"Disconnected {client} after {human_duration(seconds * 1000)}"
        self.timeline.event_item(ev, ev.type, message)

    def lifecycle(self, ev: EventRecord) -> None:
        state = str(ev.data.get("state") or "")
        reason = text(ev.data.get("reason") or "")
        reason = STOP_REASONS.get(reason, reason)
        message = LIFECYCLE_LABELS.get(state, f"Browser {state}".rstrip())
        if reason:
            message += f": {reason}"
        failed = state == "failed"
        self.timeline.event_item(
            ev,
            "runtime.lifecycle",
            message,
            severity="error" if failed else "info",
            status="failed" if failed else "info",
        )

    def other(self, ev: EventRecord) -> None:
        """Any other event: an item named after its type."""
        self.timeline.event_item(ev, "event", ev.type)
