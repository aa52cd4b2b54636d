"""Refusing a websocket handshake: with an HTTP status and the API's JSON error body
where the server offers ASGI's websocket denial response extension (bctrl's daphne,
bctrl_site/webserver.py), with close code 4000 + that status elsewhere (Channels'
WebsocketCommunicator, a stock daphne that answers every refusal with a bare 403)."""

import json
from typing import Any

DENIAL_EXTENSION = "websocket.http.response"


async def refuse_handshake(
    consumer: Any, code: int, error_code: str, message: str, body: dict[str, Any] | None = None
) -> None:
    """Refuses `consumer`'s handshake; `code` is 4000 + the HTTP status, `body` the JSON
    answered (the API's error shape unless given)."""
    if DENIAL_EXTENSION not in (consumer.scope.get("extensions") or {}):
        await consumer.close(code=code, reason=message[:120])
        return
    raw = json.dumps(body or {"error": {"code": error_code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json")]
    if code == 4401:
        headers.append((b"www-authenticate", b'Bearer realm="bctrl"'))
    await consumer.base_send(
        {"type": "websocket.http.response.start", "status": code - 4000, "headers": headers}
    )
    await consumer.base_send({"type": "websocket.http.response.body", "body": raw})
