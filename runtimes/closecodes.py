"""Close codes of bctrl's websockets besides a refused handshake's (runtimes.handshake). Like
those, each is 4000 + the HTTP status of the same meaning: daphne's autobahn closes an
open socket only with 1000 or 3000-4999, so RFC 6455's 1008 and 1009 cannot be sent."""

# A message the socket's protocol does not allow (a live viewer's non-JSON, for one).
MESSAGE_MALFORMED = 4400
# A message over the socket's size limit (runtimes.routing.MESSAGE_LIMITS), refused
# while it streams in.
MESSAGE_TOO_LARGE = 4413
# The server lost its channel layer (Redis): reconnect, as after a dropped connection.
LAYER_UNAVAILABLE = 4503
