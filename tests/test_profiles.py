"""Browser profiles: the API (create, list, inspect without values, delete, one writer at
a time, tenancy), encryption at rest, and in real Chromium a person signed in to the demo
shop in one run who is still signed in, with the page's local storage and IndexedDB, at
the next start."""

import asyncio
from typing import Any

import pytest
from bctrl import Bctrl
from cryptography.fernet import Fernet

from runs import profiles, services
from runs.models import Profile, Run, Runtime
from runs.sealed import seal, unseal
from runtime_host.host import RuntimeHost
from runtime_host.profiles import kept_databases
from runtimes import services as runtime_services
from tests.conftest import Tenant, fake_host, start_runtime, stop_runtime

COOKIE = {
    "name": "session",
    "value": "very-secret-cookie-value",
    "domain": "shop.example.com",
    "path": "/",
    "secure": True,
    "httpOnly": True,
    "session": True,
    "expires": -1,
}


# A page's own IndexedDB: a store keyed in its values with an index, one keyed apart, and
# values of the kinds a structured clone holds and JSON does not.
WRITE_INDEXEDDB = """async () => {
  const db = await new Promise((resolve, reject) => {
    const opening = indexedDB.open("shop", 3);
    opening.onupgradeneeded = () => {
      const orders = opening.result.createObjectStore(
        "orders", {keyPath: "id", autoIncrement: true});
      orders.createIndex("by_day", "day");
      opening.result.createObjectStore("drafts");
    };
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
  const tx = db.transaction(["orders", "drafts"], "readwrite");
  tx.objectStore("orders").put({
    day: "mon", when: new Date(1700000000000), bytes: new Uint8Array([1, 2, 255]),
    tags: new Map([["gift", true]]), seen: new Set([3, 4]), score: NaN, missing: undefined,
    big: 12345678901234567890n, photo: new Blob(["png?"], {type: "image/png"}),
    nested: {deep: [1, {"$bctrl": "not a tag"}]},
  });
  tx.objectStore("orders").put({day: "tue"});
  tx.objectStore("drafts").put("half-typed note", "note-1");
  await new Promise((resolve) => { tx.oncomplete = resolve; });
  db.close();
}"""

# What the page finds at its first open, before anything else of it runs.
FIRST_OPEN = """if (location.protocol === "http:") window.__firstOpen = new Promise((resolve) => {
  const opening = indexedDB.open("shop");
  opening.onsuccess = () => {
    const db = opening.result;
    try {
      const read = db.transaction("orders").objectStore("orders").count();
      read.onsuccess = () => { resolve({version: db.version, orders: read.result}); db.close(); };
    } catch (error) { resolve({version: db.version, error: error.message}); }
  };
  opening.onerror = () => resolve({error: String(opening.error)});
});"""

READ_INDEXEDDB = """async () => {
  const db = await new Promise((resolve) => {
    const opening = indexedDB.open("shop");
    opening.onsuccess = () => resolve(opening.result);
  });
  const ask = (request) => new Promise((resolve) => {
    request.onsuccess = () => resolve(request.result);
  });
  const tx = db.transaction(["orders", "drafts"], "readwrite");
  const orders = tx.objectStore("orders");
  const [first] = await ask(orders.index("by_day").getAll("mon"));
  const added = await ask(orders.put({day: "wed"}));
  const note = await ask(tx.objectStore("drafts").get("note-1"));
  db.close();
  return {
    when: first.when instanceof Date && first.when.getTime(),
    bytes: [first.bytes.constructor.name, Array.from(first.bytes)],
    tags: [...first.tags.entries()], seen: [...first.seen], score: Number.isNaN(first.score),
    missing: "missing" in first && first.missing === undefined,
    big: typeof first.big === "bigint" && String(first.big),
    photo: [first.photo.type, await first.photo.text()], nested: first.nested,
    added, note,
  };
}"""


def create(tenant: Tenant, name: str) -> Any:
    return tenant.client.post("/v1/profiles", {"name": name}, format="json")


def start(tenant: Tenant, runtime: Runtime, body: dict[str, Any]) -> Any:
    return tenant.client.post(f"/v1/runtimes/{runtime.id}/start", body, format="json")


@pytest.mark.django_db(transaction=True)
def test_profiles_are_listed_inspected_and_deleted_in_their_space(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    made = create(tenant, "shop account")
    assert made.status_code == 201
    profile = made.json()
    assert profile["name"] == "shop account" and profile["domains"] == []
    assert create(tenant, "shop account").json()["error"]["code"] == "profile.name_taken"
    assert create(tenant, "").status_code == 422
    assert create(other_tenant, "shop account").status_code == 201  # names are per space

    run = services.run_create(space=tenant.space)
    Profile.objects.filter(pk=profile["id"]).update(writer_run=run)
    assert profiles.profile_save(
        profile_id=profile["id"],
        run=run,
        state=profiles.clean_state(
            [COOKIE], {"https://app.example.com": {"localStorage": [["k", "v"]]}}
        ),
    )
    seen = tenant.client.get(f"/v1/profiles/{profile['id']}").json()
    assert seen["domains"] == ["app.example.com", "shop.example.com"]
    assert seen["cookieCount"] == 1 and seen["savedByRunId"] == run.id
    assert "very-secret-cookie-value" not in str(seen)
    assert seen["origins"] == [
        {"origin": "https://app.example.com", "localStorageItems": 1, "indexedDB": []}
    ]
    listed = tenant.client.get("/v1/profiles").json()["data"]
    assert [p["id"] for p in listed] == [profile["id"]]

    for method in ("get", "delete"):
        answer = getattr(other_tenant.client, method)(f"/v1/profiles/{profile['id']}")
        assert answer.status_code == 404
    assert tenant.client.delete(f"/v1/profiles/{profile['id']}").status_code == 204
    assert tenant.client.get(f"/v1/profiles/{profile['id']}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_one_run_at_a_time_writes_a_profile(tenant: Tenant, other_tenant: Tenant) -> None:
    profile = create(tenant, "agent").json()
    first = runtime_services.runtime_create(space=tenant.space, name="one")
    second = runtime_services.runtime_create(space=tenant.space, name="two")
    third = runtime_services.runtime_create(space=tenant.space, name="three")
    theirs = runtime_services.runtime_create(space=other_tenant.space, name="theirs")
    with fake_host():
        assert start(tenant, first, {"profileId": "prof_nope"}).status_code == 404
        assert start(tenant, first, {"persist": True}).status_code == 422
        assert start(tenant, first, {"profileId": "../x"}).status_code == 422
        refused = start(other_tenant, theirs, {"profileId": profile["id"]})
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "profile.not_found"
        assert not Run.objects.filter(runtime__in=[first, theirs]).exists()

        writing = start(tenant, first, {"profileId": profile["id"], "persist": True})
        assert writing.status_code == 200
        run = tenant.client.get(f"/v1/runs/{writing.json()['runId']}").json()
        assert run["browser"]["profile"] == {
            "id": profile["id"],
            "name": "agent",
            "persist": True,
        }
        busy = start(tenant, second, {"profileId": profile["id"], "persist": True})
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "profile.in_use"
        second.refresh_from_db()
        assert second.status == "idle" and not second.runs.exists()
        assert (
            tenant.client.get(f"/v1/profiles/{profile['id']}").json()["inUseByRunId"]
            == (writing.json()["runId"])
        )
        deleting = tenant.client.delete(f"/v1/profiles/{profile['id']}")
        assert deleting.status_code == 409
        # Loading it without saving back is fine meanwhile.
        assert start(tenant, third, {"profileId": profile["id"]}).status_code == 200
        tenant.client.post(f"/v1/runtimes/{first.id}/stop")
        for _ in range(100):
            first.refresh_from_db()
            if first.status == "stopped":
                break
            asyncio.run(asyncio.sleep(0.05))
        # Its writer ended (without a browser to save from): the profile is free again.
        assert (
            start(tenant, second, {"profileId": profile["id"], "persist": True}).status_code == 200
        )


@pytest.mark.django_db(transaction=True)
def test_the_space_settings_list_profiles_by_site_and_delete_them(
    tenant: Tenant, other_tenant: Tenant, member: Any
) -> None:
    from django.test import Client

    mine = profiles.profile_create(space=tenant.space, name="shop account")
    run = services.run_create(space=tenant.space)
    Profile.objects.filter(pk=mine.pk).update(writer_run=run)
    profiles.profile_save(profile_id=mine.id, run=run, state=profiles.clean_state([COOKIE], {}))
    theirs = profiles.profile_create(space=other_tenant.space, name="their account")
    browser = Client()
    browser.force_login(member)
    page = browser.get("/settings").content.decode()
    assert "shop account" in page and ">shop.example.com<" in page
    assert "very-secret-cookie-value" not in page and "their account" not in page
    refused = browser.post("/settings", {"action": "delete-profile", "profile": theirs.id})
    assert refused.status_code == 400
    assert Profile.objects.filter(pk=theirs.pk).exists()
    deleted = browser.post("/settings", {"action": "delete-profile", "profile": mine.id})
    assert deleted.status_code == 302
    assert not Profile.objects.filter(pk=mine.pk).exists()
    assert "The profile was deleted." in browser.get(deleted["Location"]).content.decode()


def test_an_origins_indexeddb_past_its_bound_is_left_out_and_named() -> None:
    small = {"name": "prefs", "version": 1, "stores": []}
    big = {"name": "cache", "version": 2, "stores": [{"records": [["k", "x" * 3_000_000]]}]}
    assert kept_databases("https://a.example", {"databases": [small], "failed": []}) == (
        [small],
        [],
    )
    databases, not_kept = kept_databases(
        "https://a.example", {"databases": [small, big], "failed": ["locked: blocked"]}
    )
    assert databases == []
    assert not_kept[0] == "https://a.example locked: blocked"
    assert not_kept[1].startswith("https://a.example prefs, cache: 3000") and "over" in not_kept[1]
    # An origin with neither local storage nor databases is not kept.
    state = profiles.clean_state([], {"https://a.example": {"localStorage": [], "indexedDB": []}})
    assert state["origins"] == {}


def test_the_state_is_encrypted_at_rest_and_keys_rotate(settings: Any) -> None:
    state = profiles.clean_state([COOKIE], {})
    token = seal(state)
    assert b"very-secret-cookie-value" not in token
    assert unseal(token)["cookies"][0]["value"] == "very-secret-cookie-value"
    assert "expires" not in unseal(token)["cookies"][0]  # a session cookie
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BCTRL_PROFILE_KEYS = [old]
    sealed = seal(state)
    settings.BCTRL_PROFILE_KEYS = [new, old]
    assert unseal(sealed) == state
    settings.BCTRL_PROFILE_KEYS = [new]
    with pytest.raises(Exception):  # noqa: B017 - InvalidToken: the old key is gone
        unseal(sealed)


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_signed_in_at_the_next_start(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    from playwright.async_api import async_playwright

    api = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    profile = await asyncio.to_thread(api.post, "/v1/profiles", json={"name": "ada"})
    shop = asgi_server + "/demo/"

    first = await start_runtime(asgi_server, tenant, {"profileId": profile["id"], "persist": True})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(first.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(shop + "signin")
        await page.fill("#email", "ada@example.com")
        await page.fill("#password", "correct horse")
        await page.click("#signin-submit")
        await page.wait_for_selector("#signed-in-as")
        await page.evaluate("localStorage.setItem('cart', '[\"mug\"]')")
        await page.evaluate(WRITE_INDEXEDDB)
        await browser.close()
    await stop_runtime(asgi_server, tenant, first)
    saved = await asyncio.to_thread(api.get, f"/v1/profiles/{profile['id']}")
    assert saved["domains"] == ["127.0.0.1"] and saved["savedByRunId"] == first.run.id
    [origin] = saved["origins"]
    assert origin["localStorageItems"] >= 1 and origin["indexedDB"] == [
        {
            "name": "shop",
            "version": 3,
            "stores": [{"name": "drafts", "records": 1}, {"name": "orders", "records": 2}],
        }
    ]

    second = await start_runtime(asgi_server, tenant, {"profileId": profile["id"]})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(second.connect_url)
        page = await browser.contexts[0].new_page()
        await page.add_init_script(FIRST_OPEN)
        await page.goto(shop)
        assert await page.text_content("#signed-in-as") == "ada@example.com"
        assert await page.evaluate("localStorage.getItem('cart')") == '["mug"]'
        # The page's very first open finds its database whole, at its version.
        assert await page.evaluate("window.__firstOpen") == {"version": 3, "orders": 2}
        assert await page.evaluate(READ_INDEXEDDB) == {
            "when": 1700000000000,
            "bytes": ["Uint8Array", [1, 2, 255]],
            "tags": [["gift", True]],
            "seen": [3, 4],
            "score": True,
            "missing": True,
            "big": "12345678901234567890",
            "photo": ["image/png", "png?"],
            "nested": {"deep": [1, {"$bctrl": "not a tag"}]},
            "added": 3,  # the key generator goes on after the kept records
            "note": "half-typed note",
        }
        await browser.close()
    await stop_runtime(asgi_server, tenant, second)

    # Without a profile a start is a fresh browser.
    third = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(third.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(shop)
        assert await page.query_selector("#signed-in-as") is None
        assert await page.evaluate("localStorage.getItem('cart')") is None
        assert await page.evaluate("indexedDB.databases()") == []
        await browser.close()
    await stop_runtime(asgi_server, tenant, third)
