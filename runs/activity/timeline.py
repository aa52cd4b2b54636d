"""The items made so far, and what every part of the fold consults as it adds one."""

from typing import TypeVar

from runs.activity.folding import Plumbing
from runs.activity.items import STEP_TYPES, ConsoleGroup, Item
from runs.activity.records import EventRecord

AnyItem = TypeVar("AnyItem", bound=Item)


class Timeline:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.order = 0  # the number of the record being folded
        self.console: ConsoleGroup | None = None  # the open group of info console messages
        self.plumbing = Plumbing(self.items)

    def add(self, item: AnyItem) -> AnyItem:
        """A new item: it closes the open console group, and a step takes the plumbing
        that prepared it."""
        self.items.append(item)
        if item is not self.console:
            self.console = None
        if item.type in STEP_TYPES:
            self.plumbing.begin_step(item)
        return item

    def event_item(
        self,
        ev: EventRecord,
        type: str,
        message: str,
        *,
        severity: str = "info",
        status: str = "info",
    ) -> Item:
        """An item of one event."""
        return self.add(
            Item(
                id=f"act_{ev.id}", time=ev.time, type=type, page_id=ev.page_id,
                order=self.order, message=message, severity=severity, status=status,
                events=[ev.seq],
            )
        )  # fmt: skip
