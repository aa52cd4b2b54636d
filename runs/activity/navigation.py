"""Navigations, and the network records a person needs to see.

A `Page.navigate` / `Page.reload` command and the `navigation` event that follows it
within NAV_WINDOW are one step, named by the page's title and its URL; a document that
answered an error says so on its navigation. Failed, blocked and erroring requests are
items of their own; other requests and responses are noise.
"""

from datetime import timedelta
from urllib.parse import urlsplit

from runs.activity.items import Item, Navigation
from runs.activity.naming import place, without_fragment
from runs.activity.records import CommandRecord, EventRecord, as_int, ms, same_page, text
from runs.activity.timeline import Timeline

NAV_WINDOW = timedelta(seconds=10)
NAV_SLACK = timedelta(seconds=1)
NAV_METHODS = frozenset({"Page.navigate", "Page.reload"})


class Navigations:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.nav_command: Navigation | None = None  # a navigate command awaiting its event
        self.nav_event: Navigation | None = None  # a navigation event item without a command
        self.latest: dict[str, Navigation] = {}  # the latest navigation item by page
        # A page's title reported before the host's navigation event of its URL.
        self.early_titles: dict[str, tuple[str, str, int]] = {}  # page → (url, title, seq)
        self.origins: set[str] = set()  # origins a navigation already named in full
        self.request_methods: dict[str, str] = {}  # requestId → method
        self.documents: dict[str, str] = {}  # requestId → page, of document requests
        # A document's error status that came before its navigation, by (page, url).
        self.pending_status: dict[tuple[str, str], tuple[Item, int]] = {}

    def command(self, cmd: CommandRecord) -> None:
        """Page.navigate or Page.reload: the step of the navigation event that follows it
        (or that came a moment before it)."""
        pending = self.nav_event
        self.nav_event = None
        if (
            pending is not None
            and same_page(pending.page_id, cmd.page_id)
            and pending.time >= cmd.started_at - NAV_SLACK
        ):
            pending.commands.append(cmd.id)
            pending.command = cmd
            return
        self.nav_command = self.timeline.add(
            Navigation(
                id=f"act_{cmd.id}", time=cmd.started_at, type="browser.navigate",
                page_id=cmd.page_id, order=self.timeline.order, commands=[cmd.id],
                command=cmd,
            )
        )  # fmt: skip

    def navigation(self, ev: EventRecord) -> None:
        url = text(ev.data.get("url"))
        awaited = self._awaiting(ev)
        if awaited is not None:
            pending, cmd = awaited
            self.nav_command = None
            pending.events.append(ev.seq)
            pending.transition = ev.data.get("transition")
            if cmd.duration_ms is None:
                pending.duration_ms = ms(ev.time - cmd.started_at)
            self._navigated(pending, url, ev.page_id)
            return
        item = self.timeline.add(
            Navigation(
                id=f"act_{ev.id}", time=ev.time, type="browser.navigate", page_id=ev.page_id,
                order=self.timeline.order, status="succeeded", events=[ev.seq],
                transition=ev.data.get("transition"),
            )
        )  # fmt: skip
        self.nav_event = item
        self._navigated(item, url, ev.page_id)

    def _awaiting(self, ev: EventRecord) -> tuple[Navigation, CommandRecord] | None:
        """The navigate command a navigation event is the outcome of, if any: on its page,
        from a moment before the command to NAV_WINDOW after it."""
        pending = self.nav_command
        cmd = pending.command if pending is not None else None
        if pending is None or cmd is None or not same_page(pending.page_id, ev.page_id):
            return None
        if cmd.started_at - NAV_SLACK <= ev.time <= max(cmd.started_at, cmd.end) + NAV_WINDOW:
            return pending, cmd
        return None

    def _navigated(self, item: Navigation, url: str, page_id: str) -> None:
        """The navigation of a page to `url`, told by its event (or, before it, by the
        page's title): a later title or document status of that URL is its."""
        # A command the proxy could not place on a tab (sent on a session it had not yet
        # tied to one) is of the page its navigation happened in.
        item.page_id = item.page_id or page_id
        if not (item.place and item.url == url):  # placed once, by the first to tell it
            item.place = place(url, self.origins)
        item.url = url
        self.latest[item.page_id] = item
        early = self.early_titles.pop(item.page_id, None)
        if early is not None and without_fragment(early[0]) == without_fragment(url):
            item.title = early[1]
            item.events.append(early[2])
        pending = self.pending_status.pop((item.page_id, url), None)
        if pending is not None:
            http_item, status = pending
            _answered(item, status, http_item)

    def page_title(self, ev: EventRecord) -> None:
        item = self.latest.get(ev.page_id)
        url = text(ev.data.get("url"))
        if item is not None and without_fragment(item.url or "") == without_fragment(url):
            item.title = text(ev.data.get("title"))
            item.events.append(ev.seq)
        elif (awaited := self._titled_command(ev, url)) is not None:
            # The page of a navigate command whose navigation event has not come (or
            # never will: the host can miss it): the page's own title and address name
            # the step; the event, if it comes, still joins it.
            self._navigated(awaited, url, ev.page_id)
            awaited.title = text(ev.data.get("title"))
            awaited.events.append(ev.seq)
        else:  # its navigation event may come next
            self.early_titles[ev.page_id] = (url, text(ev.data.get("title")), ev.seq)

    def _titled_command(self, ev: EventRecord, url: str) -> Navigation | None:
        """The navigate command still waiting for its event that a page's title of `url`
        answers: on that page, to that address, within its window."""
        awaited = self._awaiting(ev)
        if awaited is None:
            return None
        pending, cmd = awaited
        wanted = text(cmd.params.get("url") or "")
        return pending if wanted and without_fragment(wanted) == without_fragment(url) else None

    def request(self, ev: EventRecord) -> None:
        request_id = ev.data.get("requestId")
        if request_id is not None:
            self.request_methods[str(request_id)] = text(ev.data.get("method") or "GET")
            if ev.data.get("resourceType") == "Document":
                self.documents[str(request_id)] = ev.page_id

    def response(self, ev: EventRecord) -> None:
        method = self.request_methods.pop(str(ev.data.get("requestId")), None)
        document = self.documents.pop(str(ev.data.get("requestId")), None)
        status = as_int(ev.data.get("status"))
        if status < 400:
            return
        url = text(ev.data.get("url"))
        if document is None and urlsplit(url).path == "/favicon.ico":
            return  # the browser asks every site for one: a missing icon is no one's error
        item = self.timeline.event_item(
            ev,
            "network.http_error",
            f"{method or 'GET'} {url} returned HTTP {status}",
            severity="error" if status >= 500 else "warning",
            status="failed",
        )
        if document is None:
            return
        # A page answered with an error: said by its navigation, when there is one.
        navigation = self.latest.get(ev.page_id)
        if (
            navigation is not None
            and navigation.url == url
            and ev.time - navigation.time <= NAV_WINDOW
        ):
            _answered(navigation, status, item)
        else:
            self.pending_status[(ev.page_id, url)] = (item, status)

    def failed(self, ev: EventRecord) -> None:
        known = self.request_methods.pop(str(ev.data.get("requestId")), None)
        document = self.documents.pop(str(ev.data.get("requestId")), None)
        method = text(ev.data.get("method") or known or "GET")
        error = text(ev.data.get("errorText") or "unknown error")
        url = text(ev.data.get("url"))
        if error == "net::ERR_ABORTED" or ev.data.get("canceled"):
            return  # cancelled by the page or the browser (navigated away, a download)
        message = f"Request failed: {method} {url} — {error}"
        if document is not None:
            message = f"Navigation to {url} failed: {error}"
        self.timeline.event_item(ev, "network.failed", message, severity="error", status="failed")

    def blocked(self, ev: EventRecord) -> None:
        self.request_methods.pop(str(ev.data.get("requestId")), None)
        url = text(ev.data.get("url"))
        reason = text(ev.data.get("reason") or "not allowed")
        self.timeline.event_item(
            ev, "network.blocked", f"Blocked {url}: {reason}", severity="error", status="failed"
        )


def _answered(navigation: Navigation, status: int, http_item: Item) -> None:
    """A document answered an error: its navigation says so, and the error's own item
    is folded into it."""
    http_item.hidden = True
    navigation.http = status
    navigation.events.extend(http_item.events)
    navigation.severity = "error" if status >= 500 else "warning"
