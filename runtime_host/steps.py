"""What the page's input capture (static/js/inputs.js) tells the host, made into run
events: `input` {kind, role, name, masked, frame, …} and `page.title` {url, title}.

A page may send anything through its binding (the capture runs beside the page's own
scripts, which can reach neither it nor the binding, but a page is never trusted): every
field is checked and bounded here, and what is not understood is dropped.
"""

from typing import Any

from runs.cdp import json_object

MAX_NAME = 120
MAX_ROLE = 40
MAX_URL = 2000
MAX_LIST = 10
INPUT_KINDS = frozenset({"click", "type", "select", "check", "upload", "scroll"})
BUTTONS = frozenset({"left", "middle", "right"})
# Roles that say nothing about what was touched: the page's guess is better.
VAGUE_ROLES = frozenset({"", "generic", "none", "presentation", "StaticText", "InlineTextBox"})


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not -1_000_000 < value < 1_000_000:
        return None
    return round(value)


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [text for item in value[:MAX_LIST] if (text := _text(item, MAX_NAME))]


def record_of(payload: Any) -> dict[str, Any] | None:
    """The capture's record in a binding call's payload, if it is a JSON object."""
    return json_object(payload) if isinstance(payload, str) and payload else None


def input_event(record: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(event type, data) of one record of the capture, or None for anything else."""
    kind = record.get("kind")
    if kind == "page":
        return "page.title", {
            "url": _text(record.get("url"), MAX_URL),
            "title": _text(record.get("title"), MAX_NAME),
        }
    if kind not in INPUT_KINDS:
        return None
    data: dict[str, Any] = {
        "kind": kind,
        "role": _text(record.get("role"), MAX_ROLE),
        "name": _text(record.get("name"), MAX_NAME),
    }
    if record.get("masked") is True:
        data["masked"] = True
    if record.get("frame") is True:
        data["frame"] = True
    if kind == "click":
        for key in ("x", "y", "clickCount"):
            number = _number(record.get(key))
            if number is not None:
                data[key] = number
        button = record.get("button")
        data["button"] = button if button in BUTTONS else "left"
    elif kind == "scroll":
        data = {"kind": kind, "dx": _number(record.get("dx")) or 0}
        data["dy"] = _number(record.get("dy")) or 0
        if record.get("frame") is True:
            data["frame"] = True
    elif kind == "select":
        data["options"] = _names(record.get("options"))
    elif kind == "check":
        data["checked"] = record.get("checked") is True
    elif kind == "upload":
        data["files"] = _names(record.get("files"))
        count = _number(record.get("fileCount"))
        data["fileCount"] = count if count is not None and count >= 0 else len(data["files"])
    return "input", data


def accessible_element(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """{role, name} of the element that Accessibility.getPartialAXTree answered for, as
    Chromium computes them (label, aria-*, text, placeholder…), without vague roles."""
    node = next((n for n in nodes if isinstance(n, dict) and not n.get("ignored")), None)
    if node is None:
        return {}
    found = {}
    name = _text((node.get("name") or {}).get("value"), MAX_NAME)
    if name:
        found["name"] = name
    role = _text((node.get("role") or {}).get("value"), MAX_ROLE)
    if role not in VAGUE_ROLES:
        found["role"] = role
    return found


def named(data: dict[str, Any], accessible: dict[str, str]) -> dict[str, Any]:
    """The input's element named: the name the page computed at the moment of the input
    (a click can rename its own button before the host asks), else Chromium's; the
    role Chromium gives, else the page's guess."""
    return {
        **data,
        "name": data.get("name") or accessible.get("name", ""),
        "role": accessible.get("role") or data.get("role", ""),
    }
