"""Bursts: typing, scrolling, clicks and a method's repeated calls, as one step each.

A client's input commands on one page, each less than BURST_GAP after the previous one
and not interrupted by another command (mouse moves aside) or by a navigation of that
page, are one step. The page reports what each input touched (`input` events, from
static/js/inputs.js and runtime_host/steps.py), which names the step; an input no
command made (a person in the live view) is a step of its own from that report.
"""

from datetime import timedelta
from typing import Any, TypeVar

from runs.activity.items import (
    MAX_CHILDREN,
    Burst,
    Choice,
    Click,
    CommandGroup,
    Element,
    PressedKey,
    Scroll,
    TypedText,
    Typing,
    child,
)
from runs.activity.naming import command_message, command_status, element
from runs.activity.records import (
    CommandRecord,
    EventRecord,
    as_int,
    as_number,
    error_text,
    same_page,
)
from runs.activity.timeline import Timeline
from runs.models import Command

BURST_GAP = timedelta(seconds=2)
DOUBLE_CLICK_GAP = timedelta(milliseconds=800)
DRAG_DISTANCE = 5.0
# How far from the input command the page's report of that input may be.
INPUT_WINDOW = timedelta(seconds=2)
INPUT_EARLY = timedelta(milliseconds=500)
# How many of the latest input items a report of the page is matched against.
RECENT_INPUTS = 20

REDACTED = "[redacted]"
KEY_METHODS = frozenset({"Input.dispatchKeyEvent", "Input.insertText"})
MOUSE_METHOD = "Input.dispatchMouseEvent"
MODIFIER_KEYS = frozenset({"Shift", "Control", "Alt", "Meta", "CapsLock", "AltGraph"})
# CDP modifier bits: Alt=1, Ctrl=2, Meta=4, Shift=8. Shift alone makes capitals, not shortcuts.
SHORTCUT_MODIFIERS = ((2, "Control"), (1, "Alt"), (4, "Meta"))
SHORTCUT_BITS = 1 | 2 | 4

AnyBurst = TypeVar("AnyBurst", bound=Burst)


class Bursts:
    """The open foreground burst, and the recent input items the page's reports name."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.foreground: Burst | None = None  # the open typing/scroll/click/command item
        self.inputs: list[Burst] = []  # recent click, typing and scroll items

    def interrupt(self, page_id: str | None = None) -> None:
        """Another action began (on `page_id`, when given): no burst continues."""
        if page_id is None or (
            self.foreground is not None and same_page(self.foreground.page_id, page_id)
        ):
            self.foreground = None

    # Commands ------------------------------------------------------------------------

    def key(self, cmd: CommandRecord) -> None:
        item = self._open(Typing, cmd)
        if item is None:
            item = self._start(
                Typing(
                    id=f"act_{cmd.id}", time=cmd.started_at, type="browser.type",
                    page_id=cmd.page_id, order=self.timeline.order, status="succeeded",
                    last=cmd.started_at,
                )
            )  # fmt: skip
        self._join(item, cmd)
        chars, key, redacted = keystroke(cmd.method, cmd.params)
        segments = item.segments
        last = segments[-1] if segments else None
        if chars or redacted:
            item.chars += chars
            item.redacted = item.redacted or redacted
            if isinstance(last, TypedText):
                last.chars += chars
                last.redacted = last.redacted or redacted
                last.commands.append(cmd.id)
            else:
                segments.append(TypedText(chars, redacted, cmd.started_at, [cmd.id]))
        elif key is not None:
            if isinstance(last, PressedKey) and last.key == key:
                last.count += 1
                last.commands.append(cmd.id)
            else:
                segments.append(PressedKey(key, 1, cmd.started_at, [cmd.id]))
        elif last is not None:
            last.commands.append(cmd.id)  # a keyUp belongs to what it ends

    def scroll(self, cmd: CommandRecord) -> None:
        item = self._open(Scroll, cmd)
        if item is None:
            item = self._start(
                Scroll(
                    id=f"act_{cmd.id}", time=cmd.started_at, type="browser.scroll",
                    page_id=cmd.page_id, order=self.timeline.order, status="succeeded",
                    last=cmd.started_at,
                )
            )  # fmt: skip
        self._join(item, cmd)
        item.dx += as_number(cmd.params.get("deltaX"))
        item.dy += as_number(cmd.params.get("deltaY"))

    def press(self, cmd: CommandRecord) -> None:
        x, y = as_number(cmd.params.get("x")), as_number(cmd.params.get("y"))
        button = str(cmd.params.get("button") or "left")
        item = self.foreground
        if (
            isinstance(item, Click)
            and item.released
            and item.page_id == cmd.page_id
            and item.button == button
            and as_int(cmd.params.get("clickCount")) >= 2
            and cmd.started_at - item.last < DOUBLE_CLICK_GAP
            and distance(item.x, item.y, x, y) <= DRAG_DISTANCE
        ):
            item.clicks = as_int(cmd.params.get("clickCount"))
            item.released = False
        else:
            item = self._start(
                Click(
                    id=f"act_{cmd.id}", time=cmd.started_at, type="browser.click",
                    page_id=cmd.page_id, order=self.timeline.order, status="succeeded",
                    last=cmd.started_at, x=x, y=y, button=button,
                )
            )  # fmt: skip
        self._join(item, cmd)

    def release(self, cmd: CommandRecord) -> None:
        item = self.foreground
        if not isinstance(item, Click) or item.released or item.page_id != cmd.page_id:
            self.other_command(cmd)  # a release without its press: show it as is
            return
        self._join(item, cmd)
        x, y = as_number(cmd.params.get("x")), as_number(cmd.params.get("y"))
        item.released = True
        if distance(item.x, item.y, x, y) > DRAG_DISTANCE:
            item.to = (x, y)

    def other_command(self, cmd: CommandRecord) -> None:
        """A command shown as itself (a CDP error the client saw, …): consecutive ones of
        one method collapse into one item."""
        failed = cmd.status == Command.Status.FAILED
        item = self.foreground
        if not (
            isinstance(item, CommandGroup)
            and item.method == cmd.method
            and item.page_id == cmd.page_id
            and item.is_failed == failed
            and len(item.commands) < MAX_CHILDREN
        ):
            item = self._start(
                CommandGroup(
                    id=f"act_{cmd.id}", time=cmd.started_at, type="command",
                    page_id=cmd.page_id, order=self.timeline.order, status="succeeded",
                    last=cmd.started_at, method=cmd.method, is_failed=failed,
                )
            )  # fmt: skip
        self._join(item, cmd)
        item.children.append(
            child(
                cmd.started_at,
                "command",
                command_message(cmd.method, cmd.status, cmd.error),
                status=command_status(cmd.status),
                severity="error" if failed else "info",
                duration_ms=cmd.duration_ms,
                commands=[cmd.id],
            )
        )

    def _open(self, kind: type[AnyBurst], cmd: CommandRecord) -> AnyBurst | None:
        """The open foreground item if `cmd` continues it, else None."""
        item = self.foreground
        if not isinstance(item, kind) or item.page_id != cmd.page_id:
            return None
        if cmd.started_at - item.last >= BURST_GAP:
            return None
        return item

    def _start(self, item: AnyBurst) -> AnyBurst:
        self.timeline.add(item)
        self.foreground = item
        if not isinstance(item, CommandGroup):
            self._remember(item)
        return item

    def _join(self, item: Burst, cmd: CommandRecord) -> None:
        item.commands.append(cmd.id)
        item.last = cmd.started_at
        if cmd.status == Command.Status.FAILED:
            item.failed += 1
            if item.failed == 1:
                item.error = error_text(cmd.error)
        elif cmd.status == Command.Status.PENDING:
            item.pending += 1
        item.extend_to(cmd.end)
        self.timeline.plumbing.step_grew(item, cmd.end)

    def _remember(self, item: Burst) -> None:
        self.inputs = [*self.inputs[-(RECENT_INPUTS - 1) :], item]

    # What the page said each input touched -------------------------------------------

    def page_input(self, ev: EventRecord) -> None:
        kind = ev.data.get("kind")
        touched = element(ev.data)
        if kind == "click":
            self._input_click(ev, touched)
        elif kind == "type":
            self._input_type(ev, touched)
        elif kind in ("select", "check", "upload"):
            self._input_choice(ev, str(kind), touched)
        elif kind == "scroll":
            self._input_scroll(ev)

    def _recent(self, ev: EventRecord, kind: type[AnyBurst]) -> AnyBurst | None:
        """The latest click or typing item of the page that this report of the page can
        be about: started by a command just before it (or a moment after)."""
        for item in reversed(self.inputs):
            if not isinstance(item, kind) or not same_page(item.page_id, ev.page_id):
                continue
            if item.failed:
                continue  # refused or failed: the page never had that input
            if item.time - INPUT_EARLY <= ev.time <= item.last + INPUT_WINDOW:
                return item
        return None

    def _input_click(self, ev: EventRecord, touched: Element) -> None:
        item = self._recent(ev, Click)
        if item is not None and (item.element is None or as_int(ev.data.get("clickCount")) > 1):
            item.events.append(ev.seq)
            if item.element is None:
                item.element = touched
            return
        # A click no command made: a person in the live view.
        item = self.timeline.add(
            Click(
                id=f"act_{ev.id}", time=ev.time, type="browser.click", page_id=ev.page_id,
                order=self.timeline.order, status="succeeded", events=[ev.seq],
                element=touched, last=ev.time,
                x=as_number(ev.data.get("x")), y=as_number(ev.data.get("y")),
                button=str(ev.data.get("button") or "left"),
                clicks=max(1, as_int(ev.data.get("clickCount"))), released=True,
            )
        )  # fmt: skip
        self._remember(item)

    def _input_type(self, ev: EventRecord, touched: Element) -> None:
        item = self._recent(ev, Typing)
        if item is None:
            # Typing no command made: a person in the live view.
            item = self.timeline.add(
                Typing(
                    id=f"act_{ev.id}", time=ev.time, type="browser.type", page_id=ev.page_id,
                    order=self.timeline.order, status="succeeded", last=ev.time,
                )
            )  # fmt: skip
            self._remember(item)
        item.events.append(ev.seq)
        if not item.fields or item.fields[-1].name != touched.name:
            item.fields.append(touched)
        if item.element is None:
            item.element = touched

    def _input_scroll(self, ev: EventRecord) -> None:
        item = self._recent(ev, Scroll)
        if item is not None:  # the wheel commands already say how far
            item.events.append(ev.seq)
            return
        # Scrolling no command made: a person in the live view.
        self.timeline.add(
            Scroll(
                id=f"act_{ev.id}", time=ev.time, type="browser.scroll", page_id=ev.page_id,
                order=self.timeline.order, status="succeeded", events=[ev.seq], last=ev.time,
                dx=as_number(ev.data.get("dx")), dy=as_number(ev.data.get("dy")),
            )
        )  # fmt: skip

    def _input_choice(self, ev: EventRecord, kind: str, touched: Element) -> None:
        """A list's option chosen, a box checked, files uploaded: a step of its own, or
        what the click that did it really was."""
        type = f"browser.{kind}"
        click = self._recent(ev, Click) if kind == "check" else None
        if click is not None and click.type == "browser.click":
            click.type = type
            click.events.append(ev.seq)
            click.element = touched
            click.choice = ev.data
            return
        self.timeline.add(
            Choice(
                id=f"act_{ev.id}", time=ev.time, type=type, page_id=ev.page_id,
                order=self.timeline.order, status="succeeded", events=[ev.seq],
                element=touched, choice=ev.data,
            )
        )  # fmt: skip


def keystroke(method: str, params: dict[str, Any]) -> tuple[int, str | None, bool]:
    """(characters typed, special key pressed, whether text was redacted) of one command.

    Typed text is never kept, since it may be a secret: only its length, and the names
    of special keys (Enter, Tab, Backspace, shortcuts such as Control+a)."""
    text = params.get("text")
    if method == "Input.insertText":
        if text == REDACTED and as_int(params.get("length")) > 0:
            return as_int(params.get("length")), None, False  # the proxy kept its length
        if not isinstance(text, str) or text == REDACTED:
            return 0, None, True
        return len(text), None, False
    kind = params.get("type")
    key = str(params.get("key") or "")
    if kind not in ("keyDown", "rawKeyDown", "char") or key in MODIFIER_KEYS:
        return 0, None, False
    if key == REDACTED:  # a printable key whose value the proxy hid: one character
        return (0, None, False) if kind == "rawKeyDown" else (1, None, False)
    if len(key) > 1:  # a named key: Enter, Tab, Backspace, ArrowLeft, F5, …
        if kind == "char":
            return 0, None, False  # its rawKeyDown already counted it
        return 0, shortcut(params, key), False
    if kind != "char" and key and as_int(params.get("modifiers")) & SHORTCUT_BITS:
        return 0, shortcut(params, key), False
    if kind == "rawKeyDown":
        return 0, None, False  # the char event that follows carries the text
    if text == REDACTED:  # one key's text, hidden by the proxy: one character
        return 1, None, False
    return (len(text), None, False) if isinstance(text, str) and text else (0, None, False)


def shortcut(params: dict[str, Any], key: str) -> str:
    modifiers = [name for bit, name in SHORTCUT_MODIFIERS if as_int(params.get("modifiers")) & bit]
    return "+".join([*modifiers, key])


def distance(x1: float, y1: float, x2: float, y2: float) -> float:
    return float(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5)
