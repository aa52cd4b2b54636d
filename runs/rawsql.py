"""Model instances from hand-written SQL, for the few hot paths that skip the ORM's query
compiler (the lease check, the rrweb ingest): rows select a model's concrete columns in
`model_columns` order, and come back converted exactly as the ORM would convert them."""

import functools
from typing import Any

from django.db import connection, models


def model_columns(model: type[models.Model]) -> list[Any]:
    return list(model._meta.concrete_fields)


def instance_from_row(model: type[models.Model], row: list[Any]) -> models.Model:
    """A model instance from raw column values, converted as the ORM converts them."""
    attnames, converters = _converters(model)
    values = [
        value if value is None or not convert else _convert(convert, value)
        for value, convert in zip(row, converters, strict=True)
    ]
    return model.from_db(connection.alias, attnames, values)


def _convert(steps: list[Any], value: Any) -> Any:
    for step in steps:
        value = step(value)
    return value


@functools.cache
def _converters(model: type[models.Model]) -> tuple[list[str], list[list[Any]]]:
    """Per column of `model`, the backend's converters and the field's from_db_value."""
    attnames, converters = [], []
    for field in model_columns(model):
        expression = field.get_col(model._meta.db_table)
        steps: list[Any] = [
            functools.partial(lambda value, c, e: c(value, e, connection), c=c, e=expression)
            for c in connection.ops.get_db_converters(expression)
        ]
        if hasattr(field, "from_db_value"):
            steps.append(
                functools.partial(
                    lambda value, f, e: f.from_db_value(value, e, connection), f=field, e=expression
                )
            )
        attnames.append(field.attname)
        converters.append(steps)
    return attnames, converters
