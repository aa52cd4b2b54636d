"""`GET /v1/recorder.js`: the in-page recorder that this server's runtimes inject (the
rrweb record bundle and bctrl's glue, runtime_host.recorder), for the Python client's
local recorder (`client.record(page)`), so that a recording made on a user's machine is
captured by the same code, at the same version, as a hosted one. Public, as the static
files it is made of."""

import hashlib

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from runtime_host.recorder import BINDING_NAME, recorder_source


@require_safe
def recorder_script(request: HttpRequest) -> HttpResponse:
    source = recorder_source()
    response = HttpResponse(source, content_type="application/javascript; charset=utf-8")
    response["ETag"] = '"' + hashlib.sha256(source.encode()).hexdigest()[:32] + '"'
    response["Cache-Control"] = "public, max-age=300"
    # The name of the function the recorder calls with each batch (a JSON array).
    response["X-Bctrl-Binding"] = BINDING_NAME
    return response
