"""The caller's space and its settings.

`/v1/spaces/{spaceId}`: the space (`{id, object, name, slug, embedOrigins,
recordingRetentionDays, createdAt}`).

- GET answers it.
- PATCH `{embedOrigins}` sets the sites that may embed its viewer links (frame them, and
  open a live view's socket with a lease): `["*"]` any site (a new space's default), `[]`
  none, or up to 20 origins `scheme://host[:port]` (bctrl_site.origins), answered
  normalized. 422 for an invalid or unknown field, and nothing changes.

`/v1/spaces/{spaceId}/upstream` (seed 004's upstream account) is recordings.upstream_api.

`/v1/spaces/{spaceId}/webhook`: where the space's notices go (runs.webhooks).

- GET: `{url, secret, signatureHeader, deliveries}` (the latest 20 deliveries).
- PUT `{url, rollSecret?}`: sets it (a secret is made with the first URL; `rollSecret`
  makes a new one). 422 for a URL it cannot be.
- DELETE: turns it off (the secret stays, for a later URL).
Another space's id is a 404, as everywhere.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import services, webhooks
from runs.api.auth import own_space
from runs.api.serializers import StrictSerializer, Text, space_json


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
        return Response(space_json(own_space(request, space_id)))

    @extend_schema(operation_id="spaces_change", request=SpaceChangeSerializer, responses=OBJECT)
    def patch(self, request: Request, space_id: str) -> Response:
        space = own_space(request, space_id)
        serializer = SpaceChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "embedOrigins" in serializer.validated_data:
            services.space_embed_origins_set(
                space=space, origins=serializer.validated_data["embedOrigins"]
            )
        return Response(space_json(space))


class SpaceWebhookView(APIView):
    @extend_schema(operation_id="spaces_webhook_get", responses=OBJECT)
    def get(self, request: Request, space_id: str) -> Response:
        return Response(webhooks.webhook_json(own_space(request, space_id)))

    @extend_schema(operation_id="spaces_webhook_set", request=WebhookIn, responses=OBJECT)
    def put(self, request: Request, space_id: str) -> Response:
        space = own_space(request, space_id)
        serializer = WebhookIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhooks.webhook_set(space=space, url=serializer.validated_data["url"].strip())
        if serializer.validated_data["rollSecret"]:
            webhooks.webhook_secret_roll(space=space)
        return Response(webhooks.webhook_json(space))

    @extend_schema(operation_id="spaces_webhook_clear", responses=OBJECT)
    def delete(self, request: Request, space_id: str) -> Response:
        space = own_space(request, space_id)
        webhooks.webhook_set(space=space, url="")
        return Response(webhooks.webhook_json(space))
