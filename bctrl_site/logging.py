"""Log hygiene: viewer lease tokens and signed download tokens never reach a log line.

An embed URL is `/embed/<kind>/<token>[/…]` and the token is the whole credential.
Django's `django.request` logger names the path of every 4xx/5xx ("Forbidden:
/embed/replay/<token>"), and a web server's access log names every path. The
`RedactEmbedTokens` filter rewrites `/embed/<kind>/<anything>` to
`/embed/<kind>/[redacted]` in a record's message, and the token of a signed download URL
(`…/file?token=<token>`, seed 004) to `token=[redacted]`; settings.LOGGING puts it on the root
handler and, at the source, on `django.request`, `django.server` and `daphne.access`
(so handlers added later, such as pytest's caplog, see the redacted text too).

Daphne writes its access log straight to stdout by default (verbosity 1), outside
logging, where no filter reaches. `LoggingAccessLog` sends it through the
`daphne.access` logger instead, at INFO, so it is redacted like the rest; the daphne
that `manage.py serve` (hence `make run`) starts uses it (bctrl_site/webserver.py).
"""

import logging
import re
from typing import Any

REDACTED = "[redacted]"
# Embed URLs (/embed/<kind>/<token>), runtime connect URLs (/cdp/<token>) and the live
# embed's websocket (/ws/live/<token>).
_EMBED_PATH = re.compile(r"(/embed/[A-Za-z]+/|/cdp/|/ws/live/)[^\s\"'<>]+")
# Signed download URLs of the recordings API (seed 004): /api/v1/recordings/<id>/file?token=…
_TOKEN_PARAMETER = re.compile(r"([?&]token=)[^&#\s\"'<>]+")
_MARKERS = ("/embed/", "/cdp/", "/ws/live/", "token=")


def redact(text: str) -> str:
    """`text` with the token (and anything after it) of every embed path replaced, and
    the value of every `token` query parameter."""
    return _TOKEN_PARAMETER.sub(r"\1" + REDACTED, _EMBED_PATH.sub(r"\1" + REDACTED, text))


class RedactEmbedTokens(logging.Filter):
    """Rewrites lease tokens out of a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        if any(marker in message for marker in _MARKERS):
            record.msg = redact(message)
            record.args = ()
        return True


class LoggingAccessLog:
    """Daphne's action logger (its `AccessLogGenerator` interface), written to the
    `daphne.access` logger instead of a stream: one NCSA-like line per request."""

    def __init__(self, stream: Any = None) -> None:
        self.logger = logging.getLogger("daphne.access")

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if protocol == "http" and action == "complete":
            line = f"{details['method']} {details['path']}"
            self.write(details.get("client"), line, details.get("status"), details.get("size"))
        elif protocol == "websocket" and action in (
            "connecting",
            "rejected",
            "connected",
            "disconnected",
        ):
            verb = {
                "connecting": "WSCONNECTING",
                "rejected": "WSREJECT",
                "connected": "WSCONNECT",
                "disconnected": "WSDISCONNECT",
            }[action]
            self.write(details.get("client"), f"{verb} {details['path']}", None, None)

    def write(self, client: Any, request: str, status: Any, size: Any) -> None:
        host = str(client) if client else "-"  # daphne gives "host:port"
        self.logger.info(
            '%s "%s" %s %s', host, redact(request), status or "-", size if size else "-"
        )
