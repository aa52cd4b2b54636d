"""Folding protocol plumbing into the steps it served.

A client's commands that are no step of their own (Runtime.callFunctionOn, DOM.*, a
library's set-up calls, …) are never a top-level item when a step explains them: those
less than FOLD_BEFORE before a step on its page are its preparation, else those less
than FOLD_AFTER after a step's last record are its follow-up; what no step claims is one
collapsed "N automation calls" item.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from runs.activity.items import MAX_CHILDREN, MAX_SOURCE_REFS, Child, Item, PlumbingGroup, child
from runs.activity.naming import command_status, method_label
from runs.activity.records import CommandRecord, as_int, error_text, same_page
from runs.cdp import INTERNAL_METHOD
from runs.models import Command

FOLD_BEFORE = timedelta(seconds=2)
FOLD_AFTER = timedelta(seconds=1)
PLUMBING_GAP = timedelta(seconds=2)
# While a run is live its latest plumbing waits this long (FOLD_BEFORE and the proxy's
# batching) for the step it may be preparing, so that no item shows and then vanishes.
HOLD_BACK = timedelta(seconds=4)
# CDP errors that are housekeeping, not failures: a client releasing or asking about
# an object, node, context or target that the page has already let go of.
HARMLESS_ERRORS = (
    "cannot find context with specified id",
    "execution context was destroyed",
    "cannot find default execution context",
    "inspected target navigated or closed",
    "no node with given id",
    "could not find node with given id",
    "no node found for given backend id",
    "node is detached from document",
    "node does not have a layout object",
    "frame with the given id was not found",
    "no frame for given id found",
    "no target with given id",
    "no session with given id",
    "session with given id not found",
    "target closed",
    "could not find object with given id",
    "cannot find object with id",
    "not attached to an active page",
)


class Plumbing:
    """The latest steps, and the plumbing commands not yet folded into one of them."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items  # the timeline's: plumbing no step claimed is appended to it
        self.group: PlumbingGroup | None = None
        self.last_step: Item | None = None  # the latest step, and its latest record's time
        self.step_last: datetime | None = None
        self.page_steps: dict[str, tuple[Item, datetime]] = {}  # the same, by page

    def begin_step(self, item: Item) -> None:
        """A step starts: the plumbing just before it was its preparation."""
        group = self.group
        if group is not None:
            if item.time - group.last <= FOLD_BEFORE and same_page(group.page_id, item.page_id):
                self.group = None
                item.prep[0:0] = group.children
                item.commands[0:0] = group.commands
            else:
                self.flush()
        self.last_step, self.step_last = item, item.time
        if item.page_id:
            self.page_steps[item.page_id] = (item, item.time)

    def step_grew(self, item: Item, at: datetime) -> None:
        """A step took another record: plumbing close after `at` still follows it."""
        if item is self.last_step and (self.step_last is None or at > self.step_last):
            self.step_last = at
        known = self.page_steps.get(item.page_id)
        if known is not None and known[0] is item and at > known[1]:
            self.page_steps[item.page_id] = (item, at)

    def command(self, cmd: CommandRecord, order: int) -> None:
        """A command that is no step of its own: a child of the step it prepared (the
        next one, FOLD_BEFORE away at most) or else of the step it followed (FOLD_AFTER
        after that step's last record), else of one collapsed "N automation calls" item."""
        call = plumbing_child(cmd)
        group = self.group
        if group is not None and (
            cmd.started_at - group.last > PLUMBING_GAP or not same_page(group.page_id, cmd.page_id)
        ):
            self.flush()
            group = None
        if group is None:
            group = PlumbingGroup(
                id=f"act_{cmd.id}", time=cmd.started_at, type="automation",
                page_id=cmd.page_id, order=order, last=cmd.started_at,
            )  # fmt: skip
            followed = self.page_steps.get(cmd.page_id) or (
                (self.last_step, self.step_last) if self.last_step and self.step_last else None
            )
            if followed is not None and cmd.started_at - followed[1] <= FOLD_AFTER:
                group.followed = followed[0]
            self.group = group
        group.commands.append(cmd.id)
        group.last = max(group.last, cmd.started_at)
        group.calls += calls(cmd)
        group.pending += cmd.status == Command.Status.PENDING
        group.page_id = group.page_id or cmd.page_id
        group.extend_to(cmd.end)
        append_call(group.children, call)

    def flush(self, *, hold_back: bool = False) -> None:
        """Plumbing that no step claimed becomes its own collapsed item; while the run is
        live (`hold_back`), the latest group waits HOLD_BACK for the step it may be
        preparing."""
        group = self.group
        if group is None:
            return
        if hold_back and timezone.now() - group.last < HOLD_BACK:
            return
        self.group = None
        followed = group.followed
        if followed is not None:
            followed.commands.extend(group.commands)
            for call in group.children:
                append_call(followed.follow, call)
            return
        group.message = f"{group.calls} automation call{'' if group.calls == 1 else 's'}"
        group.status = "running" if group.pending else "succeeded"
        self.items.append(group)


def harmless(cmd: CommandRecord) -> bool:
    """A failed command that is housekeeping (set-up chatter, releasing what the page
    already dropped): not a failure a person needs to see."""
    if cmd.method == INTERNAL_METHOD:
        return True
    said = error_text(cmd.error).lower()
    return any(pattern in said for pattern in HARMLESS_ERRORS)


def calls(cmd: CommandRecord) -> int:
    """How many CDP calls a command stands for: the proxy's set-up bursts count theirs."""
    if cmd.method == INTERNAL_METHOD:
        return max(1, as_int(cmd.params.get("count")))
    return 1


def plumbing_child(cmd: CommandRecord) -> Child:
    failed = cmd.status == Command.Status.FAILED
    call = child(
        cmd.started_at,
        "command",
        method_label(cmd.method),
        status="info" if failed else command_status(cmd.status),
        duration_ms=cmd.duration_ms,
        commands=[cmd.id],
    )
    call["method"] = cmd.method
    call["calls"] = calls(cmd)
    if failed:  # housekeeping: said, not failed
        call["message"] += f" (the page had moved on: {error_text(cmd.error)})"
    return call


def append_call(children: list[Child], call: Child) -> None:
    """Consecutive calls of one method read as one child: "Runtime.callFunctionOn (4 times)"."""
    last = children[-1] if children else None
    if (
        last is not None
        and last.get("method") == call["method"]
        and last["status"] == call["status"]
        and call["status"] != "info"
    ):
        last["calls"] += call["calls"]
        last["message"] = f"{method_label(call['method'])} ({last['calls']} times)"
        last["source"]["commands"] = (last["source"]["commands"] + call["source"]["commands"])[
            :MAX_SOURCE_REFS
        ]
        last["durationMs"] = (last["durationMs"] or 0) + (call["durationMs"] or 0)
        return
    if len(children) < MAX_CHILDREN:
        children.append(call)
