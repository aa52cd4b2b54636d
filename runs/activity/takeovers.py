"""A person at the browser: takeovers through the live view, and handoffs.

Both are one item from their start to their end (`durationMs` is the span, which the
replay timeline draws), running until then.
"""

from runs.activity.items import Handoff, Takeover
from runs.activity.naming import human_duration
from runs.activity.records import EventRecord, text
from runs.activity.timeline import Timeline

# Why control was handed back (control.released's reason).
RELEASES = {
    "requested": "handed back",
    "disconnected": "the viewer left",
    "idle": "idle for too long",
    "revoked": "the viewer link ended",
    "ended": "the run ended",
}


class Takeovers:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.takeover: Takeover | None = None  # a person's control, from grant to release
        self.pending_control: dict[str, EventRecord] = {}  # requests by viewer, until granted
        self.handoffs: dict[str, Handoff] = {}  # open handoffs by id, until they end

    def control(self, ev: EventRecord) -> None:
        """A takeover is one item from grant to release; a request that was not granted
        is an item of its own."""
        who = text(ev.data.get("who") or "someone")
        viewer = str(ev.data.get("viewer") or "")
        if ev.type == "control.requested":
            if self.takeover is not None:
                holder = self.takeover.who
                self.timeline.event_item(
                    ev, ev.type, f"{who} asked for control while {holder} held it"
                )
            else:
                self.pending_control[viewer] = ev  # folded into the grant that follows
            return
        if ev.type == "control.granted":
            self.pending_control.pop(viewer, None)
            self.takeover = self.timeline.add(
                Takeover(
                    id=f"act_{ev.id}", time=ev.time, type="control.takeover",
                    page_id=ev.page_id, order=self.timeline.order, events=[ev.seq],
                    message=f"{who} took control of the browser", status="running", who=who,
                )
            )  # fmt: skip
            return
        item = self.takeover
        reason = RELEASES.get(str(ev.data.get("reason")), "released")
        if item is None:  # a release without its grant in view
            self.timeline.event_item(ev, "control.released", f"Control handed back ({reason})")
            return
        self.takeover = None
        item.events.append(ev.seq)
        item.extend_to(ev.time)
        item.status = "succeeded"
        item.message = (
            f"{item.who} controlled the browser for "
            f"{human_duration(item.duration_ms or 0)} ({reason})"
        )

    def unanswered(self) -> None:
        """Requests that were never granted (someone else held control)."""
        for ev in self.pending_control.values():
            who = text(ev.data.get("who") or "someone")
            self.timeline.event_item(ev, "control.requested", f"{who} asked for control")
        self.pending_control.clear()

    def handoff(self, ev: EventRecord) -> None:
        """An automation's request that a person do a step, from the request to its end.
        Never what the person typed: that is the takeover's, which shows no text either."""
        handoff_id = str(ev.data.get("handoffId") or "")
        if ev.type == "handoff.requested":
            asked = text(ev.data.get("instructions") or "")
            self.handoffs[handoff_id] = self.timeline.add(
                Handoff(
                    id=f"act_{ev.id}", time=ev.time, type="handoff", page_id=ev.page_id,
                    order=self.timeline.order, events=[ev.seq],
                    message=f"Asked a person: {asked}", severity="warning", status="running",
                    instructions=asked,
                )
            )  # fmt: skip
            return
        found = self.handoffs.pop(handoff_id, None)
        if found is None:  # its request is not in view
            said = f"A request for a person {ev.type.split('.')[-1]}"
            self.timeline.event_item(ev, "handoff", said)
            return
        found.events.append(ev.seq)
        found.extend_to(ev.time)
        asked = found.instructions
        took = human_duration(found.duration_ms or 0)
        if ev.type == "handoff.completed":
            who = text(ev.data.get("who") or "A person")
            note = text(ev.data.get("note") or "")
            found.message = f"{who} did what was asked ({took}): {asked}"
            if note:
                found.message += f' — "{note}"'
            found.status, found.severity = "succeeded", "info"
        elif ev.type == "handoff.expired":
            found.message = f"Nobody did what was asked within {took}: {asked}"
            found.status = "failed"
        else:
            found.message = f"The request for a person was withdrawn after {took}: {asked}"
            found.status, found.severity = "succeeded", "info"
