"""The write side of the runs API: runs, event batches, commands, artifacts, stop."""

import gzip
import hashlib
import io
from typing import Any

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runs import services
from runs.models import Artifact, Command, Event, Run
from runtimes import services as runtime_services

from .conftest import Tenant


def post_raw(tenant: Tenant, path: str, body: bytes, **headers: str) -> Any:
    extra: dict[str, Any] = {
        f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
    }
    content_type = extra.pop("HTTP_CONTENT_TYPE", "application/json")
    # Django sends bytes as they are; the stubs only know str.
    return tenant.client.generic("POST", path, body, content_type, **extra)  # type: ignore[arg-type]


def events(*seqs: int, kind: str = "navigation") -> list[dict[str, Any]]:
    return [
        {"seq": seq, "type": kind, "time": "2026-11-23T10:00:00Z", "data": {"n": seq}}
        for seq in seqs
    ]


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return services.run_create(space=tenant.space, name="write target")


def stored_seqs(run: Run) -> list[int]:
    return list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))


# --- runs --------------------------------------------------------------------------------


def test_it_creates_a_run_without_a_runtime(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/v1/runs", {"name": "nightly", "metadata": {"commit": "abc"}}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("run_")
    assert body["status"] == "running"
    assert body["runtimeId"] is None
    assert Run.objects.get(pk=body["id"]).space == tenant.space


def test_a_runtime_has_one_active_run_at_a_time(tenant: Tenant) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space)
    first = tenant.client.post("/v1/runs", {"runtimeId": runtime.id}, format="json")
    assert first.status_code == 201
    second = tenant.client.post("/v1/runs", {"runtimeId": runtime.id}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "runtime.run_active"
    assert Run.objects.filter(runtime=runtime).count() == 1


def test_it_will_not_create_a_run_on_another_spaces_runtime(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    runtime = runtime_services.runtime_create(space=other_tenant.space)
    response = tenant.client.post("/v1/runs", {"runtimeId": runtime.id}, format="json")
    assert response.status_code == 404
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"metadata": "x"}, "metadata"),
        ({"labels": [1]}, "labels"),
        ({"nmae": "typo"}, "nmae"),
    ],
)
def test_it_rejects_invalid_run_fields(tenant: Tenant, body: dict[str, Any], field: str) -> None:
    response = tenant.client.post("/v1/runs", body, format="json")
    assert response.status_code == 422
    assert field in response.json()["error"]["details"]
    assert not Run.objects.exists()


def test_it_stops_a_run_and_settles_usage(tenant: Tenant, run: Run) -> None:
    services.events_append(run=run, events=events(1, 2, 3))
    services.commands_record(run=run, commands=[{"method": "Page.navigate"}])
    services.artifact_store(run=run, kind="report", name="a.txt", content=io.BytesIO(b"12345"))
    response = tenant.client.post(f"/v1/runs/{run.id}/stop", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["endedAt"] is not None
    # Three events sent plus the server's artifact.created event.
    assert body["usage"]["eventCount"] == 4
    assert body["usage"]["commandCount"] == 1
    assert body["usage"]["artifactCount"] == 1
    assert body["usage"]["artifactBytes"] == 5
    assert body["usage"]["durationMs"] >= 0
    again = tenant.client.post(f"/v1/runs/{run.id}/stop", {"status": "failed"}, format="json")
    assert again.status_code == 200
    assert again.json()["status"] == "completed"
    assert again.json()["endedAt"] == body["endedAt"]


def test_it_records_why_a_run_failed(tenant: Tenant, run: Run) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/stop",
        {"status": "failed", "error": {"code": "browser.crashed", "message": "gone"}},
        format="json",
    )
    assert response.json()["status"] == "failed"
    assert response.json()["error"] == {"code": "browser.crashed", "message": "gone"}


def test_an_ended_run_takes_no_more_events(tenant: Tenant, run: Run) -> None:
    services.run_stop(run=run)
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": events(1)}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run.ended"
    assert stored_seqs(run) == []


# --- event batches -----------------------------------------------------------------------


def test_it_appends_a_batch_of_events(tenant: Tenant, run: Run) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/events", {"events": events(1, 2, 3)}, format="json"
    )
    assert response.status_code == 201
    assert response.json() == {"accepted": 3, "duplicates": 0, "nextSeq": 4}
    listed = tenant.client.get(f"/v1/runs/{run.id}/events").json()["data"]
    assert [(event["seq"], event["type"]) for event in listed] == [
        (1, "navigation"),
        (2, "navigation"),
        (3, "navigation"),
    ]
    assert listed[0]["time"] == "2026-11-23T10:00:00Z"
    run.refresh_from_db()
    assert run.event_count == 3


def test_a_repeated_batch_is_stored_once(tenant: Tenant, run: Run) -> None:
    path = f"/v1/runs/{run.id}/events"
    assert tenant.client.post(path, {"events": events(1, 2)}, format="json").status_code == 201
    again = tenant.client.post(path, {"events": events(1, 2)}, format="json")
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "nextSeq": 3}
    overlapping = tenant.client.post(path, {"events": events(2, 3)}, format="json")
    assert overlapping.json() == {"accepted": 1, "duplicates": 1, "nextSeq": 4}
    assert stored_seqs(run) == [1, 2, 3]


def test_a_batch_that_skips_ahead_is_refused_with_the_expected_seq(
    tenant: Tenant, run: Run
) -> None:
    path = f"/v1/runs/{run.id}/events"
    tenant.client.post(path, {"events": events(1, 2)}, format="json")
    response = tenant.client.post(path, {"events": events(5, 6)}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "events.out_of_order"
    assert response.json()["error"]["details"] == {"expectedSeq": 3}
    assert stored_seqs(run) == [1, 2]


@pytest.mark.parametrize("seqs", [(1, 3), (2, 1), (1, 1)])
def test_a_batch_with_a_hole_or_out_of_order_is_refused_whole(
    tenant: Tenant, run: Run, seqs: tuple[int, ...]
) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/events", {"events": events(*seqs)}, format="json"
    )
    assert response.status_code == 409
    assert stored_seqs(run) == []


def test_the_same_seq_with_other_content_is_a_conflict(tenant: Tenant, run: Run) -> None:
    path = f"/v1/runs/{run.id}/events"
    tenant.client.post(path, {"events": events(1, 2)}, format="json")
    changed = events(2, 3)
    changed[0]["data"] = {"n": "different"}
    response = tenant.client.post(path, {"events": changed}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "events.seq_conflict"
    assert stored_seqs(run) == [1, 2]


def test_events_without_seq_are_numbered_by_the_server(tenant: Tenant, run: Run) -> None:
    path = f"/v1/runs/{run.id}/events"
    batch = [{"type": "console.message", "data": {"level": "log", "text": "hi"}}] * 2
    assert tenant.client.post(path, {"events": batch}, format="json").json()["nextSeq"] == 3
    assert tenant.client.post(path, {"events": events(3)}, format="json").status_code == 201
    assert stored_seqs(run) == [1, 2, 3]


def test_a_retried_batch_without_time_is_a_counted_duplicate(tenant: Tenant, run: Run) -> None:
    path = f"/v1/runs/{run.id}/events"
    batch = [{"seq": 1, "type": "navigation", "data": {"url": "https://x/"}}]
    batch.append({"seq": 2, "type": "console.message", "pageId": "p1", "data": {"text": "hi"}})
    assert tenant.client.post(path, {"events": batch}, format="json").status_code == 201
    times = list(Event.objects.filter(run=run).order_by("seq").values_list("time", flat=True))
    again = tenant.client.post(path, {"events": batch}, format="json")
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "nextSeq": 3}
    # The server's times stay as they were; other content under a seq is still a conflict.
    assert list(Event.objects.filter(run=run).order_by("seq").values_list("time", flat=True)) == (
        times
    )
    batch[1]["data"] = {"text": "bye"}
    conflict = tenant.client.post(path, {"events": batch}, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "events.seq_conflict"
    timed = [{**batch[0], "time": "2020-01-01T00:00:00Z"}]
    assert tenant.client.post(path, {"events": timed}, format="json").status_code == 409
    assert stored_seqs(run) == [1, 2]


def test_a_batch_mixing_given_and_missing_seqs_is_refused(tenant: Tenant, run: Run) -> None:
    batch = [*events(1), {"type": "navigation"}]
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": batch}, format="json")
    assert response.status_code == 409
    assert stored_seqs(run) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"events": []}, 422),
        ({"events": "nope"}, 422),
        ({"events": [{"seq": 1}]}, 422),
        ({"events": [{"seq": "one", "type": "navigation"}]}, 422),
        ({"events": [{"seq": 0, "type": "navigation"}]}, 422),
        ({"events": [{"type": "has spaces"}]}, 422),
        ({"events": [{"type": "navigation", "time": "yesterday"}]}, 422),
        ({"events": [{"type": "navigation", "data": [1, 2]}]}, 422),
        ({"events": [{"type": "navigation", "extra": 1}]}, 422),
        ({}, 422),
    ],
)
def test_it_rejects_malformed_events_and_writes_nothing(
    tenant: Tenant, run: Run, body: dict[str, Any], status: int
) -> None:
    response = tenant.client.post(f"/v1/runs/{run.id}/events", body, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == "validation_error"
    assert stored_seqs(run) == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"seq": 2**31, "type": "navigation"}, "seq"),
        ({"seq": 2**63, "type": "navigation"}, "seq"),
        ({"seq": 1e300, "type": "navigation"}, "seq"),
        ({"type": "navigation", "time": "9999-12-31T23:59:59-14:00"}, "time"),
    ],
)
def test_numbers_past_what_is_stored_are_refused_with_422(
    tenant: Tenant, run: Run, event: dict[str, Any], field: str
) -> None:
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": [event]}, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"events: 0: {field}: ")
    assert stored_seqs(run) == []


def nested(depth: int) -> bytes:
    """A JSON body {"events": [{"type", "data"}]} of `depth` levels in all."""
    inner = b'{"a":' * (depth - 3) + b"1" + b"}" * (depth - 3)
    return b'{"events":[{"type":"navigation","data":%s}]}' % inner


@pytest.mark.parametrize("depth", [255, 256, 512, 1024, 1025, 5000])
def test_a_body_nested_too_deep_is_refused_with_400(tenant: Tenant, run: Run, depth: int) -> None:
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", nested(depth))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_json",
        "message": "The JSON body nests deeper than 254 levels.",
        "details": {"maxDepth": 254},
    }
    assert stored_seqs(run) == []


def test_a_body_254_levels_deep_is_taken_and_read_back(tenant: Tenant, run: Run) -> None:
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", nested(254))
    assert response.status_code == 201
    listed = tenant.client.get(f"/v1/runs/{run.id}/events")
    assert listed.status_code == 200
    assert listed.json()["data"][0]["data"] == orjson.loads(nested(254))["events"][0]["data"]


def test_a_number_no_double_holds_is_refused_with_400(tenant: Tenant, run: Run) -> None:
    body = b'{"events":[{"type":"navigation","data":{"n":1e400}}]}'
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert stored_seqs(run) == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_it_rejects_a_body_that_is_not_a_json_object(tenant: Tenant, run: Run, body: bytes) -> None:
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert stored_seqs(run) == []


def test_it_accepts_a_gzip_body(tenant: Tenant, run: Run) -> None:
    body = gzip.compress(orjson.dumps({"events": events(1, 2)}))
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body, content_encoding="gzip")
    assert response.status_code == 201
    assert stored_seqs(run) == [1, 2]


def test_it_refuses_an_unknown_content_encoding(tenant: Tenant, run: Run) -> None:
    body = orjson.dumps({"events": events(1)})
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body, content_encoding="br")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_encoding"
    assert stored_seqs(run) == []


def test_it_refuses_a_content_type_other_than_json(tenant: Tenant, run: Run) -> None:
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", b"events=1", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_it_refuses_broken_gzip(tenant: Tenant, run: Run) -> None:
    body = gzip.compress(orjson.dumps({"events": events(1)}))[:-8]
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body, content_encoding="gzip")
    assert response.status_code == 400
    assert stored_seqs(run) == []


def test_it_stops_a_compression_bomb_at_the_limit(tenant: Tenant, run: Run, settings: Any) -> None:
    settings.BCTRL_MAX_INFLATED_BYTES = 1024 * 1024
    # 64 MiB of zeros inflate from a body of about 64 KiB.
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < settings.BCTRL_MAX_BODY_BYTES
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", bomb, content_encoding="gzip")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stored_seqs(run) == []


def test_a_body_of_several_gzip_members_is_read_whole(tenant: Tenant, run: Run) -> None:
    text = orjson.dumps({"events": events(1, 2)})
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body, content_encoding="gzip")
    assert response.status_code == 201
    assert stored_seqs(run) == [1, 2]


def test_a_truncated_second_gzip_member_is_refused(tenant: Tenant, run: Run) -> None:
    text = orjson.dumps({"events": events(1, 2)})
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])[:-8]
    response = post_raw(tenant, f"/v1/runs/{run.id}/events", body, content_encoding="gzip")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_encoding"
    assert stored_seqs(run) == []


def test_it_refuses_an_oversized_body(tenant: Tenant, run: Run, settings: Any) -> None:
    settings.BCTRL_MAX_BODY_BYTES = 10_000
    batch = [
        {"seq": 1, "type": "navigation", "data": {"blob": "x" * 20_000}},
    ]
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": batch}, format="json")
    assert response.status_code == 413
    assert stored_seqs(run) == []


def test_it_refuses_an_oversized_event_or_batch(tenant: Tenant, run: Run, settings: Any) -> None:
    settings.BCTRL_MAX_EVENT_BYTES = 1000
    settings.BCTRL_MAX_EVENTS_PER_BATCH = 5
    big = [{"seq": 1, "type": "navigation", "data": {"blob": "x" * 2000}}]
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": big}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"index": 0}
    many = events(*range(1, 7))
    response = tenant.client.post(f"/v1/runs/{run.id}/events", {"events": many}, format="json")
    assert response.status_code == 413
    assert stored_seqs(run) == []


def test_another_space_cannot_write_to_a_run(other_tenant: Tenant, run: Run) -> None:
    path = f"/v1/runs/{run.id}"
    writes = [
        other_tenant.client.post(f"{path}/events", {"events": events(1)}, format="json"),
        other_tenant.client.post(
            f"{path}/commands", {"commands": [{"method": "Page.navigate"}]}, format="json"
        ),
        other_tenant.client.post(
            f"{path}/artifacts",
            {"kind": "report", "file": SimpleUploadedFile("a.txt", b"x")},
            format="multipart",
        ),
        other_tenant.client.post(f"{path}/stop", {}, format="json"),
        other_tenant.client.post(f"{path}/files/export", {}, format="json"),
    ]
    assert [response.status_code for response in writes] == [404] * 5
    run.refresh_from_db()
    assert run.status == "running"
    assert (run.event_count, run.command_count, run.artifact_count) == (0, 0, 0)


# --- commands ----------------------------------------------------------------------------


def test_it_records_commands_and_lists_them(tenant: Tenant, run: Run) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/commands",
        {
            "commands": [
                {
                    "method": "Page.navigate",
                    "params": {"url": "https://example.com"},
                    "startedAt": "2026-11-23T10:00:00Z",
                    "endedAt": "2026-11-23T10:00:01.250Z",
                },
                {
                    "method": "Runtime.evaluate",
                    "status": "failed",
                    "error": {"message": "ReferenceError"},
                    "startedAt": "2026-11-23T10:00:02Z",
                    "durationMs": 4,
                },
            ]
        },
        format="json",
    )
    assert response.status_code == 201
    listed = tenant.client.get(f"/v1/runs/{run.id}/commands").json()["data"]
    assert [(c["method"], c["status"], c["durationMs"]) for c in listed] == [
        ("Page.navigate", "succeeded", 1250),
        ("Runtime.evaluate", "failed", 4),
    ]
    assert listed[0]["id"].startswith("cmd_")
    run.refresh_from_db()
    assert run.command_count == 2


def test_a_command_sent_twice_with_its_id_is_recorded_once(tenant: Tenant, run: Run) -> None:
    batch = {"commands": [{"id": "cmd_0000000000001", "method": "Page.reload"}]}
    path = f"/v1/runs/{run.id}/commands"
    assert tenant.client.post(path, batch, format="json").status_code == 201
    assert tenant.client.post(path, batch, format="json").status_code == 200
    assert Command.objects.filter(run=run).count() == 1
    run.refresh_from_db()
    assert run.command_count == 1


def test_a_command_id_of_another_run_is_a_conflict(tenant: Tenant, run: Run) -> None:
    other_run = services.run_create(space=tenant.space)
    batch = {"commands": [{"id": "cmd_0000000000002", "method": "Page.reload"}]}
    tenant.client.post(f"/v1/runs/{other_run.id}/commands", batch, format="json")
    response = tenant.client.post(f"/v1/runs/{run.id}/commands", batch, format="json")
    assert response.status_code == 409
    assert not Command.objects.filter(run=run).exists()


@pytest.mark.parametrize(
    "command",
    [
        {},
        {"method": ""},
        {"method": "X", "status": "maybe"},
        {"method": "X", "durationMs": -1},
        {"method": "X", "durationMs": 2**31},
        {"method": "X", "durationMs": 2**63},
        {"method": "X", "startedAt": "9999-12-31T23:59:59-14:00"},
    ],
)
def test_it_rejects_invalid_commands(tenant: Tenant, run: Run, command: dict[str, Any]) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/commands", {"commands": [command]}, format="json"
    )
    assert response.status_code == 422
    assert not Command.objects.exists()


# --- artifacts ---------------------------------------------------------------------------

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e0e1f3"
    "9d0000000049454e44ae426082"
)


def test_it_uploads_an_artifact_and_serves_it_back(tenant: Tenant, run: Run) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run.id}/artifacts",
        {"kind": "screenshot", "file": SimpleUploadedFile("shot.png", PNG, "image/png")},
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("art_")
    assert body["size"] == len(PNG)
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert body["contentType"] == "image/png"
    download = tenant.client.get(body["downloadUrl"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG  # type: ignore[attr-defined]
    assert "attachment" in download["Content-Disposition"]
    run.refresh_from_db()
    assert run.thumbnail_id == body["id"]
    assert run.artifact_bytes == len(PNG)
    created = Event.objects.get(run=run, type="artifact.created")
    assert created.data["artifactId"] == body["id"]


def test_files_list_and_filter_by_type(tenant: Tenant, run: Run) -> None:
    for kind, name in [("download", "a.csv"), ("screenshot", "s.png"), ("recording", "r")]:
        services.artifact_store(run=run, kind=kind, name=name, content=io.BytesIO(b"x"))
    all_files = tenant.client.get(f"/v1/runs/{run.id}/files").json()["data"]
    assert sorted(f["name"] for f in all_files) == ["a.csv", "s.png"]
    downloads = tenant.client.get(f"/v1/runs/{run.id}/files?type=download").json()["data"]
    assert [f["name"] for f in downloads] == ["a.csv"]
    assert tenant.client.get(f"/v1/runs/{run.id}/files?type=bogus").status_code == 422
    artifacts = tenant.client.get(f"/v1/runs/{run.id}/artifacts?kind=recording").json()["data"]
    assert [a["name"] for a in artifacts] == ["r"]


def test_an_oversized_upload_is_refused_and_leaves_nothing(
    tenant: Tenant, run: Run, settings: Any
) -> None:
    settings.BCTRL_MAX_ARTIFACT_BYTES = 100_000
    response = tenant.client.post(
        f"/v1/runs/{run.id}/artifacts",
        {"kind": "download", "file": SimpleUploadedFile("big.bin", b"x" * 300_000)},
        format="multipart",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Artifact.objects.exists()
    run.refresh_from_db()
    assert run.artifact_bytes == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "screenshot"},
        {"kind": "painting", "file": b"x"},
        {"file": b"x"},
        {"kind": "upload", "file": b"x"},
    ],
)
def test_it_rejects_an_upload_without_a_file_or_a_known_kind(
    tenant: Tenant, run: Run, fields: dict[str, Any]
) -> None:
    if "file" in fields:
        fields["file"] = SimpleUploadedFile("f.bin", fields["file"])
    response = tenant.client.post(f"/v1/runs/{run.id}/artifacts", fields, format="multipart")
    assert response.status_code == 422
    assert not Artifact.objects.exists()
