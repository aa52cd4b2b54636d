"""Server-sent event streams and long-polls of a run (to be written)."""

from django.http import HttpRequest, HttpResponse


async def events_stream(request: HttpRequest, run_id: str) -> HttpResponse:
    return HttpResponse(status=501)


async def events_wait(request: HttpRequest, run_id: str) -> HttpResponse:
    return HttpResponse(status=501)


async def activity_stream(request: HttpRequest, run_id: str) -> HttpResponse:
    return HttpResponse(status=501)
