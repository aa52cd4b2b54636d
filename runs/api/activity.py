"""`GET /v1/runs/{id}/activity`: the run's human-readable timeline (see runs.activity)."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import selectors
from runs.activity import ITEM_TYPES, SEVERITIES, activity
from runs.api.auth import space_of
from runs.api.schema import ERRORS, ActivityList
from runs.errors import Invalid


def _min_severity(request: Request) -> str:
    raw = request.query_params.get("severity") or "info"
    if raw not in SEVERITIES:
        raise Invalid(
            f"Unknown severity {raw!r}: use one of {', '.join(SEVERITIES)}.",
            details={"severity": raw},
        )
    return raw


def _types(request: Request) -> list[str]:
    types = [
        part.strip()
        for raw in request.query_params.getlist("type")
        for part in raw.split(",")
        if part.strip()
    ]
    unknown = sorted(set(types) - set(ITEM_TYPES))
    if unknown:
        raise Invalid(f"Unknown type {unknown[0]!r}.", details={"type": unknown})
    return types


class ActivityView(APIView):
    @extend_schema(
        operation_id="runs_activity_list",
        responses={200: ActivityList, **ERRORS},
    )
    def get(self, request: Request, run_id: str) -> Response:
        """`?severity=` keeps items at least that severe; `?type=a,b` keeps those types."""
        min_severity, types = _min_severity(request), _types(request)
        run = selectors.run_of(space_of(request), run_id)
        result = activity(run, min_severity=min_severity, types=types)
        return Response({"data": result.items, "truncated": result.truncated})
