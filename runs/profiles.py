"""Browser profiles: a space's named browser state that outlives a run.

A start names a profile (`profileId`); its runtime host sets the profile's cookies in the
browser before the client connects and gives each page of an origin the profile's local
storage and IndexedDB before the page's own scripts run. With `persist: true` the run is
the profile's one writer until it ends, and the host saves the browser's cookies and the
local storage and IndexedDB of its open pages' origins back when the run stops. The state
is JSON `{"cookies": [CDP CookieParam…], "origins": {origin: {"localStorage": [[key,
value]…], "indexedDB": [database…]}}}` (a database as static/js/storage.js reads it: its
version, stores, indexes and records, values as tagged JSON), stored encrypted
(runs.sealed) and never logged or answered: the API shows a profile's domains, not its
values.
"""

from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from runs.errors import ApiError, Conflict, NotFound
from runs.models import Profile, Run, Space
from runs.sealed import InvalidToken, seal, unseal

# What Storage.setCookies takes of what Storage.getCookies answers.
COOKIE_FIELDS = (
    "name",
    "value",
    "domain",
    "path",
    "secure",
    "httpOnly",
    "sameSite",
    "expires",
    "priority",
    "sourceScheme",
    "sourcePort",
    "partitionKey",
)
# The largest state a profile keeps (encrypted bytes).
MAX_STATE_BYTES = 5 * 1024 * 1024
# The most IndexedDB an origin keeps (JSON bytes); an origin with more keeps none.
MAX_INDEXEDDB_BYTES = 2 * 1024 * 1024


def empty_state() -> dict[str, Any]:
    return {"cookies": [], "origins": {}}


def clean_state(cookies: list[dict[str, Any]], origins: dict[str, Any]) -> dict[str, Any]:
    """A state to keep from what the browser answered: cookies as Storage.setCookies takes
    them (a session cookie without its expiry) and each origin's local storage and
    IndexedDB databases, for origins that have either."""
    kept = []
    for cookie in cookies:
        param = {name: cookie[name] for name in COOKIE_FIELDS if name in cookie}
        if cookie.get("session") or (param.get("expires") or -1) < 0:
            param.pop("expires", None)
        kept.append(param)
    return {
        "cookies": kept,
        "origins": {
            origin: {
                "localStorage": storage.get("localStorage", []),
                "indexedDB": storage.get("indexedDB", []),
            }
            for origin, storage in origins.items()
            if storage.get("localStorage") or storage.get("indexedDB")
        },
    }


def domains_of(state: dict[str, Any]) -> list[str]:
    names = {str(cookie.get("domain", "")).lstrip(".") for cookie in state["cookies"]}
    names |= {urlsplit(origin).hostname or origin for origin in state["origins"]}
    return sorted(name for name in names if name)


def contents_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """What a profile holds per origin, without a value: how many local storage items,
    and each IndexedDB database's name, version and its stores' record counts."""
    return [
        {
            "origin": origin,
            "localStorageItems": len(kept.get("localStorage", [])),
            "indexedDB": [
                {
                    "name": database.get("name"),
                    "version": database.get("version"),
                    "stores": [
                        {"name": store.get("name"), "records": len(store.get("records", []))}
                        for store in database.get("stores", [])
                    ],
                }
                for database in kept.get("indexedDB", [])
            ],
        }
        for origin, kept in sorted(state["origins"].items())
    ]


def profiles_of(space: Space) -> QuerySet[Profile]:
    return Profile.objects.filter(space=space).select_related("writer_run")


def profile_of(space: Space, profile_id: str) -> Profile:
    profile = profiles_of(space).filter(pk=profile_id).first()
    if profile is None:
        raise NotFound(f"No profile {profile_id!r}.", code="profile.not_found")
    return profile


def profile_create(*, space: Space, name: str) -> Profile:
    try:
        with transaction.atomic():
            return Profile.objects.create(space=space, name=name)
    except IntegrityError:
        raise Conflict(
            f"This space has a profile named {name!r} already.",
            code="profile.name_taken",
            details={"name": name},
        ) from None


def profile_delete(*, profile: Profile) -> None:
    with transaction.atomic():
        locked = (
            Profile.objects.select_for_update(of=("self",))
            .select_related("writer_run")
            .get(pk=profile.pk)
        )
        if locked.in_use:
            raise Conflict(
                f"Profile {locked.id} is in use by run {locked.writer_run_id}, which saves it "
                "when it ends; stop that run first.",
                code="profile.in_use",
                details={"runId": locked.writer_run_id},
            )
        locked.delete()


def profile_claim(*, space: Space, profile_id: str, persist: bool) -> Profile:
    """Within a start's transaction, before its run is made: the profile it loads, locked;
    with `persist`, 409 profile.in_use while another running run will save into it. The
    start then makes its run the writer (profile_take)."""
    locked = (
        Profile.objects.select_for_update(of=("self",))
        .select_related("writer_run")
        .filter(space=space, pk=profile_id)
        .first()
    )
    if locked is None:
        raise NotFound(f"No profile {profile_id!r}.", code="profile.not_found")
    if persist and locked.in_use:
        raise Conflict(
            f"Profile {locked.id} is being written by run {locked.writer_run_id}; one run at "
            "a time may save a profile (start without persist to only load it).",
            code="profile.in_use",
            details={"runId": locked.writer_run_id},
        )
    return locked


def profile_take(*, profile: Profile, run: Run) -> None:
    """`run` is the one that saves into the claimed profile when it ends."""
    Profile.objects.filter(pk=profile.pk).update(writer_run=run)


def profile_state(*, profile_id: str) -> dict[str, Any]:
    """The decrypted state for a runtime host (empty if the profile is gone or its key)."""
    profile = Profile.objects.filter(pk=profile_id).only("state").first()
    if profile is None or not profile.state:
        return empty_state()
    try:
        state: dict[str, Any] = unseal(profile.state)
    except InvalidToken:
        return empty_state()
    return state


def profile_save(*, profile_id: str, run: Run, state: dict[str, Any]) -> bool:
    """Saves what the run's browser holds, if the run is still the profile's writer;
    False otherwise (the profile was deleted, or another run took it after this ended)."""
    token = seal(state)
    if len(token) > MAX_STATE_BYTES:
        raise ApiError(
            f"The browser's state is {len(token)} bytes; a profile keeps {MAX_STATE_BYTES}.",
            code="profile.too_large",
            status_code=413,
        )
    saved = Profile.objects.filter(pk=profile_id, writer_run=run).update(
        state=token,
        size=len(token),
        domains=domains_of(state),
        cookie_count=len(state["cookies"]),
        saved_at=timezone.now(),
        saved_by_run_id=run.id,
        writer_run=None,
    )
    return bool(saved)
