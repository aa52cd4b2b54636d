"""The Embedding card of the space settings and the Share tab, in Chromium: a member
restricts which sites may embed the space's viewer links, and the Share tab says so."""

from typing import Any

import pytest

from runs import services
from tests.conftest import Tenant, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_restricts_embedding_and_the_share_tab_says_where_links_open(
    asgi_server: str, page: Any, member: Any, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space, name="checkout flow")
    sign_in(page, asgi_server, f"/runs/{run.id}")
    page.click("a[href='#share']")
    reach = page.locator("#share [data-share-reach]")
    assert reach.inner_text().startswith("Viewer links open in an <iframe> on any site.")

    page.click("#share [data-share-reach] a:has-text('Change in Space settings')")
    page.wait_for_url(f"{asgi_server}/settings?space={tenant.space.id}#embedding")
    card = page.locator("#embedding")
    assert card.locator("input[value=any]").is_checked()

    # A path is not an origin: said beside the box, what was typed kept, nothing saved.
    card.locator("input[value=listed]").check()
    card.locator("textarea").fill("https://app.example.com\nhttps://app.example.com/embed")
    card.locator("button:has-text('Save embedding')").click()
    assert "is not an origin" in card.locator("[data-embed-error]").inner_text()
    assert card.locator("textarea").input_value().endswith("https://app.example.com/embed")
    assert card.locator("[data-embed-current]").inner_text().endswith("on any site.")

    card.locator("textarea").fill("https://App.example.com/\nhttp://localhost:3000")
    card.locator("button:has-text('Save embedding')").click()
    page.wait_for_selector("text=Embedding is saved.")
    card = page.locator("#embedding")
    assert card.locator("[data-embed-current]").inner_text() == (
        "Viewer links open in an <iframe> only on https://app.example.com, "
        "http://localhost:3000; other sites cannot show them."
    )
    assert card.locator("input[value=listed]").is_checked()
    assert card.locator("textarea").input_value() == (
        "https://app.example.com\nhttp://localhost:3000"
    )
    page.screenshot(path="/tmp/settings-embedding.png", full_page=True)

    page.goto(f"{asgi_server}/runs/{run.id}")
    page.click("a[href='#share']")
    listed = "only on https://app.example.com, http://localhost:3000;"
    assert listed in page.locator("#share [data-share-reach]").inner_text()
    page.click("button:has-text('Create replay link')")
    page.wait_for_selector("[data-viewer-url]")
    assert listed in page.locator("[data-share-reach]").inner_text()

    # No site at all: the links open only as pages of their own, and the tab says so.
    page.goto(f"{asgi_server}/settings#embedding")
    page.locator("#embedding textarea").fill("")
    page.locator("#embedding button:has-text('Save embedding')").click()
    page.wait_for_selector("text=Embedding is saved.")
    page.goto(f"{asgi_server}/runs/{run.id}")
    page.click("a[href='#share']")
    assert "only as a page of their own" in page.locator("#share [data-share-reach]").inner_text()
    tenant.space.refresh_from_db()
    assert tenant.space.allowed_embed_origins == []
