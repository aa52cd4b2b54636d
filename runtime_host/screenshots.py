"""Screenshots on demand, for the web side.

The browser's DevTools endpoint (`Runtime.cdp_endpoint`, loopback) is reachable from
every process on the host machine, as the CDP proxy needs anyway; so a screenshot is
taken over a short-lived connection of the caller's own, with no queue to the host
process: attach to the page, `Page.captureScreenshot`, detach, store the artifact.

"The last active page" is the first page of DevTools' `/json/list`, which Chromium
sorts by last activity.
"""

import base64
import io
import itertools
import json
import urllib.request
from typing import Any
from urllib.parse import urlparse

import orjson
from websockets.sync.client import connect

from runs.api.errors import Conflict, NotFound
from runs.models import Artifact, Runtime

TIMEOUT_S = 15


def _page_targets(cdp_endpoint: str) -> list[dict[str, Any]]:
    parsed = urlparse(cdp_endpoint)
    url = f"http://{parsed.hostname}:{parsed.port}/json/list"
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        targets: list[dict[str, Any]] = json.load(response)
    return [t for t in targets if t.get("type") == "page"]


def screenshot_bytes(
    cdp_endpoint: str, target_id: str | None = None
) -> tuple[bytes, dict[str, Any]]:
    """PNG bytes of a page (the given target, else the last active page) and its info."""
    pages = _page_targets(cdp_endpoint)
    if target_id:
        pages = [p for p in pages if p.get("id") == target_id]
    else:
        real = [p for p in pages if not str(p.get("url", "")).startswith("about:")]
        pages = real or pages
    if not pages:
        raise NotFound(f"No page {target_id!r} in this runtime." if target_id else "No page open.")
    page = pages[0]
    ids = itertools.count(1)
    with connect(cdp_endpoint, max_size=None, open_timeout=TIMEOUT_S) as ws:

        def call(method: str, params: dict[str, Any], session: str = "") -> dict[str, Any]:
            message_id = next(ids)
            message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            ws.send(orjson.dumps(message).decode())
            while True:
                reply = orjson.loads(ws.recv(timeout=TIMEOUT_S))
                if reply.get("id") == message_id:
                    if "error" in reply:
                        raise Conflict(
                            f"{method} failed: {reply['error'].get('message')}",
                            code="runtime.screenshot_failed",
                        )
                    result: dict[str, Any] = reply.get("result") or {}
                    return result

        session = call("Target.attachToTarget", {"targetId": page["id"], "flatten": True})[
            "sessionId"
        ]
        try:
            shot = call("Page.captureScreenshot", {"format": "png"}, session)
        finally:
            call("Target.detachFromTarget", {"sessionId": session})
    return base64.b64decode(shot["data"]), {"targetId": page["id"], "url": page.get("url", "")}


def capture_screenshot(runtime_id: str, target_id: str | None = None) -> Artifact:
    """Takes a screenshot of a running runtime's page and stores it on its active run
    (kind `screenshot`, which also makes it the run's thumbnail). Blocking: call it
    from a thread (sync_to_async) in async code."""
    from runs.selectors import active_run_of
    from runs.services import artifact_store

    runtime = Runtime.objects.get(pk=runtime_id)
    run = active_run_of(runtime)
    if runtime.status != Runtime.Status.RUNNING or not runtime.cdp_endpoint or run is None:
        raise Conflict(f"Runtime {runtime_id} is {runtime.status}.", code="runtime.not_running")
    data, page = screenshot_bytes(runtime.cdp_endpoint, target_id)
    return artifact_store(
        run=run,
        kind=Artifact.Kind.SCREENSHOT,
        name=f"screenshot-{page['targetId'][:8]}.png",
        content=io.BytesIO(data),
        content_type="image/png",
        metadata=page,
    )
