"""The message of an item that grew: written once, when the item is rendered.

Bursts, groups and navigations take records until the timeline is read; what they say
("Typed 16 characters into "Card number"", "Double-clicked button "Open"", "Navigated
to Checkout — /demo/checkout (HTTP 404)") is written from what they gathered, here.
"""

from typing import Any

from runs.activity.items import (
    MAX_CHILDREN,
    Burst,
    Child,
    Choice,
    Click,
    CommandGroup,
    ConsoleGroup,
    Dialog,
    Element,
    Item,
    Navigation,
    PressedKey,
    Scroll,
    TypedText,
    Typing,
    child,
)
from runs.activity.naming import (
    command_status,
    element_phrase,
    failure,
    method_label,
    plural,
    point,
    role_word,
    short,
    times,
)
from runs.activity.records import as_int, error_text, text
from runs.models import Command


def render(item: Item) -> dict[str, Any]:
    """The item's JSON, its message written from what it gathered."""
    finish(item)
    return item.as_json()


def finish(item: Item) -> None:
    if isinstance(item, Burst):
        item.status = "failed" if item.failed else "running" if item.pending else "succeeded"
        item.severity = "error" if item.failed else "info"
    if isinstance(item, Typing):
        _finish_typing(item)
    elif isinstance(item, Scroll):
        _finish_scroll(item)
    elif isinstance(item, Click):
        _finish_click(item)
    elif isinstance(item, CommandGroup):
        _finish_commands(item)
    elif isinstance(item, ConsoleGroup):
        _finish_console(item)
    elif isinstance(item, Dialog):
        _finish_dialog(item)
    elif isinstance(item, Choice):
        item.message = choice_message(item.type, item.element, item.choice)
    elif isinstance(item, Navigation):
        _finish_navigation(item)


def _finish_typing(item: Typing) -> None:
    parts = []
    if item.chars or item.redacted:
        typed = plural(item.chars, "character") if item.chars else ""
        if item.redacted:
            typed = f"{typed} and redacted text" if typed else "redacted text"
        parts.append(f"typed {typed}")
    keys = [segment for segment in item.segments if isinstance(segment, PressedKey)]
    if keys:
        names = [times(segment.key, segment.count) for segment in keys[:5]]
        parts.append("pressed " + ", ".join(names) + (", …" if len(keys) > 5 else ""))
    if item.fields:
        names = [element_phrase(field, bare=True) or "a field" for field in item.fields[:3]]
        where = " and ".join(names) + (" and others" if len(item.fields) > 3 else "")
        if len(parts) == 2 or (parts and parts[0].startswith("typed")):
            parts[0] += f" into {where}"
        elif parts:
            parts[0] += f" in {where}"
        else:
            parts.append(f"typed into {where}")
    message = ", ".join(parts) or "pressed keys"
    item.message = message[0].upper() + message[1:]
    if item.failed:
        item.message += failure(item.error, f" ({item.failed} failed)")
    item.children = [_typing_child(segment) for segment in item.segments[:MAX_CHILDREN]]


def _typing_child(segment: TypedText | PressedKey) -> Child:
    if isinstance(segment, PressedKey):
        message = f"Pressed {times(segment.key, segment.count)}"
        return child(segment.time, "browser.key", message, commands=segment.commands)
    if segment.chars:
        message = f"Typed {plural(segment.chars, 'character')}"
        if segment.redacted:
            message += " and redacted text"
    else:
        message = "Typed redacted text"
    return child(segment.time, "browser.type", message, commands=segment.commands)


def _finish_scroll(item: Scroll) -> None:
    parts = []
    if item.dy:
        parts.append(f"{'down' if item.dy > 0 else 'up'} {round(abs(item.dy))} px")
    if item.dx:
        parts.append(f"{'right' if item.dx > 0 else 'left'} {round(abs(item.dx))} px")
    item.message = "Scrolled " + " and ".join(parts) if parts else "Scrolled"


def _finish_click(item: Click) -> None:
    at = point(item.x, item.y)
    if item.to is not None:
        item.type = "browser.drag"
        item.message = f"Dragged from {at} to {point(*item.to)}"
        return
    if item.choice:
        item.message = choice_message(item.type, item.element, item.choice)
    else:
        verb = "Clicked"
        if item.clicks == 2:
            verb = "Double-clicked"
        elif item.clicks > 2:
            verb = f"Clicked {item.clicks} times"
        if item.button in ("right", "middle"):
            verb = f"{item.button.capitalize()}-{verb[0].lower()}{verb[1:]}"
        what = element_phrase(item.element)
        item.message = f"{verb} {what}" if what else f"{verb} at {at}"
    if item.failed:
        item.message += failure(item.error, " (failed)")


def _finish_commands(item: CommandGroup) -> None:
    count = len(item.commands)
    if count == 1:
        item.message = item.children[0]["message"]
        item.duration_ms = item.children[0]["durationMs"]
        item.children = []
    else:
        failed = " failed" if item.is_failed else ""
        item.message = f"{method_label(item.method)}{failed} ({count} times)"


def _finish_console(item: ConsoleGroup) -> None:
    if len(item.events) == 1:
        item.message = item.children[0]["message"]
        item.children = []
        item.duration_ms = None
    else:
        first = item.children[0]["message"]
        item.message = f"{len(item.events)} console messages, starting with {first}"


def _finish_navigation(item: Navigation) -> None:
    cmd = item.command
    url = item.url
    if cmd is None:
        item.status = "succeeded"
    else:
        item.status = command_status(cmd.status)
        if item.duration_ms is None:
            item.duration_ms = cmd.duration_ms
        url = url or text(cmd.params.get("url") or "")
    verb = {"reload": "Reloaded", "back_forward": "Went back or forward to"}.get(
        str(item.transition), "Navigated to"
    )
    if cmd is not None and cmd.method == "Page.reload" and not item.url:
        verb = "Reloaded"
    if cmd is not None and cmd.status == Command.Status.FAILED:
        item.severity = "error"
        error = error_text(cmd.error)
        item.message = f"Navigation to {url} failed" + (f": {error}" if error else "")
    elif cmd is not None and cmd.status == Command.Status.PENDING and not item.events:
        item.message = f"Navigating to {url}"
    else:
        place = item.place or url
        where = f"{item.title} — {place}" if item.title and place else place
        item.message = f"{verb} {where}".rstrip() if where else verb.replace(" to", "")
        if item.http:
            item.message += f" (HTTP {item.http})"
            item.status = "failed"


def _finish_dialog(item: Dialog) -> None:
    if item.accepted is None:
        item.message = f"{item.label} shown"
    elif item.label.startswith("Alert"):
        item.message = f"{item.label} closed"
    else:
        item.message = f"{item.label} {'accepted' if item.accepted else 'dismissed'}"


def choice_message(type: str, element: Element | None, choice: dict[str, Any]) -> str:
    """What choosing did: "Selected "Red" in "Colour"", "Checked "I agree"", "Uploaded
    receipt.pdf to "Attachment""."""
    if type == "browser.select":
        where = element_phrase(element, bare=True) or "a list"
        options = [f'"{short(option)}"' for option in choice.get("options") or []]
        if not options:
            return f"Cleared the choice in {where}"
        return f"Selected {', '.join(options[:3])}{', …' if len(options) > 3 else ''} in {where}"
    if type == "browser.check":
        what = element_phrase(element, bare=True) or f"an unlabelled {role_word(element)}"
        if element is not None and element.role == "radio":
            return f"Chose {what}"
        return f"{'Checked' if choice.get('checked') else 'Unchecked'} {what}"
    where = element_phrase(element, bare=True) or "a file field"
    files = choice.get("files") or []
    count = as_int(choice.get("fileCount")) or len(files)
    if not count:
        return f"Cleared the files of {where}"
    if count == 1 and files:
        return f"Uploaded {files[0]} to {where}"
    listed = ", ".join(files[:3]) + (", …" if count > 3 else "")
    return f"Uploaded {count} files ({listed}) to {where}"
