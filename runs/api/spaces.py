"""The caller's space and its settings.

`/v1/spaces/{spaceId}`: the space (`{id, object, name, slug, embedOrigins,
recordingRetentionDays, createdAt}`).

- GET answers it.
- PATCH `{embedOrigins}` sets the sites that may embed its viewer links (frame them, and
  open a live view's socket with a lease): `["*"]` any site (a new space's default), `[]`
  none, or up to 20 origins `scheme://host[:port]` (bctrl_site.origins), answered
  normalized. 422 for an invalid or unknown field, and nothing changes.

`/v1/spaces/{spaceId}/upstream`: the upstream Browser Run account that seed 004's sync
imports from (recordings.upstream).

- GET: `{spaceId, configured, baseUrl, accountId, apiTokenSet, apiTokenLastFour,
  updatedAt}`; the token itself is never answered.
- PUT `{baseUrl, accountId, apiToken}`: sets or replaces it (200, the same shape).
  `apiToken` may be left out to keep the stored one. 422 for an invalid or unknown field.
- DELETE: unlinks it (200, `configured: false`); deleting twice is harmless.

`/v1/spaces/{spaceId}/webhook`: where the space's notices go (runs.webhooks).

- GET: `{url, secret, signatureHeader, deliveries}` (the latest 20 deliveries).
- PUT `{url, rollSecret?}`: sets it (a secret is made with the first URL; `rollSecret`
  makes a new one). 422 for a URL it cannot be.
- DELETE: turns it off (the secret stays, for a later URL).
Another space's id is a 404, as everywhere.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recordings import upstream
from runs import services, webhooks
from runs.api.auth import space_of
from runs.api.serializers import StrictSerializer, Text, space_json
from runs.models import Space
from runs.selectors import ObjectNotFound


def _space(request: Request, space_id: str) -> Space:
    space = space_of(request)
    if space.id != space_id:
        raise ObjectNotFound(f"No space {space_id!r}.")
    return space


def _rule(problem: str | None) -> None:
    if problem:
        raise serializers.ValidationError(problem)


class UpstreamAccountSerializer(StrictSerializer):
    baseUrl = Text(max_length=upstream.BASE_URL_MAX)
    accountId = Text(max_length=upstream.ID_MAX)
    apiToken = Text(max_length=upstream.TOKEN_MAX, required=False)

    def validate_baseUrl(self, value: str) -> str:
        _rule(upstream.base_url_problem(value))
        return value

    def validate_accountId(self, value: str) -> str:
        _rule(upstream.account_id_problem(value))
        return value

    def validate_apiToken(self, value: str) -> str:
        _rule(upstream.api_token_problem(value))
        return value


class SpaceChangeSerializer(StrictSerializer):
    # Each entry is checked by services.space_embed_origins_set (one rule for every writer).
    embedOrigins = serializers.ListField(child=Text(max_length=300), required=False)


OBJECT = {200: OpenApiTypes.OBJECT}


class WebhookIn(StrictSerializer):
    url = Text(max_length=webhooks.URL_MAX)
    rollSecret = serializers.BooleanField(required=False, default=False)


class SpaceView(APIView):
    @extend_schema(operation_id="spaces_get", responses=OBJECT)
    def get(self, request: Request, space_id: str) -> Response:
        return Response(space_json(_space(request, space_id)))

    @extend_schema(operation_id="spaces_change", request=SpaceChangeSerializer, responses=OBJECT)
    def patch(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        serializer = SpaceChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "embedOrigins" in serializer.validated_data:
            services.space_embed_origins_set(
                space=space, origins=serializer.validated_data["embedOrigins"]
            )
        return Response(space_json(space))


class SpaceUpstreamView(APIView):
    @extend_schema(operation_id="spaces_upstream_get", responses=OBJECT)
    def get(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        return Response(upstream.upstream_account_json(space, upstream.upstream_account_of(space)))

    @extend_schema(
        operation_id="spaces_upstream_set", request=UpstreamAccountSerializer, responses=OBJECT
    )
    def put(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        serializer = UpstreamAccountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(serializer.validated_data)
        account = upstream.upstream_account_set(
            space=space,
            base_url=data["baseUrl"],
            account_id=data["accountId"],
            api_token=data.get("apiToken"),
        )
        return Response(upstream.upstream_account_json(space, account))

    @extend_schema(operation_id="spaces_upstream_clear", responses=OBJECT)
    def delete(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        upstream.upstream_account_clear(space=space)
        return Response(upstream.upstream_account_json(space, None))


class SpaceWebhookView(APIView):
    @extend_schema(operation_id="spaces_webhook_get", responses=OBJECT)
    def get(self, request: Request, space_id: str) -> Response:
        return Response(webhooks.webhook_json(_space(request, space_id)))

    @extend_schema(operation_id="spaces_webhook_set", request=WebhookIn, responses=OBJECT)
    def put(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        serializer = WebhookIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhooks.webhook_set(space=space, url=serializer.validated_data["url"].strip())
        if serializer.validated_data["rollSecret"]:
            webhooks.webhook_secret_roll(space=space)
        return Response(webhooks.webhook_json(space))

    @extend_schema(operation_id="spaces_webhook_clear", responses=OBJECT)
    def delete(self, request: Request, space_id: str) -> Response:
        space = _space(request, space_id)
        webhooks.webhook_set(space=space, url="")
        return Response(webhooks.webhook_json(space))
