"""Viewer URLs of the runs API, and the leases behind them.

    POST /v1/runs/{runId}/recording   {components?, expiresInSeconds?}
        → {iframeUrl, activityStreamUrl (only with components: ["activity"]),
           status, durationMs, expiresAt}                                    (seed 000)
    POST /v1/runs/{runId}/live        {control?, expiresInSeconds?} → {url, expiresAt}
    GET  /v1/runs/{runId}/leases      the run's leases, never their tokens
    POST /v1/leases/{leaseId}/revoke  ends a lease, and every viewer open on it

A viewer URL is shown once: only a hash of its secret is stored. `expiresInSeconds`
is 60 to 86400 (default 3600); anything else, a string "3600" included, is a 422.
"""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recordings.selectors import runs_api_status, videos_of
from runs import selectors
from runs.api.auth import space_of
from runs.api.pagination import paginate, parse_limit
from runs.api.schema import ERRORS, LeaseOut, LiveViewerOut, RecordingViewerOut, page_of
from runs.api.serializers import StrictSerializer
from runs.api.throttles import LEASE
from runs.api.views import validated
from runs.errors import Invalid
from runs.models import ApiKey
from runs.timestamps import iso
from viewers.leases import (
    COMPONENTS,
    active_leases,
    embed_url,
    lease_files,
    lease_mint,
    lease_of,
    lease_revoke,
    leases_of,
    lifetime_seconds,
)
from viewers.models import ViewerLease


class LifetimeField(serializers.JSONField):
    """`expiresInSeconds` as sent: lifetime_seconds() judges it (a bad one is a 422)."""


class RecordingViewerIn(StrictSerializer):
    components = serializers.ListField(
        child=serializers.ChoiceField(choices=list(COMPONENTS)),
        required=False,
        allow_null=True,
        max_length=len(COMPONENTS) * 2,
    )
    expiresInSeconds = LifetimeField(
        required=False, allow_null=True, help_text="60 to 86400; default 3600"
    )


class LiveViewerIn(StrictSerializer):
    control = serializers.ChoiceField(
        choices=ViewerLease.Control.choices, required=False, default=ViewerLease.Control.NONE
    )
    expiresInSeconds = LifetimeField(
        required=False, allow_null=True, help_text="60 to 86400; default 3600"
    )


def api_key_of(request: Request) -> ApiKey:
    """The key that authenticated the request: it is recorded as the lease's creator."""
    assert isinstance(request.auth, ApiKey)
    return request.auth


def lease_json(lease: ViewerLease) -> dict[str, Any]:
    """A lease as the API shows it: what it grants and how it was used, never its token.

    Expects `created_by_key` and `created_by_user` selected (leases_of does)."""
    created_by: dict[str, Any] | None = None
    if lease.created_by_key is not None:
        key = lease.created_by_key
        created_by = {"type": "apiKey", "id": key.id, "name": key.name}
    elif lease.created_by_user is not None:
        user = lease.created_by_user
        created_by = {"type": "user", "id": str(user.pk), "name": user.get_username()}
    return {
        "id": lease.id,
        "object": "viewer_lease",
        "runId": lease.run_id,
        "kind": lease.kind,
        "control": lease.control,
        "components": lease.components,
        "status": lease_state(lease),
        "expiresAt": iso(lease.expires_at),
        "createdAt": iso(lease.created_at),
        "createdBy": created_by,
        "revokedAt": iso(lease.revoked_at),
        "firstUsedAt": iso(lease.first_used_at),
        "lastUsedAt": iso(lease.last_used_at),
        "useCount": lease.use_count,
    }


def lease_state(lease: ViewerLease) -> str:
    if lease.revoked_at is not None:
        return "revoked"
    return "expired" if lease.expires_at <= timezone.now() else "active"


class RecordingViewerView(APIView):
    rate_scope = LEASE

    @extend_schema(
        operation_id="runs_recording_viewer",
        summary="Create a recording viewer URL",
        description=(
            "Mints a short-lived `replay` lease and returns its iframe URL. Works whatever "
            "the recording's status: the page says when there is nothing to play yet. "
            'Pass `components: ["activity"]` to also receive `activityStreamUrl` (and the '
            "activity beside the player); `network`, `console` and `commands` add those tabs "
            "of the replay's inspector. `replayFileUrl` downloads the self-contained "
            "replay file on the same lease; `harUrl` (with `network`) the network log as "
            "HAR and `traceUrl` (with `activity`, `network` and `console`) the Playwright "
            "trace, on the same lease. `videos` lists each recorded tab's MP4 once "
            "encoded, at a URL of the same lease. "
            "`expiresInSeconds` outside 60 to 86400 (or not an integer) is a 422."
        ),
        request=RecordingViewerIn,
        responses={200: RecordingViewerOut, **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(RecordingViewerIn, request.data)
        lifetime = lifetime_seconds(data.get("expiresInSeconds"))
        components = data.get("components") or []
        minted = lease_mint(
            run=run,
            kind=ViewerLease.Kind.REPLAY,
            components=components,
            lifetime_s=lifetime,
            api_key=api_key_of(request),
        )
        recording = minted.lease.recording  # the run's latest visible one, found at minting
        viewer = embed_url("replay", minted.token)
        # seed 000 names it iframeUrl, seed 001 reads recording.url: the same URL.
        body: dict[str, Any] = {"iframeUrl": viewer, "url": viewer}
        if "activity" in components:
            body["activityStreamUrl"] = embed_url("activity_stream", minted.token)
        body["status"] = runs_api_status(recording)
        body["durationMs"] = recording.duration_ms if recording is not None else None
        body["videos"] = [
            {
                "target": video.target,
                "url": f"{viewer}/video/{video.target}",
                "durationMs": video.duration_ms,
                "bytes": video.size_bytes,
                "width": video.width,
                "height": video.height,
                "startMs": video.start_ms,
            }
            for video in (videos_of(recording) if recording is not None else [])
        ]
        # The run's files on the same lease, for whoever holds the link: the offline
        # replay file, and the HAR and the trace when the lease shows what they hold.
        for key, name in lease_files(minted.lease).items():
            body[key] = f"{viewer}/{name}"
        body["expiresAt"] = iso(minted.lease.expires_at)
        return Response(body)


class LiveViewerView(APIView):
    rate_scope = LEASE

    @extend_schema(
        operation_id="runs_live_viewer",
        summary="Create a live view URL",
        description=(
            'Mints a short-lived `live` lease. `control: "input"` lets the viewer take over '
            "the browser. A run that has ended is a 409 `run.ended`."
        ),
        request=LiveViewerIn,
        responses={200: LiveViewerOut, **ERRORS},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        data = validated(LiveViewerIn, request.data)
        minted = lease_mint(
            run=run,
            kind=ViewerLease.Kind.LIVE,
            control=data["control"],
            lifetime_s=lifetime_seconds(data.get("expiresInSeconds")),
            api_key=api_key_of(request),
        )
        return Response(
            {"url": embed_url("live", minted.token), "expiresAt": iso(minted.lease.expires_at)}
        )


LEASE_STATES = ("active", "all")


class RunLeasesView(APIView):
    @extend_schema(
        operation_id="runs_leases_list",
        summary="List a run's viewer leases",
        description=(
            "The run's viewer leases, newest first, without their tokens (a viewer URL is "
            "shown once, when it is created). By default only active ones: neither "
            "revoked nor expired; `state=all` lists every lease."
        ),
        parameters=[
            OpenApiParameter("limit", int, description="Page size"),
            OpenApiParameter("cursor", str, description="`nextCursor` of the previous page"),
            OpenApiParameter("state", str, enum=list(LEASE_STATES), description="Default active"),
        ],
        responses={200: page_of("ViewerLease", LeaseOut), **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        space = space_of(request)
        run = selectors.run_of(space, run_id)
        state = request.query_params.get("state") or "active"
        if state not in LEASE_STATES:
            raise Invalid(
                f"Unknown state {state!r}; use one of {', '.join(LEASE_STATES)}.",
                details={"state": state},
            )
        leases = leases_of(space).filter(run=run)
        if state == "active":
            leases = active_leases(leases)
        return Response(
            paginate(
                leases,
                order=["-id"],
                cursor=request.query_params.get("cursor"),
                limit=parse_limit(request.query_params.get("limit")),
                to_json=lease_json,
                cursor_values=lambda lease: [lease.id],
            )
        )


class LeaseRevokeView(APIView):
    @extend_schema(
        operation_id="leases_revoke",
        summary="Revoke a viewer lease",
        description=(
            "Ends the lease at once: its URL stops opening, and open viewers and streams "
            "close on their next check. Revoking a revoked lease changes nothing."
        ),
        request=None,
        responses={200: LeaseOut, **ERRORS},
    )
    def post(self, request: Request, lease_id: str) -> Response:
        lease = lease_revoke(lease=lease_of(space_of(request), lease_id))
        return Response(lease_json(lease))
