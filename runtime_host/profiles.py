"""A run's saved browser profile (runs.profiles) in its browser: loaded when the browser
is bound (the cookies set, each origin's local storage seeded into its pages before
their scripts run) and, for a profile that persists, saved back when the run stops."""

import asyncio
import logging
from typing import Any

import orjson
from asgiref.sync import sync_to_async

from runs.cdp_client import CdpConnection
from runs.profiles import clean_state, domains_of, empty_state, profile_save, profile_state
from runtime_host.page_capture import evaluate_in_world
from runtime_host.parts import HostedBrowser

logger = logging.getLogger(__name__)

# Local storage keys of the profile seed script, left out of what a profile saves.
PROFILE_MARK = "__bctrl_profile"
STORAGE_EXPRESSION = (
    "(() => { try { return {origin: location.origin, items: Object.entries(localStorage)"
    f".filter(([key]) => !key.startsWith('{PROFILE_MARK}'))}}; }}"
    " catch (error) { return null; } })()"
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
        seeds = {
            origin: storage["localStorage"] for origin, storage in self.state["origins"].items()
        }
        if seeds:
            mark = orjson.dumps(f"{PROFILE_MARK}:{self.browser.run.id}").decode()
            self.seed_script = (
                f"(() => {{ const items = ({orjson.dumps(seeds).decode()})[location.origin];"
                f" if (!items) return; const mark = {mark};"
                " try { if (localStorage.getItem(mark)) return;"
                " for (const [key, value] of items) localStorage.setItem(key, value);"
                " localStorage.setItem(mark, '1'); } catch (error) {} })();"
            )
        self.browser.writer.event(
            "profile.loaded", {"profileId": profile["id"], "name": profile["name"]}
        )

    async def save(self) -> None:
        """Saves the browser's cookies and the local storage of its open pages into the
        profile (origins not open keep what they had)."""
        assert self.profile is not None
        writer = self.browser.writer
        try:
            answer = await self.cdp.send("Storage.getCookies", {}, timeout=5)
            storages = await asyncio.gather(
                *(
                    evaluate_in_world(self.cdp, page, STORAGE_EXPRESSION, timeout=2)
                    for page in self.browser.targets.pages()
                ),
                return_exceptions=True,
            )
            origins = dict(self.state["origins"])
            for storage in storages:
                if isinstance(storage, dict) and storage.get("origin", "null") != "null":
                    origins[storage["origin"]] = {"localStorage": storage["items"]}
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
                },
            )
