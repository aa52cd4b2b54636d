"""The targets of a managed browser as its instrumentation knows them: every attached
target by its flat session, and the pages (open tabs) with their address, title and
order of use. The live view, the video and the screenshots read it; the
instrumentation (runtime_host/instrumentation.py) keeps it up to date."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Target:
    target_id: str
    type: str
    url: str
    session_id: str
    page_id: str  # the page target this one belongs to (itself for a page)
    script_id: str = ""  # Page.addScriptToEvaluateOnNewDocument identifier
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Network.requestWillBeSentExtraInfo that came before its request, by request id.
    request_extras: dict[str, dict[str, str]] = field(default_factory=dict)
    # Finished responses waiting a moment for their ExtraInfo headers, by request id.
    finishing: dict[str, dict[str, Any]] = field(default_factory=dict)


class Targets:
    def __init__(self) -> None:
        self.by_session: dict[str, Target] = {}
        self.sessions_by_target: dict[str, str] = {}
        self.page_infos: dict[str, dict[str, Any]] = {}  # page target id → {type, url}
        self.page_order: list[str] = []  # pages, least recently active first

    def attached(self) -> list[Target]:
        return list(self.by_session.values())

    def pages(self) -> list[Target]:
        """The attached page targets (not their frames or workers)."""
        return [target for target in self.by_session.values() if target.type == "page"]

    def touch(self, target_id: str) -> None:
        """The page was just used (navigated, attached, picked by a viewer)."""
        if target_id in self.page_order:
            self.page_order.remove(target_id)
        self.page_order.append(target_id)

    def last_active_page(self) -> Target | None:
        """The page used last, preferring one that shows something over a blank one."""
        pages = [
            self.by_session[s] for t in self.page_order if (s := self.sessions_by_target.get(t))
        ]
        real = [page for page in pages if page.url and not page.url.startswith("about:")]
        candidates = real or pages
        return candidates[-1] if candidates else None
