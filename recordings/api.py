"""Recorder-facing ingest of rrweb batches: POST /v1/runs/{id}/recording/events."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recordings import services
from runs import selectors
from runs.api.auth import space_of
from runs.api.errors import Invalid
from runs.api.parsers import BoundedJSONParser, parse_json_object, read_body
from runs.api.schema import ERRORS


class RecordingBatchParser(BoundedJSONParser):
    """JSON with the recording limits, which are larger than the rest of the API's."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        from django.conf import settings

        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        return parse_json_object(
            read_body(
                stream,
                meta,
                max_body=settings.BCTRL_RECORDING_MAX_BATCH_BYTES,
                max_inflated=settings.BCTRL_RECORDING_MAX_INFLATED_BYTES,
            )
        )


class BatchIn(serializers.Serializer):
    target = serializers.CharField()
    seq = serializers.IntegerField(min_value=0)
    events = serializers.ListField(child=serializers.DictField())


class BatchOut(serializers.Serializer):
    recordingId = serializers.CharField()
    target = serializers.CharField()
    seq = serializers.IntegerField()
    eventCount = serializers.IntegerField()
    duplicate = serializers.BooleanField()


class RecordingEventsView(APIView):
    parser_classes = [RecordingBatchParser]

    @extend_schema(
        operation_id="runs_recording_events_append",
        request=BatchIn,
        responses={201: BatchOut, 200: BatchOut, **ERRORS},
        parameters=[
            OpenApiParameter(
                "Content-Encoding", str, OpenApiParameter.HEADER, enum=["identity", "gzip"]
            )
        ],
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        body = request.data if isinstance(request.data, dict) else {}
        unknown = sorted(set(body) - {"target", "seq", "events"})
        if unknown:
            raise Invalid(f"Unknown field {unknown[0]!r}.", details={"unknown": unknown})
        target, seq = body.get("target"), body.get("seq")
        if not isinstance(target, str):
            raise Invalid("target must be a string.", details={"target": target})
        if type(seq) is not int or not 0 <= seq <= 2**31 - 1:
            raise Invalid("seq must be a non-negative integer.", details={"seq": seq})
        events = services.validate_rrweb_events(body.get("events"))
        result = services.batch_ingest(run=run, target=target, seq=seq, events=events)
        return Response(
            {
                "recordingId": result.batch.recording_id,
                "target": result.batch.target,
                "seq": result.batch.seq,
                "eventCount": result.batch.event_count,
                "duplicate": not result.created,
            },
            status=201 if result.created else 200,
        )
