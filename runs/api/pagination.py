"""Keyset (cursor) pagination: one query per page whatever the page's depth or size."""

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet

from runs.errors import Invalid

M = TypeVar("M", bound=Model)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError as exc:
        raise Invalid("limit must be an integer.", details={"limit": raw}) from exc
    if not 1 <= limit <= maximum:
        raise Invalid(f"limit must be between 1 and {maximum}.", details={"limit": limit})
    return limit


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(cursor: str, key_types: Sequence[type]) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise Invalid("cursor is not valid.", code="invalid_cursor") from exc
    if (
        not isinstance(values, list)
        or len(values) != len(key_types)
        or not all(type(value) is kind for value, kind in zip(values, key_types, strict=True))
    ):
        raise Invalid("cursor is not valid.", code="invalid_cursor")
    return values


def paginate(
    queryset: QuerySet[M],
    *,
    order: Sequence[str],
    cursor: str | None,
    limit: int,
    to_json: Callable[[M], dict[str, Any]],
    cursor_values: Callable[[M], Sequence[Any]],
    key_types: Sequence[type] | None = None,
) -> dict[str, Any]:
    """Returns {data, hasMore, nextCursor} for `queryset` ordered by `order`.

    `order` names the key columns, each with a leading "-" when descending; together
    they must be unique. The cursor holds the last row's key, and the next page is the
    rows strictly after it, found with one indexed range condition. `key_types` are the
    Python types of the key's values (strings unless said otherwise).
    """
    if cursor:
        values = decode_cursor(cursor, key_types or [str] * len(order))
        try:
            queryset = queryset.filter(_after(order, values))
        except (DjangoValidationError, ValueError, TypeError) as exc:
            raise Invalid("cursor is not valid.", code="invalid_cursor") from exc
    try:
        rows = list(queryset.order_by(*order)[: limit + 1])
    except (DjangoValidationError, ValueError, TypeError) as exc:
        raise Invalid("cursor is not valid.", code="invalid_cursor") from exc
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [to_json(row) for row in rows],
        "hasMore": has_more,
        "nextCursor": encode_cursor(cursor_values(rows[-1])) if has_more and rows else None,
    }


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """(a, b) > (x, y) in the given directions, spelled out as OR-ed prefixes."""
    condition = Q()
    for index, field in enumerate(order):
        name = field.lstrip("-")
        op = "lt" if field.startswith("-") else "gt"
        step = Q(**{f"{name}__{op}": values[index]})
        for previous, value in zip(order[:index], values[:index], strict=False):
            step &= Q(**{previous.lstrip("-"): value})
        condition |= step
    return condition
