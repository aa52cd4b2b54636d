"""A run's saved browser profile (runs.profiles) in its browser: loaded when the browser
is bound (the cookies set, each origin's local storage and IndexedDB seeded into its pages
before their scripts run) and, for a profile that persists, saved back when the run stops."""

import asyncio
import functools
import logging
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from runs.cdp_client import CdpConnection
from runs.profiles import (
    MAX_INDEXEDDB_BYTES,
    clean_state,
    domains_of,
    empty_state,
    profile_save,
    profile_state,
)
from runtime_host.page_capture import evaluate_in_world
from runtime_host.parts import HostedBrowser

logger = logging.getLogger(__name__)

# Local storage keys of the profile seed script, left out of what a profile saves.
PROFILE_MARK = "__bctrl_profile"
# How long reading one page's storage may take when its run stops.
SAVE_TIMEOUT_S = 5.0


@functools.cache
def storage_source() -> str:
    return (settings.BASE_DIR / "static/js/storage.js").read_text()


def storage_expression() -> str:
    """What a page of an origin keeps: its local storage (less the seed's marks) and its
    IndexedDB databases (static/js/storage.js); null where the page may keep nothing."""
    return (
        f"(async () => {{ {storage_source()}\n"
        " let items; try { items = Object.entries(localStorage)"
        f".filter(([key]) => !key.startsWith('{PROFILE_MARK}')); }}"
        " catch (error) { return null; }"
        " let databases = {databases: [], failed: []};"
        " try { databases = await dumpIndexedDB(); }"
        " catch (error) { databases.failed.push(String(error && error.message)); }"
        " return {origin: location.origin, items, indexedDB: databases}; })()"
    )


def seed_script(run_id: str, origins: dict[str, Any]) -> str:
    """The script that gives a page of a profile origin its local storage and IndexedDB
    before the page's own scripts run, once per origin and run. Every document of the run
    runs it: one of another origin, or seeded already, returns before the saved state is
    built, and an origin's part is a string parsed only in that origin's pages."""
    seeds = {
        origin: orjson.dumps(
            {"localStorage": kept.get("localStorage", []), "indexedDB": kept.get("indexedDB", [])}
        ).decode()
        for origin, kept in origins.items()
    }
    mark = orjson.dumps(f"{PROFILE_MARK}:{run_id}").decode()
    return (
        f"(() => {{ if (!{orjson.dumps(list(origins)).decode()}.includes(location.origin))"
        f" return; const mark = {mark};"
        " try { if (localStorage.getItem(mark)) return; localStorage.setItem(mark, '1'); }"
        f" catch (error) {{ return; }}\n{storage_source()}\n"
        f" const kept = JSON.parse(({orjson.dumps(seeds).decode()})[location.origin]);"
        " for (const [key, value] of kept.localStorage) localStorage.setItem(key, value);"
        " try { seedIndexedDB(kept.indexedDB); } catch (error) {} })();"
    )


class ProfileSync:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser
        self.profile: dict[str, Any] | None = None  # the start's {"id", "name", "persist"}
        self.state = empty_state()
        # The script that seeds a page's local storage, sent to every page; "" for none.
        self.seed_script = ""

    @property
    def cdp(self) -> CdpConnection:
        assert self.browser.cdp is not None
        return self.browser.cdp

    @property
    def persists(self) -> bool:
        return bool(self.profile and self.profile.get("persist"))

    async def load(self, profile: dict[str, Any]) -> None:
        """Sets the profile's cookies in the browser's own context before any client
        connects, and prepares the script that gives each page of a profile origin its
        local storage before the page's scripts run (once per origin and run)."""
        self.profile = profile
        self.state = await sync_to_async(profile_state, thread_sensitive=False)(
            profile_id=profile["id"]
        )
        if self.state["cookies"]:
            await self.cdp.send("Storage.setCookies", {"cookies": self.state["cookies"]})
        if self.state["origins"]:
            self.seed_script = seed_script(self.browser.run.id, self.state["origins"])
        self.browser.writer.event(
            "profile.loaded", {"profileId": profile["id"], "name": profile["name"]}
        )

    async def save(self) -> None:
        """Saves the browser's cookies and the local storage and IndexedDB of its open
        pages' origins into the profile (origins not open keep what they had)."""
        assert self.profile is not None
        writer = self.browser.writer
        not_kept: list[str] = []
        try:
            answer = await self.cdp.send("Storage.getCookies", {}, timeout=5)
            expression = storage_expression()
            storages = await asyncio.gather(
                *(
                    evaluate_in_world(
                        self.cdp, page, expression, timeout=SAVE_TIMEOUT_S, await_promise=True
                    )
                    for page in self.browser.targets.pages()
                ),
                return_exceptions=True,
            )
            origins = dict(self.state["origins"])
            for storage in storages:
                if isinstance(storage, dict) and storage.get("origin", "null") != "null":
                    origin = storage["origin"]
                    databases, failed = kept_databases(origin, storage["indexedDB"])
                    not_kept += failed
                    origins[origin] = {"localStorage": storage["items"], "indexedDB": databases}
            state = clean_state(answer.get("cookies", []), origins)
            saved = await sync_to_async(profile_save, thread_sensitive=False)(
                profile_id=self.profile["id"], run=self.browser.run, state=state
            )
        except Exception as exc:
            logger.warning("Runtime %s: saving profile failed: %s", self.browser.runtime.id, exc)
            writer.event(
                "profile.save_failed", {"profileId": self.profile["id"], "reason": str(exc)}
            )
            return
        if saved:
            writer.event(
                "profile.saved",
                {
                    "profileId": self.profile["id"],
                    "name": self.profile["name"],
                    "domains": domains_of(state),
                    "cookieCount": len(state["cookies"]),
                    # IndexedDB databases that could not be read or were too large.
                    **({"notKept": not_kept} if not_kept else {}),
                },
            )


def kept_databases(origin: str, dump: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """An origin's IndexedDB databases as a profile keeps them, and what it leaves out:
    what the page could not read, and all of them past MAX_INDEXEDDB_BYTES of JSON."""
    failed = [f"{origin} {reason}" for reason in dump.get("failed", [])]
    databases = dump.get("databases", [])
    size = len(orjson.dumps(databases))
    if size > MAX_INDEXEDDB_BYTES:
        names = ", ".join(str(database.get("name")) for database in databases)
        failed.append(f"{origin} {names}: {size} bytes, over {MAX_INDEXEDDB_BYTES}")
        databases = []
    return databases, failed
