"""Human takeover of a live browser: the one controller lock of a runtime, and the only
CDP calls a viewer's input may become.

The lock is four columns of Runtime (`controller_*`), taken and given back with
conditional UPDATEs, so every web process sees the same holder. A holder with no input
for BCTRL_CONTROL_IDLE_S is released by its own connection, and a holder whose process
died is free for the next one after the same time. Each step is a run event
(`control.requested`, `control.granted`, `control.released`, with who and why; typed
text never) and a `control` notice to the run's group, which live viewers show and the
CDP proxy uses to refuse an automation's input with `runtime.controller_busy`.

Viewer messages (JSON, coordinates as fractions 0..1 of the picture the viewer shows):
`{"type": "mouse", "action": "down"|"up"|"move", "x", "y", "button", "clickCount",
"modifiers"}`, `{"type": "wheel", "x", "y", "deltaX", "deltaY"}`, `{"type": "key",
"action": "down"|"up", "key", "code", "text"?, "modifiers"}`, `{"type": "text", "text"}`.
`viewer_input` turns each into exactly one of INPUT_METHODS with page coordinates, or
refuses it; nothing else a viewer sends ever becomes a CDP call.
"""

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from runs.errors import Conflict
from runs.live import notify_run_changed
from runs.models import Run, Runtime
from runs.services import event_emit

# What a viewer's input may become (the runtime host checks it again).
INPUT_METHODS = frozenset(
    {"Input.dispatchMouseEvent", "Input.dispatchKeyEvent", "Input.insertText"}
)
# What an automation client may not send while a person holds control.
AUTOMATION_INPUT_METHODS = INPUT_METHODS | {
    "Input.dispatchTouchEvent",
    "Input.dispatchDragEvent",
    "Input.emulateTouchFromMouseEvent",
    "Input.imeSetComposition",
    "Input.synthesizePinchGesture",
    "Input.synthesizeScrollGesture",
    "Input.synthesizeTapGesture",
}
BUSY_CODE = "runtime.controller_busy"

MOUSE_ACTIONS = {"down": "mousePressed", "up": "mouseReleased", "move": "mouseMoved"}
BUTTONS = ("none", "left", "middle", "right")
KEY_ACTIONS = {"down", "up"}
MAX_TEXT = 1000
MAX_DELTA = 10_000.0
# Windows virtual key codes, without which Chromium ignores editing keys.
KEY_CODES = {
    "Backspace": 8, "Tab": 9, "Enter": 13, "Shift": 16, "Control": 17, "Alt": 18,
    "Escape": 27, " ": 32, "PageUp": 33, "PageDown": 34, "End": 35, "Home": 36,
    "ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40, "Delete": 46,
    "Meta": 91,
}  # fmt: skip


class InputRefused(ValueError):
    """A viewer message that is not input a person could type or click."""


@dataclass(frozen=True)
class Geometry:
    """The page area a screencast frame shows, in CSS pixels."""

    width: float
    height: float


def _fraction(message: dict[str, Any], name: str) -> float:
    value = message.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InputRefused(f"{name} must be a number from 0 to 1 (a fraction of the picture).")
    return float(value)


def _int(message: dict[str, Any], name: str, default: int, high: int) -> int:
    value = message.get(name, default)
    if type(value) is not int or not 0 <= value <= high:
        raise InputRefused(f"{name} must be an integer from 0 to {high}.")
    return value


def _short_text(message: dict[str, Any], name: str, limit: int, required: bool) -> str:
    value = message.get(name, None if required else "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise InputRefused(f"{name} must be text of at most {limit} characters.")
    return value


def _delta(message: dict[str, Any], name: str) -> float:
    value = message.get(name, 0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or abs(value) > MAX_DELTA:
        raise InputRefused(f"{name} must be a number of at most {MAX_DELTA:.0f} pixels.")
    return float(value)


def viewer_input(message: dict[str, Any], geometry: Geometry | None) -> tuple[str, dict[str, Any]]:
    """The CDP call (method, params) for one viewer input message, or InputRefused."""
    kind = message.get("type")
    if kind == "text":
        return "Input.insertText", {"text": _short_text(message, "text", MAX_TEXT, True)}
    if kind == "key":
        action = message.get("action")
        if action not in KEY_ACTIONS:
            raise InputRefused("action must be down or up.")
        key = _short_text(message, "key", 32, True)
        code = _short_text(message, "code", 32, False)
        text = _short_text(message, "text", 4, False)
        params: dict[str, Any] = {"key": key, "code": code}
        params["modifiers"] = _int(message, "modifiers", 0, 15)
        key_code = KEY_CODES.get(key) or (ord(key.upper()) if len(key) == 1 else 0)
        if key_code:
            params["windowsVirtualKeyCode"] = params["nativeVirtualKeyCode"] = key_code
        if action == "up":
            params["type"] = "keyUp"
        elif text:
            params.update(type="keyDown", text=text, unmodifiedText=text)
        else:
            params["type"] = "rawKeyDown"
        if key == "Enter" and action == "down":
            params.update(type="keyDown", text="\r", unmodifiedText="\r")
        return "Input.dispatchKeyEvent", params
    if kind not in ("mouse", "wheel"):
        raise InputRefused("Not an input message.")
    if geometry is None:
        raise InputRefused("There is no picture to point at yet.")
    x = round(_fraction(message, "x") * geometry.width, 1)
    y = round(_fraction(message, "y") * geometry.height, 1)
    modifiers = _int(message, "modifiers", 0, 15)
    if kind == "wheel":
        return "Input.dispatchMouseEvent", {
            "type": "mouseWheel",
            "x": x,
            "y": y,
            "deltaX": _delta(message, "deltaX"),
            "deltaY": _delta(message, "deltaY"),
            "modifiers": modifiers,
        }
    action = message.get("action")
    if action not in MOUSE_ACTIONS:
        raise InputRefused("action must be down, up or move.")
    button = message.get("button", "left" if action != "move" else "none")
    if button not in BUTTONS:
        raise InputRefused("button must be none, left, middle or right.")
    return "Input.dispatchMouseEvent", {
        "type": MOUSE_ACTIONS[action],
        "x": x,
        "y": y,
        "button": button,
        "clickCount": _int(message, "clickCount", 1 if action != "move" else 0, 3),
        "modifiers": modifiers,
    }


# The lock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    key: str
    name: str


def control_holder(runtime_id: str) -> Holder | None:
    """Who holds control now (a holder idle past the timeout holds nothing)."""
    row = (
        Runtime.objects.filter(pk=runtime_id)
        .exclude(controller_key="")
        .filter(controller_active_at__gte=_idle_before())
        .values("controller_key", "controller_name")
        .first()
    )
    return Holder(row["controller_key"], row["controller_name"]) if row else None


def _idle_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.BCTRL_CONTROL_IDLE_S)


def _emit(run: Run, type: str, data: dict[str, Any]) -> None:
    """A control event, unless the run has ended meanwhile (then there is nothing to log)."""
    with contextlib.suppress(Conflict):
        event_emit(run=run, type=type, data=data)


def control_request(*, run: Run, key: str, name: str, viewer: str) -> Holder | None:
    """Asks for control for `key`; the holder afterwards (`key`'s if granted), or None
    when the run or its runtime is no longer live."""
    if (
        run.runtime_id is None
        or not Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).exists()
    ):
        return None
    _emit(run, "control.requested", {"who": name, "viewer": viewer})
    now = timezone.now()
    free = Q(controller_key="") | Q(controller_key=key) | Q(controller_active_at__lt=_idle_before())
    previous = Runtime.objects.filter(pk=run.runtime_id).values_list("controller_key", flat=True)
    earlier = previous.first() or ""
    taken = Runtime.objects.filter(free, pk=run.runtime_id, status=Runtime.Status.RUNNING).update(
        controller_key=key, controller_name=name, controller_since=now, controller_active_at=now
    )
    if not taken:
        return control_holder(run.runtime_id)
    if earlier not in ("", key):
        # The earlier holder went quiet (or its process went away) past the idle timeout.
        _emit(run, "control.released", {"reason": "idle", "viewer": ""})
    _emit(run, "control.granted", {"who": name, "viewer": viewer})
    notify_run_changed(run.id, "control", holder=name)
    return Holder(key, name)


def control_touch(*, runtime_id: str, key: str) -> bool:
    """Marks the holder active; False when `key` no longer holds control."""
    return bool(
        Runtime.objects.filter(pk=runtime_id, controller_key=key).update(
            controller_active_at=timezone.now()
        )
    )


def control_release(*, run: Run, key: str, name: str, viewer: str, reason: str) -> bool:
    """Gives control back if `key` holds it; `reason` is requested, disconnected, idle,
    revoked, ended or refused (the viewer sent a message the live view refuses)."""
    assert run.runtime_id is not None
    released = Runtime.objects.filter(pk=run.runtime_id, controller_key=key).update(
        controller_key="", controller_name="", controller_since=None, controller_active_at=None
    )
    if not released:
        return False
    _emit(run, "control.released", {"who": name, "viewer": viewer, "reason": reason})
    notify_run_changed(run.id, "control", holder=None)
    return True
