"""Files a person in the live view sends for a page's file chooser (POST /live/files,
runtimes.live_files): a ticket of the viewer socket that holds control, and every way
the request can be wrong, each a JSON error that keeps nothing. The whole path in real
Chromium is in test_live_browser.py."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from runs import control
from runs.models import Artifact, Run, Runtime
from runtimes import live_files
from runtimes import services as runtime_services
from tests.conftest import Tenant, fake_host

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "specific.live-viewer!abc"  # the viewer socket's channel name


@contextmanager
def live_run(tenant: Tenant, place_uploads: bool) -> Iterator[tuple[Run, dict[str, str]]]:
    """A running run whose viewer socket KEY holds control, and its chooser's ticket."""
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome")
    with fake_host(place_uploads=place_uploads):
        started = tenant.client.post(f"/v1/runtimes/{runtime.id}/start", {}, format="json")
        assert started.status_code == 200
        run = Run.objects.get(pk=started.json()["runId"])
        assert control.control_request(run=run, key=KEY, name="ada", viewer="user:1")
        yield (
            run,
            live_files.chooser_ticket(run_id=run.id, runtime_id=runtime.id, tab="TAB1", key=KEY),
        )


@pytest.fixture
def live(tenant: Tenant, settings: Any) -> Iterator[tuple[Run, dict[str, str]]]:
    settings.BCTRL_RUNTIME_UPLOAD_WAIT_S = 2
    with live_run(tenant, place_uploads=True) as live:
        yield live


def send(ticket: Any, *files: tuple[str, bytes]) -> Any:
    body: dict[str, Any] = {"file": [SimpleUploadedFile(name, data) for name, data in files]}
    if ticket is not None:
        body["ticket"] = ticket
    return Client().post("/live/files", body)


def refused(answer: Any, status: int, code: str) -> None:
    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == code


def uploads() -> list[str]:
    return list(Artifact.objects.filter(kind=Artifact.Kind.UPLOAD).values_list("name", flat=True))


def test_the_holders_files_are_kept_with_the_run_and_chosen(
    live: tuple[Run, dict[str, str]],
) -> None:
    run, chooser = live
    assert chooser["url"] == "/live/files"
    answer = send(chooser["ticket"], ("scan.pdf", b"%PDF"), ("back.pdf", b"%PDF-2"))
    assert answer.status_code == 201, answer.content
    assert [(f["name"], f["size"]) for f in answer.json()["files"]] == [
        ("scan.pdf", 4),
        ("back.pdf", 6),
    ]
    assert sorted(uploads()) == ["back.pdf", "scan.pdf"]
    assert set(Artifact.objects.values_list("run_id", flat=True)) == {run.id}


def test_a_ticket_that_is_missing_tampered_or_expired_keeps_nothing(
    live: tuple[Run, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, chooser = live
    refused(send(None, ("a.txt", b"x")), 403, "live.ticket_invalid")
    refused(send(chooser["ticket"] + "x", ("a.txt", b"x")), 403, "live.ticket_invalid")
    refused(send(["not", "a ticket"], ("a.txt", b"x")), 403, "live.ticket_invalid")
    monkeypatch.setattr(live_files, "CHOOSER_TICKET_S", -1)
    refused(send(chooser["ticket"], ("a.txt", b"x")), 403, "live.ticket_invalid")
    assert uploads() == []


def test_only_the_socket_holding_control_may_send(live: tuple[Run, dict[str, str]]) -> None:
    run, chooser = live
    control.control_release(run=run, key=KEY, name="ada", viewer="user:1", reason="requested")
    refused(send(chooser["ticket"], ("a.txt", b"x")), 403, "live.not_holder")
    # Another socket took control: the first one's ticket is no use.
    assert control.control_request(run=run, key="other-socket", name="bob", viewer="user:2")
    refused(send(chooser["ticket"], ("a.txt", b"x")), 403, "live.not_holder")
    assert uploads() == []


def test_no_files_too_many_or_too_large_are_refused(
    live: tuple[Run, dict[str, str]], settings: Any
) -> None:
    _, chooser = live
    refused(send(chooser["ticket"]), 422, "validation_error")
    many = [(f"{n}.txt", b"x") for n in range(live_files.MAX_FILES + 1)]
    refused(send(chooser["ticket"], *many), 422, "validation_error")
    settings.BCTRL_MAX_ARTIFACT_BYTES = 1000
    refused(send(chooser["ticket"], ("big.bin", b"x" * 5000)), 413, "payload_too_large")
    json_body = Client().post("/live/files", {"ticket": chooser["ticket"]}, "application/json")
    assert json_body.status_code == 415 and json_body.json()["error"]
    assert Client().get("/live/files").status_code == 405
    assert uploads() == []


def test_a_run_that_ended_takes_no_files(live: tuple[Run, dict[str, str]]) -> None:
    run, chooser = live
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    refused(send(chooser["ticket"], ("a.txt", b"x")), 403, "live.ticket_invalid")
    assert uploads() == []


def test_a_host_that_does_not_place_the_files_is_a_503(tenant: Tenant, settings: Any) -> None:
    settings.BCTRL_RUNTIME_UPLOAD_WAIT_S = 0.2
    with live_run(tenant, place_uploads=False) as (_, chooser):
        refused(send(chooser["ticket"], ("a.txt", b"x")), 503, "live.not_placed")
        # Kept with the run, for the host to place when it can; the person may send it again.
        assert uploads() == ["a.txt"]
        assert Runtime.objects.get().controller_key == KEY
