"""The baseline: the runs and events lists as a first attempt would write them.

DRF `ModelSerializer`s, generic `ListAPIView`s and `LimitOffsetPagination` (a COUNT(*)
and an OFFSET per page), `space` and `runtime` nested without `select_related` (one query
per row for each), ordered by `-started_at`, which no index covers. Same authentication
as the real API. Mounted only in this benchmark-only URLconf (`ROOT_URLCONF` is switched
to this module while the benchmark runs), never in the app's URLs.
"""

from typing import Any

from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, path
from rest_framework import generics, serializers
from rest_framework.pagination import LimitOffsetPagination

from bctrl_site import urls as site_urls
from runs.api.auth import space_of
from runs.models import Event, Run, Runtime, Space


class NaiveSpaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Space
        fields = ["id", "name", "slug", "created_at"]


class NaiveRuntimeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Runtime
        fields = ["id", "name", "status", "created_at"]


class NaiveRunSerializer(serializers.ModelSerializer):
    space = NaiveSpaceSerializer(read_only=True)
    runtime = NaiveRuntimeSerializer(read_only=True)

    class Meta:
        model = Run
        fields = "__all__"


class NaiveEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = "__all__"


class NaiveRunsPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


class NaiveEventsPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class NaiveRunListView(generics.ListAPIView):
    serializer_class = NaiveRunSerializer
    pagination_class = NaiveRunsPagination

    def get_queryset(self) -> QuerySet[Run]:
        runs = Run.objects.filter(space=space_of(self.request)).order_by("-started_at")
        status = self.request.query_params.get("status")
        if status:
            runs = runs.filter(status__in=status.split(","))
        return runs


class NaiveRunEventsView(generics.ListAPIView):
    serializer_class = NaiveEventSerializer
    pagination_class = NaiveEventsPagination

    def get_queryset(self) -> QuerySet[Event]:
        run = generics.get_object_or_404(
            Run.objects.filter(space=space_of(self.request)), pk=self.kwargs["run_id"]
        )
        events = Event.objects.filter(run=run).order_by("seq")
        params = self.request.query_params
        if params.get("type"):
            events = events.filter(type__in=params["type"].split(","))
        if params.get("after"):
            events = events.filter(seq__gt=int(params["after"]))
        return events


handler400 = site_urls.handler400
handler404 = site_urls.handler404
handler500 = site_urls.handler500

urlpatterns: list[URLPattern | URLResolver | Any] = [
    path("naive/v1/runs", NaiveRunListView.as_view(), name="naive-runs"),
    path("naive/v1/runs/<str:run_id>/events", NaiveRunEventsView.as_view(), name="naive-events"),
    *site_urls.urlpatterns,
]
