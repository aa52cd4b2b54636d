"""The dashboard (to be written)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def runs_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("runs")


def api_docs(request: HttpRequest) -> HttpResponse:
    return HttpResponse("docs")
