"""Files a person picks in the live view for a page's file chooser (runtime_host.choosers).

When the host tells that a tab opened a chooser, each live viewer that may take control
gets an upload ticket with it (`chooser_ticket`): signed, for that run, tab and viewer
socket, valid CHOOSER_TICKET_S. `POST /live/files` (multipart: `ticket`, one or more
`file`) takes the files while that socket holds control of the runtime, keeps each as an
`upload` artifact of the run (the size limit of every artifact, BCTRL_MAX_ARTIFACT_BYTES),
waits until the runtime host placed them in the browser's uploads folder and asks it to
set them on the input that opened the chooser. Answers 201 `{"files": [...]}`; 403
`live.not_holder` without control, 403 `live.ticket_invalid` for a ticket that is
tampered, expired or for a run that ended, 503 `live.not_placed` when the host did not
take the files within BCTRL_RUNTIME_UPLOAD_WAIT_S."""

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import signing
from django.urls import path, reverse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import control, services
from runs.api.uploads import LimitedUploads
from runs.errors import ApiError, Invalid
from runs.models import Run, Runtime
from runtimes.hostlink import send_to_host
from runtimes.services import upload_wait_placed

SALT = "bctrl.live.files"
CHOOSER_TICKET_S = 15 * 60
MAX_FILES = 20


def chooser_ticket(*, run_id: str, runtime_id: str, tab: str, key: str) -> dict[str, str]:
    """What a viewer socket (`key`, its channel name) that may take control gets with a
    chooser: where to send files, and the ticket that lets it while it holds control."""
    payload = {"run": run_id, "runtime": runtime_id, "tab": tab, "key": key}
    return {"url": reverse("live-files"), "ticket": signing.dumps(payload, salt=SALT)}


def _gone() -> ApiError:
    return ApiError(
        "This file chooser has gone: its ticket is invalid or expired, or the run ended.",
        code="live.ticket_invalid",
        status_code=403,
    )


def _ticket(raw: Any) -> dict[str, str]:
    if not isinstance(raw, str) or not raw:
        raise _gone()
    try:
        payload = signing.loads(raw, salt=SALT, max_age=CHOOSER_TICKET_S)
    except signing.BadSignature:
        raise _gone() from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(name), str) for name in ("run", "runtime", "tab", "key")
    ):
        raise _gone()
    return payload


class LiveFilesView(LimitedUploads, APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    schema = None  # the live view's own, not part of the API

    def post(self, request: Request) -> Response:
        data = request.data
        ticket = _ticket(data.get("ticket") if hasattr(data, "get") else None)
        holder = control.control_holder(ticket["runtime"])
        if holder is None or holder.key != ticket["key"]:
            raise ApiError(
                "Take control in the live view before choosing files for the page.",
                code="live.not_holder",
                status_code=403,
            )
        uploads = request.FILES.getlist("file")
        if not uploads or len(uploads) > MAX_FILES:
            raise Invalid(f"Send 1 to {MAX_FILES} files as `file`.", details={"file": "required"})
        runtime = Runtime.objects.filter(pk=ticket["runtime"]).first()
        run = Run.objects.filter(pk=ticket["run"], runtime_id=ticket["runtime"]).first()
        if runtime is None or run is None or run.status != Run.Status.RUNNING:
            raise _gone()
        artifacts = [
            services.runtime_upload(
                runtime=runtime,
                name=upload.name or "file",
                content=upload,
                content_type=upload.content_type or "",
            )
            for upload in uploads
        ]
        if not all(upload_wait_placed(artifact) for artifact in artifacts):
            raise ApiError(
                "The browser did not take the files in time; try again.",
                code="live.not_placed",
                status_code=503,
            )
        body = {
            "type": "chooseFiles",
            "target": ticket["tab"],
            "paths": [artifact.metadata["path"] for artifact in artifacts],
        }
        async_to_sync(send_to_host)(get_channel_layer(), runtime.id, body)
        return Response(
            {"files": [{"id": a.id, "name": a.name, "size": a.size} for a in artifacts]},
            status=201,
        )


urlpatterns = [path("live/files", LiveFilesView.as_view(), name="live-files")]
