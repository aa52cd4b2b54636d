"""Handoffs of the runs API: an automation asks a person to do a step and waits.

    POST /v1/runs/{runId}/handoff  {instructions, timeoutMs?, notify?}
        → 201 the handoff, with `liveUrl`: a live view with control for the person
    GET  /v1/runs/{runId}/handoffs                      the run's handoffs, newest first
    GET  /v1/runs/{runId}/handoff/{handoffId}?waitMs=   the handoff; with waitMs (up to
         BCTRL_HANDOFF_WAIT_MAX_MS) the answer waits while it is open
    POST /v1/runs/{runId}/handoff/{handoffId}/complete  {note?}  done (by the API key)
    POST /v1/runs/{runId}/handoff/{handoffId}/cancel    no longer needed

The automation keeps its connection meanwhile; its input is refused only while a person
holds control, as with any takeover. The person completes it in the live view ("Done",
with an optional note), which also hands control back. One open handoff per run (409
`handoff.open`); the run's events (`handoff.requested|completed|expired|cancelled`) and
the space's webhook (runs.webhooks, when `notify`) tell of each. It lives here, beside the
viewer leases, because its answer mints one.
"""

import asyncio
import math
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import selectors, services
from runs.api.auth import space_of
from runs.api.schema import ERRORS
from runs.api.serializers import StrictInteger, StrictSerializer, Text
from runs.api.streams import Refused, authorized_run, bounded_int
from runs.api.views import validated
from runs.errors import api_error_response
from runs.live import run_change_listener
from runs.models import Handoff
from runs.timestamps import iso
from viewers.lease_api import api_key_of
from viewers.leases import MAX_LIFETIME_S, MIN_LIFETIME_S, embed_url, lease_mint
from viewers.models import ViewerLease

TEXT_MAX = 2000
OBJECT = {200: OpenApiTypes.OBJECT, **ERRORS}


class HandoffIn(StrictSerializer):
    instructions = Text(max_length=TEXT_MAX, help_text="What the person should do")
    timeoutMs = StrictInteger(
        required=False,
        min_value=settings.BCTRL_HANDOFF_TIMEOUT_MIN_MS,
        max_value=settings.BCTRL_HANDOFF_TIMEOUT_MAX_MS,
        help_text="How long it stays open; default BCTRL_HANDOFF_TIMEOUT_MS (15 minutes)",
    )
    notify = serializers.BooleanField(required=False, default=True)


class CompleteIn(StrictSerializer):
    note = Text(max_length=TEXT_MAX, required=False, allow_blank=True)


def handoff_json(handoff: Handoff) -> dict[str, Any]:
    return {
        "id": handoff.id,
        "object": "handoff",
        "runId": handoff.run_id,
        "status": handoff.status,
        "instructions": handoff.instructions,
        "notify": handoff.notify,
        "requestedBy": handoff.requested_by or None,
        "createdAt": iso(handoff.created_at),
        "expiresAt": iso(handoff.expires_at),
        "endedAt": iso(handoff.ended_at),
        "completedBy": handoff.completed_by or None,
        "note": handoff.note or None,
    }


class HandoffCreateView(APIView):
    @extend_schema(
        operation_id="runs_handoff_create",
        summary="Ask a person to do a step",
        description=(
            "Opens a handoff on a running run and answers it with `liveUrl`, a live view "
            "with control that the person opens (it lasts as long as the handoff, at least "
            "a minute). One open handoff per run: a second is a 409 `handoff.open`; an "
            "ended run is a 409 `run.ended`."
        ),
        request=HandoffIn,
        responses={201: OpenApiTypes.OBJECT, **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(HandoffIn, request.data)
        instructions = data["instructions"].strip()
        if not instructions:
            raise serializers.ValidationError({"instructions": ["Say what the person should do."]})
        timeout_ms = data.get("timeoutMs") or settings.BCTRL_HANDOFF_TIMEOUT_MS
        key = api_key_of(request)
        with transaction.atomic():
            handoff = services.handoff_request(
                run=run,
                instructions=instructions,
                timeout_ms=timeout_ms,
                notify=data["notify"],
                requested_by=key.name,
            )
            lifetime = min(MAX_LIFETIME_S, max(MIN_LIFETIME_S, math.ceil(timeout_ms / 1000)))
            minted = lease_mint(
                run=run,
                kind=ViewerLease.Kind.LIVE,
                control=ViewerLease.Control.INPUT,
                lifetime_s=lifetime,
                api_key=key,
            )
        body = handoff_json(handoff)
        body["liveUrl"] = embed_url("live", minted.token)
        body["liveUrlExpiresAt"] = iso(minted.lease.expires_at)
        return Response(body, status=status.HTTP_201_CREATED)


class HandoffListView(APIView):
    @extend_schema(operation_id="runs_handoffs_list", responses=OBJECT)
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        services.handoffs_expire(run=run)
        return Response({"data": [handoff_json(h) for h in run.handoffs.all()[:100]]})


class HandoffEndView(APIView):
    """POST …/complete and …/cancel."""

    finish_status = Handoff.Status.COMPLETED

    @extend_schema(operation_id="runs_handoff_complete", request=CompleteIn, responses=OBJECT)
    def post(self, request: Request, run_id: str, handoff_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        handoff = selectors.handoff_of(run, handoff_id)
        completing = self.finish_status == Handoff.Status.COMPLETED
        data = validated(CompleteIn, request.data) if completing else {}
        ended = services.handoff_finish(
            handoff=handoff,
            status=self.finish_status,
            who=api_key_of(request).name if completing else "",
            note=(data.get("note") or "").strip(),
        )
        return Response(handoff_json(ended))


class HandoffCancelView(HandoffEndView):
    finish_status = Handoff.Status.CANCELLED

    @extend_schema(operation_id="runs_handoff_cancel", request=None, responses=OBJECT)
    def post(self, request: Request, run_id: str, handoff_id: str) -> Response:
        return super().post(request, run_id, handoff_id)


@csrf_exempt
async def handoff_detail(request: HttpRequest, run_id: str, handoff_id: str) -> JsonResponse:
    """GET …/handoff/{id}?waitMs=: the handoff, once it is no longer open or waitMs passed."""
    maximum = int(settings.BCTRL_HANDOFF_WAIT_MAX_MS)
    try:
        run = await authorized_run(request, run_id)
        wait_ms = bounded_int(request.GET.get("waitMs"), "waitMs", maximum) or 0
    except Refused as refused:
        return refused.response()

    def current() -> Handoff:
        services.handoffs_expire(run=run)
        return selectors.handoff_of(run, handoff_id)

    clock = asyncio.get_running_loop().time
    deadline = clock() + wait_ms / 1000
    poll = float(settings.BCTRL_SSE_POLL_SECONDS)
    try:
        async with run_change_listener(run.id) as listener:
            while True:
                handoff = await sync_to_async(current)()
                remaining = deadline - clock()
                if handoff.status != Handoff.Status.OPEN or remaining <= 0:
                    break
                # Woken by a change of the run, or when its time is up (then it expires).
                until_expiry = (handoff.expires_at - timezone.now()).total_seconds()
                await listener.wait(max(0.01, min(poll, remaining, until_expiry + 0.01)))
    except selectors.ObjectNotFound as exc:
        return api_error_response(404, "not_found", str(exc))
    response = JsonResponse(handoff_json(handoff))
    response["Cache-Control"] = "no-store"
    return response
