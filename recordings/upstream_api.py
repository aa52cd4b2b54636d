"""`/v1/spaces/{spaceId}/upstream`: the upstream Browser Run account that seed 004's sync
imports from (recordings.upstream).

- GET: `{spaceId, configured, baseUrl, accountId, apiTokenSet, apiTokenLastFour,
  updatedAt}`; the token itself is never answered.
- PUT `{baseUrl, accountId, apiToken}`: sets or replaces it (200, the same shape).
  `apiToken` may be left out to keep the stored one. 422 for an invalid or unknown field.
- DELETE: unlinks it (200, `configured: false`); deleting twice is harmless.
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
from runs.api.auth import own_space
from runs.api.serializers import StrictSerializer, Text

OBJECT = {200: OpenApiTypes.OBJECT}


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


class SpaceUpstreamView(APIView):
    @extend_schema(operation_id="spaces_upstream_get", responses=OBJECT)
    def get(self, request: Request, space_id: str) -> Response:
        space = own_space(request, space_id)
        return Response(upstream.upstream_account_json(space, upstream.upstream_account_of(space)))

    @extend_schema(
        operation_id="spaces_upstream_set", request=UpstreamAccountSerializer, responses=OBJECT
    )
    def put(self, request: Request, space_id: str) -> Response:
        space = own_space(request, space_id)
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
        space = own_space(request, space_id)
        upstream.upstream_account_clear(space=space)
        return Response(upstream.upstream_account_json(space, None))
