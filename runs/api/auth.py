from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from runs.models import ApiKey, Space
from runs.selectors import ObjectNotFound


class ApiKeyCaller:
    """The DRF user for a request made with an API key: it acts for one space."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.space: Space = api_key.space

    def __str__(self) -> str:
        return f"api key {self.api_key.masked}"


def bearer_token(meta: dict[str, Any]) -> str | None:
    header = meta.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key_from_meta(meta: dict[str, Any]) -> ApiKey | None:
    token = bearer_token(meta)
    if token is None:
        return None
    api_key = ApiKey.objects.authenticate(token)
    if api_key is not None:
        api_key.touch()
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyCaller, ApiKey] | None:
        if bearer_token(request.META) is None:
            return None
        api_key = api_key_from_meta(request.META)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or revoked.")
        return ApiKeyCaller(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="bctrl"'


def space_of(request: Request) -> Space:
    caller = request.user
    assert isinstance(caller, ApiKeyCaller)
    return caller.space


def own_space(request: Request, space_id: str) -> Space:
    """The caller's space if `space_id` names it; any other id is a 404, as everywhere."""
    space = space_of(request)
    if space.id != space_id:
        raise ObjectNotFound(f"No space {space_id!r}.")
    return space
