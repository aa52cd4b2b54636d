"""The read side of the runs API, its tenancy and its pagination."""

import io
from typing import Any

import pytest
from django.utils import timezone

from runs import services
from runs.exports.files import export_request
from runs.models import ApiKey, Run
from runtimes import services as runtime_services

from .conftest import Tenant


def make_runs(tenant: Tenant, count: int, **fields: Any) -> list[Run]:
    return [
        Run.objects.create(space=tenant.space, name=f"run {index}", **fields)
        for index in range(count)
    ]


def test_it_refuses_a_request_without_a_key(client: Any, tenant: Tenant) -> None:
    response = client.get("/v1/runs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_an_unknown_key(client: Any, tenant: Tenant) -> None:
    response = client.get("/v1/runs", HTTP_AUTHORIZATION="Bearer bctrl_sk_not-a-real-key")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_it_refuses_a_revoked_key(client: Any, tenant: Tenant) -> None:
    ApiKey.objects.filter(pk=tenant.api_key.pk).update(revoked_at=timezone.now())
    response = client.get("/v1/runs", **tenant.auth)
    assert response.status_code == 401


def test_it_records_when_a_key_was_last_used(tenant: Tenant) -> None:
    assert tenant.api_key.last_used_at is None
    tenant.client.get("/v1/runs")
    tenant.api_key.refresh_from_db()
    assert tenant.api_key.last_used_at is not None


def test_it_stores_only_a_hash_of_the_key(tenant: Tenant) -> None:
    stored = ApiKey.objects.get(pk=tenant.api_key.pk)
    assert tenant.raw_key.startswith("bctrl_sk_")
    assert tenant.raw_key not in (stored.key_hash, stored.last_four, stored.name)
    assert stored.masked.endswith(tenant.raw_key[-4:])


def test_it_lists_runs_newest_first_in_camel_case(tenant: Tenant) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome")
    first = services.run_create(space=tenant.space, runtime=runtime, name="first")
    services.run_stop(run=first)
    second = services.run_create(space=tenant.space, name="second", labels={"team": "qa"})
    body = tenant.client.get("/v1/runs").json()
    assert [run["id"] for run in body["data"]] == [second.id, first.id]
    listed = body["data"][1]
    assert listed["id"].startswith("run_")
    assert listed["runtimeId"] == runtime.id
    assert listed["spaceId"] == tenant.space.id
    assert listed["status"] == "completed"
    assert listed["endedAt"] is not None
    assert set(listed["usage"]) == {
        "durationMs",
        "commandCount",
        "eventCount",
        "artifactCount",
        "artifactBytes",
        "networkBytesIn",
        "networkBytesOut",
    }
    assert body["data"][0]["labels"] == {"team": "qa"}


def test_it_filters_runs_by_status_and_runtime(tenant: Tenant) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space)
    on_runtime = services.run_create(space=tenant.space, runtime=runtime)
    services.run_stop(run=on_runtime, status="failed", error={"message": "boom"})
    done = services.run_create(space=tenant.space)
    services.run_stop(run=done)
    running = services.run_create(space=tenant.space)

    def ids(query: str) -> list[str]:
        return [run["id"] for run in tenant.client.get(f"/v1/runs?{query}").json()["data"]]

    assert ids("status=failed") == [on_runtime.id]
    assert ids("status=completed") == [done.id]
    assert ids("status=running") == [running.id]
    assert ids("status=completed,failed") == [done.id, on_runtime.id]
    assert ids(f"runtimeId={runtime.id}") == [on_runtime.id]
    assert ids(f"spaceId={tenant.space.id}&status=running") == [running.id]


def test_it_rejects_an_unknown_status_filter(tenant: Tenant) -> None:
    response = tenant.client.get("/v1/runs?status=done")
    assert response.status_code == 422
    assert "done" in response.json()["error"]["message"]


def test_a_cursor_walks_every_run_once(tenant: Tenant) -> None:
    made = {run.id for run in make_runs(tenant, 7)}
    seen: list[str] = []
    url = "/v1/runs?limit=3"
    pages = 0
    while url:
        body = tenant.client.get(url).json()
        seen += [run["id"] for run in body["data"]]
        pages += 1
        url = f"/v1/runs?limit=3&cursor={body['nextCursor']}" if body["hasMore"] else ""
    assert pages == 3
    assert len(seen) == 7
    assert set(seen) == made
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=ten", "cursor=%%%", "cursor=WzFd"]
)
def test_it_rejects_bad_paging(tenant: Tenant, query: str) -> None:
    response = tenant.client.get(f"/v1/runs?{query}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("validation_error", "invalid_cursor")


def test_the_runs_list_query_count_does_not_grow_with_page_size(
    tenant: Tenant, django_assert_num_queries: Any
) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space)
    for _ in range(30):
        run = services.run_create(space=tenant.space, runtime=None)
        run.runtime = runtime
        run.save()
    # 1. the API key (with its space), 2. the page of runs with runtime and thumbnail.
    # (last_used_at was written by an earlier request within the minute, so no update.)
    tenant.client.get("/v1/runs?limit=1")
    with django_assert_num_queries(2):
        assert len(tenant.client.get("/v1/runs?limit=5").json()["data"]) == 5
    with django_assert_num_queries(2):
        assert len(tenant.client.get("/v1/runs?limit=30").json()["data"]) == 30


def test_it_shows_one_run(tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space, name="checkout flow", metadata={"ticket": 7})
    body = tenant.client.get(f"/v1/runs/{run.id}").json()
    assert body["id"] == run.id
    assert body["name"] == "checkout flow"
    assert body["metadata"] == {"ticket": 7}
    assert body["status"] == "running"


READ_PATHS = [
    "/v1/runs/{run}",
    "/v1/runs/{run}/events",
    "/v1/runs/{run}/commands",
    "/v1/runs/{run}/artifacts",
    "/v1/runs/{run}/files",
    "/v1/runs/{run}/activity",
    "/v1/runs/{run}/artifacts/{artifact}/content",
    "/v1/runtimes/{runtime}",
    "/v1/runtimes/{runtime}/current-run",
    "/v1/runs/{run}/files/exports/{export}",
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_another_spaces_objects_are_not_found(
    tenant: Tenant, other_tenant: Tenant, path: str
) -> None:
    runtime = runtime_services.runtime_create(space=other_tenant.space)
    run = services.run_create(space=other_tenant.space, runtime=runtime)
    artifact = services.artifact_store(
        run=run, kind="report", name="r.txt", content=io.BytesIO(b"secret")
    )
    export, _ = export_request(run=run, name="files", types=[])
    url = path.format(run=run.id, runtime=runtime.id, artifact=artifact.id, export=export.id)
    response = tenant.client.get(url)
    assert response.status_code == 404, url
    assert response.json()["error"]["code"] == "not_found"
    # The owner sees it.
    assert other_tenant.client.get(url).status_code == 200, url


def test_another_spaces_runs_never_appear_in_lists(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = services.run_create(space=tenant.space)
    services.run_create(space=other_tenant.space)
    assert [run["id"] for run in tenant.client.get("/v1/runs").json()["data"]] == [mine.id]
    response = tenant.client.get(f"/v1/runs?spaceId={other_tenant.space.id}")
    assert response.status_code == 404


def test_another_spaces_runtime_filter_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    runtime = runtime_services.runtime_create(space=other_tenant.space)
    assert tenant.client.get(f"/v1/runs?runtimeId={runtime.id}").status_code == 404


def test_unknown_ids_are_not_found_as_json(tenant: Tenant) -> None:
    response = tenant.client.get("/v1/runs/run_doesnotexist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = tenant.client.get("/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_runtimes_show_their_active_run(tenant: Tenant) -> None:
    created = tenant.client.post("/v1/runtimes", {"name": "agent"}, format="json")
    assert created.status_code == 201
    runtime_id = created.json()["id"]
    assert runtime_id.startswith("rt_")
    assert created.json()["activeRunId"] is None
    response = tenant.client.get(f"/v1/runtimes/{runtime_id}/current-run")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "runtime.no_active_run"

    run = tenant.client.post("/v1/runs", {"runtimeId": runtime_id}, format="json").json()
    assert tenant.client.get(f"/v1/runtimes/{runtime_id}").json()["activeRunId"] == run["id"]
    assert tenant.client.get(f"/v1/runtimes/{runtime_id}/current-run").json()["id"] == run["id"]
    listed = tenant.client.get("/v1/runtimes").json()["data"]
    assert [(item["id"], item["activeRunId"]) for item in listed] == [(runtime_id, run["id"])]


def test_the_openapi_schema_describes_the_runs_api(client: Any, db: None) -> None:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert "/v1/runs" in schema["paths"]
    assert "/v1/runs/{run_id}/events" in schema["paths"]


def test_the_documented_shapes_match_what_the_api_sends(tenant: Tenant) -> None:
    from runs.api import schema
    from runs.api import serializers as s

    runtime = runtime_services.runtime_create(space=tenant.space)
    run = services.run_create(space=tenant.space, runtime=runtime)
    services.events_append(run=run, events=[{"type": "navigation", "data": {}}])
    (command,) = services.commands_record(run=run, commands=[{"method": "Page.reload"}])
    artifact = services.artifact_store(run=run, kind="report", name="r", content=io.BytesIO(b"x"))
    export, _ = export_request(run=run, name="files", types=[])
    pairs = [
        (schema.RunOut, s.run_json(run)),
        (schema.RuntimeOut, s.runtime_json(runtime, active_run_id=run.id)),
        (schema.EventOut, s.event_json(run.events.order_by("seq")[0])),
        (schema.CommandOut, s.command_json(command)),
        (schema.ArtifactOut, s.artifact_json(artifact)),
        (schema.ExportOut, s.export_json(export)),
    ]
    for shape, sent in pairs:
        assert set(shape().fields) == set(sent), shape.__name__
