"""How the timeline names things: elements, places, durations, sizes, CDP methods.

Names come from the page itself (its roles and accessible names, its URLs and titles),
cut to a length a line can hold.
"""

from typing import Any
from urllib.parse import urlsplit

from runs.activity.items import Element
from runs.activity.records import as_number, error_text, text
from runs.cdp import INTERNAL_METHOD
from runs.control import BUSY_CODE
from runs.models import Command

MAX_NAME = 80
MAX_PLACE = 60

# How a role reads in a sentence ("Clicked button "Pay"", "into an unlabelled field").
ROLE_WORDS = {
    "button": "button",
    "link": "link",
    "checkbox": "checkbox",
    "radio": "radio button",
    "switch": "switch",
    "textbox": "field",
    "searchbox": "search field",
    "spinbutton": "number field",
    "combobox": "list",
    "listbox": "list",
    "option": "option",
    "slider": "slider",
    "tab": "tab",
    "menuitem": "menu item",
    "img": "image",
    "image": "image",
    "heading": "heading",
}


def element(data: dict[str, Any]) -> Element:
    """What an input touched, as the page's capture reported it."""
    return Element(
        role=text(data.get("role") or "")[:40] or None,
        name=short(data.get("name") or "") or None,
        masked=bool(data.get("masked")),
    )


def role_word(element: Element | None) -> str:
    return ROLE_WORDS.get(str(element.role or "") if element else "", "")


def element_phrase(element: Element | None, *, bare: bool = False) -> str:
    """How a step names its element: button "Pay", "Card number" (`bare`: the name
    alone, fields and lists need no role word), an unlabelled field, or "" (nothing)."""
    name, word = element.name if element else None, role_word(element)
    if name:
        return f'"{name}"' if bare or not word else f'{word} "{name}"'
    return f"an unlabelled {word}" if word else ""


def short(value: Any) -> str:
    """A name on one line, cut to MAX_NAME characters."""
    name = " ".join(str(value).split())
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def place(url: str, origins: set[str]) -> str:
    """A navigation's URL as a person reads it: in full the first time an origin is
    visited (it is added to `origins`), then its path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in origins:
        origins.add(origin)
        return url
    path = parts.path or "/"
    where = (
        path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )
    return where if len(where) <= MAX_PLACE else where[: MAX_PLACE - 1] + "…"


def method_label(method: str) -> str:
    """The CDP proxy groups a client library's own set-up calls (Emulation.*, Page.enable,
    …) into commands of INTERNAL_METHOD; a person reads them as set-up, not as steps."""
    return "Automation set-up calls" if method == INTERNAL_METHOD else method


def command_message(method: str, status: str, error: Any) -> str:
    if status != Command.Status.FAILED:
        return method_label(method)
    said = error_text(error)
    return f"{method_label(method)} failed" + (f": {said}" if said else "")


def command_status(status: str) -> str:
    """A command's status as an item's: succeeded, failed or running."""
    return {"failed": "failed", "pending": "running"}.get(status, "succeeded")


def failure(error: str, fallback: str) -> str:
    """How a failed input step ends its message: refused while a person controlled the
    browser, the error, or `fallback` when there is none."""
    if BUSY_CODE in error:
        return " — refused: a person was controlling the browser"
    return f" — failed: {error}" if error else fallback


def point(x: float, y: float) -> str:
    return f"({round(x)}, {round(y)})"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def times(name: str, count: int) -> str:
    return name if count == 1 else f"{name} {count} times"


def size(value: Any) -> str:
    """A file size as a person reads it: 230 bytes, 1.5 KB, … ("" when unknown)."""
    amount = as_number(value)
    if amount <= 0:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{int(amount)} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    return ""


def human_duration(ms: int | None) -> str:
    """1.2 s, 3 m 04 s, 2 h 05 m: short, and precise where it matters."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
