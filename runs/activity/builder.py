"""The fold: the run's records, in time order, into its items, in one pass.

Commands are the foreground (what the client did) and interrupt each other's bursts;
events other than navigations are background (what the page did) and never interrupt a
typing, scroll or click burst. Each kind of record is handed to the part of the fold
that knows it; this module says which, and when a burst ends.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from runs.activity.folding import harmless
from runs.activity.grouping import KEY_METHODS, MOUSE_METHOD, Bursts
from runs.activity.items import Item
from runs.activity.naming import human_duration
from runs.activity.navigation import NAV_METHODS, Navigations
from runs.activity.page_events import DIALOG_METHOD, SCREENSHOT_METHODS, PageEvents
from runs.activity.records import CommandRecord, EventRecord, Record, error_text
from runs.activity.takeovers import Takeovers
from runs.activity.timeline import Timeline
from runs.models import Command, Run


class Builder:
    """Folds the merged records into items, keeping a few open items."""

    def __init__(self) -> None:
        self.timeline = Timeline()
        self.bursts = Bursts(self.timeline)
        self.navigations = Navigations(self.timeline)
        self.page = PageEvents(self.timeline)
        self.takeovers = Takeovers(self.timeline)
        self.event_handlers: dict[str, Callable[[EventRecord], None]] = {
            "navigation": self.navigation,
            "network.request": self.navigations.request,
            "network.response": self.navigations.response,
            "network.failed": self.navigations.failed,
            "network.blocked": self.navigations.blocked,
            "network.usage": lambda ev: None,  # noise
            "console.message": self.page.console_message,
            "page.error": self.page.page_error,
            "dialog": self.page.dialog,
            "dialog.closed": self.page.dialog_closed,
            "input": self.bursts.page_input,
            "page.title": self.navigations.page_title,
            "download": self.page.download,
            "target.created": self.page.target,
            "target.closed": self.page.target,
            "artifact.created": self.page.artifact_created,
            "runtime.lifecycle": self.page.lifecycle,
            "connection.opened": self.page.connection,
            "connection.closed": self.page.connection,
            "control.requested": self.takeovers.control,
            "control.granted": self.takeovers.control,
            "control.released": self.takeovers.control,
            "handoff.requested": self.takeovers.handoff,
            "handoff.completed": self.takeovers.handoff,
            "handoff.expired": self.takeovers.handoff,
            "handoff.cancelled": self.takeovers.handoff,
        }

    @property
    def items(self) -> list[Item]:
        return self.timeline.items

    def feed(self, record: Record) -> None:
        self.timeline.order += 1
        if record[1] == "e":
            self.event(*record[2])
        else:
            self.command(*record[2])

    def finish(self, *, live: bool) -> None:
        """No record follows: what is still open is said as it stands (while the run is
        `live`, its latest plumbing may yet be claimed by a step, and waits)."""
        self.takeovers.unanswered()
        self.timeline.plumbing.flush(hold_back=live)

    def command(
        self,
        id: str,
        method: str,
        params: Any,
        status: str,
        page_id: str,
        started_at: datetime,
        ended_at: datetime | None,
        duration_ms: int | None,
        error: Any,
    ) -> None:
        params = params if isinstance(params, dict) else {}
        cmd = CommandRecord(
            id, method, params, status, page_id, started_at, ended_at, duration_ms, error
        )
        mouse = params.get("type") if method == MOUSE_METHOD else None
        if mouse == "mouseMoved":
            return  # noise: no item, and it interrupts nothing
        if mouse == "mouseWheel":
            self.bursts.scroll(cmd)
        elif mouse == "mousePressed":
            self.bursts.press(cmd)
        elif mouse == "mouseReleased":
            self.bursts.release(cmd)
        elif method in KEY_METHODS:
            self.bursts.key(cmd)
        elif method in NAV_METHODS:
            self.bursts.interrupt()
            self.navigations.command(cmd)
        elif method in SCREENSHOT_METHODS:
            self.bursts.interrupt()
            self.page.screenshot_command(cmd)
        elif method == DIALOG_METHOD and self.page.has_dialog(page_id):
            self.page.dialog_command(cmd)
        elif cmd.status == Command.Status.FAILED and not harmless(cmd):
            self.bursts.other_command(cmd)  # a CDP error the client saw: loud, on its own
        else:
            self.bursts.interrupt()  # a new action begins: no typing or scroll continues
            self.timeline.plumbing.command(cmd, self.timeline.order)

    def event(self, id: str, seq: int, time: datetime, type: str, page_id: str, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        ev = EventRecord(id, seq, time, type, page_id, data)
        handler = self.event_handlers.get(type, self.page.other)
        handler(ev)

    def navigation(self, ev: EventRecord) -> None:
        self.bursts.interrupt(ev.page_id)  # a navigation of its page ends a burst
        self.navigations.navigation(ev)


def run_items(run: Run) -> list[Item]:
    """The run's own items, from the Run row: its start, and its end once it ended."""
    items = [
        Item(
            id=f"act_{run.id}_started",
            time=run.started_at,
            type="run.started",
            page_id="",
            order=0,
            message=f"Run {run.name} started" if run.name else "Run started",
            status="running" if run.is_active else "info",
        )
    ]
    if run.ended_at is not None and not run.is_active:
        failed = run.status == Run.Status.FAILED
        took = human_duration(run.current_duration_ms)
        if failed:
            error = error_text(run.error)
            message = f"Run failed after {took}" + (f": {error}" if error else "")
        else:
            message = f"Run completed in {took}"
        items.append(
            Item(
                id=f"act_{run.id}_ended",
                time=run.ended_at,
                type="run.failed" if failed else "run.completed",
                page_id="",
                order=0,
                message=message,
                status="failed" if failed else "succeeded",
                severity="error" if failed else "info",
                duration_ms=run.current_duration_ms,
            )
        )
    return items
