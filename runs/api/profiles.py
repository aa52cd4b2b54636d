"""Browser profiles of the caller's space (runs.profiles).

- `GET /v1/profiles`: the space's profiles, newest first (`{data, hasMore, nextCursor}`).
- `POST /v1/profiles` `{name}`: a new, empty profile (201; 409 profile.name_taken).
- `GET /v1/profiles/{id}`: `{id, name, domains, cookieCount, size, savedAt,
  savedByRunId, inUseByRunId, createdAt, origins}`: whose state it holds, never the
  values (`origins`: per origin, how many local storage items, and each IndexedDB
  database's name, version and its stores' record counts).
- `DELETE /v1/profiles/{id}`: 204; 409 profile.in_use while a running run will save it.

A start loads one with `profileId` and saves back into it with `persist: true`
(`POST /v1/runtimes/{id}/start`). Another space's profile is a 404.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import profiles
from runs.api.auth import space_of
from runs.api.pagination import paginate, parse_limit
from runs.api.schema import ERRORS, PAGING
from runs.api.serializers import StrictSerializer, Text
from runs.api.views import validated
from runs.models import Profile
from runs.timestamps import iso


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "object": "profile",
        "spaceId": profile.space_id,
        "name": profile.name,
        "domains": profile.domains,
        "cookieCount": profile.cookie_count,
        "size": profile.size,
        "savedAt": iso(profile.saved_at),
        "savedByRunId": profile.saved_by_run_id or None,
        "inUseByRunId": profile.writer_run_id if profile.in_use else None,
        "createdAt": iso(profile.created_at),
    }


class ProfileCreateSerializer(StrictSerializer):
    name = Text(max_length=200, min_length=1)


class ProfileListView(APIView):
    @extend_schema(
        operation_id="profiles_list",
        parameters=PAGING,
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = paginate(
            profiles.profiles_of(space_of(request)),
            order=["-id"],
            cursor=request.query_params.get("cursor"),
            limit=parse_limit(request.query_params.get("limit")),
            to_json=profile_json,
            cursor_values=lambda profile: [profile.id],
        )
        return Response(page)

    @extend_schema(
        operation_id="profiles_create",
        request=ProfileCreateSerializer,
        responses={201: OpenApiTypes.OBJECT, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = validated(ProfileCreateSerializer, request.data)
        profile = profiles.profile_create(space=space_of(request), name=data["name"])
        return Response(profile_json(profile), status=201)


class ProfileDetailView(APIView):
    @extend_schema(operation_id="profiles_get", responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request: Request, profile_id: str) -> Response:
        profile = profiles.profile_of(space_of(request), profile_id)
        state = profiles.profile_state(profile_id=profile.id)
        return Response({**profile_json(profile), "origins": profiles.contents_of(state)})

    @extend_schema(operation_id="profiles_delete", responses={204: None, **ERRORS})
    def delete(self, request: Request, profile_id: str) -> Response:
        profiles.profile_delete(profile=profiles.profile_of(space_of(request), profile_id))
        return Response(status=204)
