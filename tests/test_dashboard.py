"""The dashboard, through Django's test client: sign-in, tenancy, filters, paging, detail."""

import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from runs import services
from runs.models import Membership, Run, Space
from runtimes import services as runtime_services
from tests.conftest import Tenant, make_tenant

# A valid 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201e5273fcc0000000049454e44ae426082"
)


@pytest.fixture
def client_in(member: Any) -> Client:
    client = Client()
    client.force_login(member)
    return client


def make_run(space: Space, **kwargs: Any) -> Run:
    return services.run_create(space=space, **kwargs)


def screenshot(run: Run, name: str = "shot.png") -> Any:
    return services.artifact_store(
        run=run, kind="screenshot", name=name, content=io.BytesIO(PNG), content_type="image/png"
    )


# Sign-in ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/runs/run_x", "/runs/run_x/artifacts/art_x"])
def test_pages_require_login(db: None, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_renders_and_signs_in(member: Any) -> None:
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    assert "script-src 'self'" in page["Content-Security-Policy"]
    response = client.post("/login/", {"username": "ada", "password": "correct horse 9"})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:runs")


def test_logout_is_a_post(client_in: Client) -> None:
    page = client_in.get("/")
    assert b'action="/logout/"' in page.content
    response = client_in.post("/logout/")
    assert response.status_code == 302
    assert client_in.get("/").status_code == 302


# Runs list ----------------------------------------------------------------------------


def test_list_shows_only_the_current_space(
    client_in: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = make_run(tenant.space, name="checkout flow")
    theirs = make_run(other_tenant.space, name="globex secret")
    body = client_in.get("/").content.decode()
    assert mine.id in body
    assert "checkout flow" in body
    assert theirs.id not in body
    assert "globex secret" not in body


def test_other_spaces_run_and_artifact_are_404(client_in: Client, other_tenant: Tenant) -> None:
    run = make_run(other_tenant.space)
    artifact = screenshot(run)
    assert client_in.get(reverse("dashboard:run", args=[run.id])).status_code == 404
    url = reverse("dashboard:artifact", args=[run.id, artifact.id])
    assert client_in.get(url).status_code == 404
    assert client_in.get(url + "?download=1").status_code == 404


def test_artifact_of_another_run_is_404(client_in: Client, tenant: Tenant) -> None:
    run, other = make_run(tenant.space), make_run(tenant.space)
    artifact = screenshot(other)
    url = reverse("dashboard:artifact", args=[run.id, artifact.id])
    assert client_in.get(url).status_code == 404


def test_list_row_has_status_counts_and_thumbnail(client_in: Client, tenant: Tenant) -> None:
    run = make_run(tenant.space, name="with shot")
    artifact = screenshot(run)
    services.events_append(run=run, events=[{"type": "page.loaded", "data": {}}])
    body = client_in.get("/").content.decode()
    assert reverse("dashboard:artifact", args=[run.id, artifact.id]) in body
    assert "pill-running" in body
    assert f'<time datetime="{run.started_at.isoformat()}' in body


def test_status_and_runtime_filters(client_in: Client, tenant: Tenant) -> None:
    chrome = runtime_services.runtime_create(space=tenant.space, name="chrome-1")
    running = make_run(tenant.space, runtime=chrome)
    done = services.run_stop(run=make_run(tenant.space))
    failed = services.run_stop(
        run=make_run(tenant.space), status="failed", error={"message": "boom"}
    )

    body = client_in.get("/?status=completed").content.decode()
    assert done.id in body
    assert running.id not in body
    assert failed.id not in body

    body = client_in.get("/?status=failed").content.decode()
    assert failed.id in body
    assert done.id not in body

    body = client_in.get(f"/?runtime={chrome.id}").content.decode()
    assert running.id in body
    assert done.id not in body

    body = client_in.get("/?status=failed&runtime=" + chrome.id).content.decode()
    assert "No runs match" in body

    # An unknown status is ignored rather than an error.
    body = client_in.get("/?status=bogus").content.decode()
    assert all(run.id in body for run in (running, done, failed))


def test_cursor_pagination(client_in: Client, tenant: Tenant) -> None:
    runs = [make_run(tenant.space, name=f"run {i}") for i in range(5)]
    # Ids sort by creation time (to the millisecond), so the newest has the greatest id.
    newest_first = sorted((run.id for run in runs), reverse=True)

    first = client_in.get("/?limit=2")
    page_one = first.context["rows"]
    assert [row.run.id for row in page_one] == newest_first[:2]
    cursor = first.context["next_cursor"]
    assert cursor == newest_first[1]
    assert f"cursor={cursor}" in first.content.decode()

    second = client_in.get(f"/?limit=2&cursor={cursor}")
    assert [row.run.id for row in second.context["rows"]] == newest_first[2:4]

    third = client_in.get(f"/?limit=2&cursor={second.context['next_cursor']}")
    assert [row.run.id for row in third.context["rows"]] == newest_first[4:]
    assert third.context["next_cursor"] is None


def test_empty_state_explains_how_to_start(client_in: Client, tenant: Tenant) -> None:
    body = client_in.get("/").content.decode()
    assert "No runs yet" in body
    assert "curl -X POST http://127.0.0.1:8000/v1/runs" in body
    assert "Authorization: Bearer $BCTRL_API_KEY" in body
    assert f"python manage.py create_api_key --space {tenant.space.slug}" in body
    assert "python manage.py demo" in body


def test_user_without_a_space_sees_how_to_join(db: None, django_user_model: Any) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create_user(username="lone", password="x" * 12))
    response = client.get("/")
    assert response.status_code == 200
    assert b"not in a space yet" in response.content


def _seed(space: Space, count: int) -> None:
    runtime = runtime_services.runtime_create(space=space, name="rt")
    for index in range(count):
        run = make_run(space, runtime=runtime if index % 2 else None, name=f"r{index}")
        if index % 3 == 0:
            screenshot(run)
        if index % 2:
            services.run_stop(run=run)  # a runtime has one active run at a time


@pytest.mark.parametrize("count", [5, 50])
def test_list_query_count_does_not_grow(
    client_in: Client, tenant: Tenant, count: int, django_assert_num_queries: Any
) -> None:
    _seed(tenant.space, count)
    # 1. the session
    # 2. the user
    # 3. the user's spaces (the switcher and the current space)
    # 4. the space's runtimes (the runtime filter)
    # 5. the page of runs, with runtime and thumbnail joined in
    # 6. the open handoffs of its running runs (what they ask a person to do)
    with django_assert_num_queries(6):
        response = client_in.get("/?limit=50")
    assert len(response.context["rows"]) == count


# Spaces -------------------------------------------------------------------------------


def test_switching_spaces(client_in: Client, member: Any, tenant: Tenant) -> None:
    second = make_tenant("initech")
    Membership.objects.create(user=member, space=second.space)
    theirs = make_run(second.space, name="initech run")
    mine = make_run(tenant.space, name="acme run")

    body = client_in.get("/").content.decode()
    assert 'name="space_id"' in body  # the switcher shows with two spaces
    assert mine.id in body  # "Acme" sorts first
    assert theirs.id not in body

    response = client_in.post(reverse("dashboard:switch-space"), {"space_id": second.space.id})
    assert response.status_code == 302
    body = client_in.get("/").content.decode()
    assert theirs.id in body
    assert mine.id not in body


def test_switching_refuses_a_space_the_user_is_not_in(
    client_in: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    make_run(other_tenant.space, name="globex run")
    response = client_in.post(
        reverse("dashboard:switch-space"), {"space_id": other_tenant.space.id}
    )
    assert response.status_code == 404
    assert client_in.session.get("space_id") != other_tenant.space.id
    assert "globex run" not in client_in.get("/").content.decode()
    assert client_in.get(reverse("dashboard:switch-space")).status_code == 405


def test_switch_ignores_an_offsite_next(client_in: Client, tenant: Tenant) -> None:
    response = client_in.post(
        reverse("dashboard:switch-space"),
        {"space_id": tenant.space.id, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("dashboard:runs")


# Run detail ---------------------------------------------------------------------------


@pytest.fixture
def full_run(tenant: Tenant) -> Run:
    run = make_run(tenant.space, name="search and buy")
    services.events_append(
        run=run,
        events=[
            {"type": "page.navigated", "page_id": "p1", "data": {"url": "https://example.com"}},
            {"type": "console.log", "page_id": "p1", "data": {"text": "hello there"}},
        ],
    )
    services.commands_record(
        run=run,
        commands=[{"method": "Page.navigate", "params": {"url": "https://example.com"}}],
    )
    screenshot(run, "home.png")
    services.artifact_store(
        run=run,
        kind="download",
        name="report.csv",
        content=io.BytesIO(b"a,b\n1,2\n"),
        content_type="text/csv",
    )
    run.refresh_from_db()
    return run


def test_detail_shows_usage_events_commands_and_artifacts(client_in: Client, full_run: Run) -> None:
    response = client_in.get(reverse("dashboard:run", args=[full_run.id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "search and buy" in body
    assert full_run.id in body
    # Usage: 2 events + 2 artifact.created events, 1 command, 2 artifacts.
    assert "data-total-events>4<" in body
    assert "Commands" in body and "Page.navigate" in body
    assert "page.navigated" in body and "hello there" in body
    assert "home.png" in body and "report.csv" in body
    assert f"{len(PNG) + 8}\xa0bytes" in body  # filesizeformat of artifact_bytes
    assert reverse("dashboard:artifact", args=[full_run.id, full_run.thumbnail_id]) in body
    # Live wiring for a running run.
    assert f'data-stream-url="/v1/runs/{full_run.id}/events/stream"' in body
    assert 'data-after="4"' in body
    assert "Connecting" in body


def test_detail_type_filter(client_in: Client, full_run: Run) -> None:
    url = reverse("dashboard:run", args=[full_run.id])
    response = client_in.get(url + "?type=console.log")
    rows = response.context["event_rows"]
    assert [row.event.type for row in rows] == ["console.log"]
    assert response.context["matching_count"] == 1
    body = response.content.decode()
    assert '<option value="console.log" selected>' in body
    assert '<option value="artifact.created">' in body
    assert 'data-type="console.log"' in body


def test_detail_pages_events(client_in: Client, tenant: Tenant) -> None:
    run = make_run(tenant.space)
    services.events_append(run=run, events=[{"type": "tick", "data": {}} for _ in range(250)])
    url = reverse("dashboard:run", args=[run.id])
    latest = client_in.get(url)
    seqs = [row.event.seq for row in latest.context["event_rows"]]
    assert seqs == list(range(51, 251))
    assert "before=51" in latest.content.decode()
    earlier = client_in.get(url + "?before=51")
    assert [row.event.seq for row in earlier.context["event_rows"]] == list(range(1, 51))
    assert earlier.context["live"] is False


def test_detail_of_a_failed_run_shows_the_error(client_in: Client, tenant: Tenant) -> None:
    run = services.run_stop(
        run=make_run(tenant.space), status="failed", error={"message": "Target closed"}
    )
    body = client_in.get(reverse("dashboard:run", args=[run.id])).content.decode()
    assert "This run failed." in body
    assert "Target closed" in body
    assert "pill-failed" in body
    assert "Run ended" in body
    assert "data-live-events" not in body


def test_detail_shows_the_browser_options_of_the_start(client_in: Client, tenant: Tenant) -> None:
    run = services.run_create(
        space=tenant.space,
        browser_options={"viewport": {"width": 390, "height": 844}, "locale": "de-DE"},
    )
    body = client_in.get(reverse("dashboard:run", args=[run.id])).content.decode()
    assert "390&times;844" in body
    assert ">de-DE<" in body
    plain = client_in.get(reverse("dashboard:run", args=[make_run(tenant.space).id]))
    assert "data-browser-options" not in plain.content.decode()


def test_detail_renders_activity_items(
    client_in: Client, full_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        {
            "id": "act_1",
            "time": "2026-01-02T03:04:05.678Z",
            "type": "navigation",
            "message": "Opened example.com",
            "status": "completed",
            "severity": "info",
            "durationMs": 1250,
            "children": [
                {
                    "id": "act_2",
                    "time": "2026-01-02T03:04:06Z",
                    "type": "console",
                    "message": "Uncaught TypeError",
                    "status": "failed",
                    "severity": "error",
                    "durationMs": None,
                    "children": [],
                }
            ],
        }
    ]
    monkeypatch.setattr("dashboard.views.activity_items", lambda run: items)
    body = client_in.get(reverse("dashboard:run", args=[full_run.id])).content.decode()
    assert "Opened example.com" in body
    assert "1.2 s" in body
    assert "sev-error" in body and "Uncaught TypeError" in body
    assert '<time datetime="2026-01-02T03:04:05.678000+00:00"' in body
    assert "1 detail" in body


# Artifacts ----------------------------------------------------------------------------


def test_artifact_view_serves_the_bytes(client_in: Client, full_run: Run) -> None:
    assert full_run.thumbnail_id is not None
    url = reverse("dashboard:artifact", args=[full_run.id, full_run.thumbnail_id])
    inline = client_in.get(url)
    assert inline.status_code == 200
    assert inline.getvalue() == PNG
    assert inline["Content-Type"] == "image/png"
    assert inline["Content-Disposition"].startswith("inline")
    assert inline["X-Content-Type-Options"] == "nosniff"

    download = client_in.get(url + "?download=1")
    assert download.getvalue() == PNG
    assert download["Content-Disposition"].startswith("attachment")


def test_non_image_artifacts_always_download(client_in: Client, full_run: Run) -> None:
    csv = full_run.artifacts.get(name="report.csv")
    response = client_in.get(reverse("dashboard:artifact", args=[full_run.id, csv.id]))
    assert response["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response["Content-Security-Policy"]
    assert response.getvalue() == b"a,b\n1,2\n"


# API docs -----------------------------------------------------------------------------


def test_api_docs_are_self_hosted_swagger(db: None) -> None:
    client = Client()
    page = client.get("/docs/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "swagger-ui" in body
    assert "<script>" not in body  # the init script is a separate request
    assert "cdn" not in body.lower()
    policy = page["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "img-src 'self' data:" in policy
    assert "script-src 'self';" in policy

    script = client.get("/docs/?script=")
    assert script.status_code == 200
    assert "javascript" in script["Content-Type"]
    assert "/v1/openapi.json" in script.content.decode()
