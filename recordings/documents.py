"""Reading a recording document as a stream, one rrweb event at a time, in bounded memory.

Two shapes: seed 003's `{"sessionId", "duration", "events": {"<target>": [event, …], …}}`
(what `GET …/browser-rendering/recording/{sessionId}` answers, here and upstream) and a
plain rrweb event array (one target). `DocumentReader.events()` yields `(target, raw)` for
each event, where `raw` is the event's own JSON bytes as they came; the other fields of
the document (small values, at most HEAD_VALUE_MAX_BYTES each) are in `head` once the
events are read.

What is in memory at a time: the bytes of the event being read (refused past
`max_event_bytes`) and one read of the stream. The scanner does not build Python values:
a regular expression skips strings and everything but brackets in C, and Python code
runs once per bracket; each event's bytes are parsed by whoever takes them (orjson).
"""

import re
from collections.abc import Iterator
from typing import Any, Protocol

import orjson

READ_BYTES = 256 * 1024
HEAD_VALUE_MAX_BYTES = 64 * 1024
KEY_MAX_BYTES = 1024

# Everything up to the next bracket or unfinished string: runs of other bytes, and whole
# strings (escapes included). It always matches, so it never backtracks past its start.
_SKIP = re.compile(rb'(?:[^"\[\]{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*', re.DOTALL)
_SPACE = re.compile(rb"[ \t\r\n]*")
_SCALAR = re.compile(rb"[^,\]}\s]*")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = frozenset(b"[{")


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class DocumentError(Exception):
    """The document is not one this reader takes; the message says where and why."""


class MalformedDocument(DocumentError):
    """Not JSON, or JSON that ends early."""


class WrongShape(DocumentError):
    """JSON, but not a recording document: the events are not where they belong."""


class TooLarge(DocumentError):
    """One event, one field or the whole document is larger than the limit."""


def loads(raw: bytes, what: str) -> Any:
    """The value of one piece of the document (an event, a field), or MalformedDocument."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedDocument(f"Malformed JSON in {what}: {exc}") from None


class DocumentReader:
    def __init__(
        self,
        stream: Readable,
        *,
        max_event_bytes: int,
        max_bytes: int,
        default_target: str,
    ) -> None:
        self.stream = stream
        self.max_event_bytes = max_event_bytes
        self.max_bytes = max_bytes
        self.default_target = default_target
        self.head: dict[str, Any] = {}
        self.bytes_read = 0
        self._buffer = bytearray()
        self._pos = 0
        self._eof = False

    # --- The document ---------------------------------------------------------------------

    def events(self) -> Iterator[tuple[str, bytes]]:
        """`(target, raw JSON of one event)` for each event, in document order."""
        opening = self._next_byte("a JSON object or array")
        if opening == ord("["):
            yield from self._array_items(self.default_target)
        elif opening == ord("{"):
            yield from self._document()
        else:
            raise WrongShape("A recording is a JSON object with events, or an array of events.")
        self._skip_space()
        if self._pos < len(self._buffer) or self._fill():
            raise MalformedDocument(f"Unexpected data after the document at byte {self._at()}.")

    def _document(self) -> Iterator[tuple[str, bytes]]:
        seen_events = False
        for key in self._object_keys():
            if key == "events":
                if seen_events:
                    raise WrongShape('"events" appears twice.')
                seen_events = True
                if self._next_byte('an object of targets after "events"') != ord("{"):
                    raise WrongShape('"events" must be an object of target → event array.')
                for target in self._object_keys():
                    if self._next_byte(f"the events of target {target!r}") != ord("["):
                        raise WrongShape(f"The events of target {target!r} must be an array.")
                    yield from self._array_items(target)
            else:
                raw = self._value(HEAD_VALUE_MAX_BYTES, f"field {key!r}")
                self.head[key] = self._loads(raw, f"field {key!r}")
        if not seen_events:
            raise WrongShape('The document has no "events" object.')

    def _object_keys(self) -> Iterator[str]:
        """The keys of the object whose `{` was just read; the caller reads each value."""
        self._skip_space()
        if self._peek() == ord("}"):
            self._pos += 1
            return
        while True:
            if self._next_byte("a field name") != _QUOTE:
                raise MalformedDocument(f"Expected a field name at byte {self._at()}.")
            self._pos -= 1
            raw = self._value(KEY_MAX_BYTES, "a field name")
            key = self._loads(raw, "a field name")
            if self._next_byte("':'") != ord(":"):
                raise MalformedDocument(f"Expected ':' at byte {self._at()}.")
            self._skip_space()
            yield key
            separator = self._next_byte("',' or '}'")
            if separator == ord("}"):
                return
            if separator != ord(","):
                raise MalformedDocument(f"Expected ',' or '}}' at byte {self._at()}.")
            self._skip_space()

    def _array_items(self, target: str) -> Iterator[tuple[str, bytes]]:
        """The items of the array whose `[` was just read."""
        self._skip_space()
        if self._peek() == ord("]"):
            self._pos += 1
            return
        index = 0
        while True:
            yield target, self._value(self.max_event_bytes, f"event {index} of target {target!r}")
            index += 1
            separator = self._next_byte("',' or ']'")
            if separator == ord("]"):
                return
            if separator != ord(","):
                raise MalformedDocument(f"Expected ',' or ']' at byte {self._at()}.")
            self._skip_space()

    def _loads(self, raw: bytes, what: str) -> Any:
        return loads(raw, what)

    # --- One value --------------------------------------------------------------------------

    def _value(self, limit: int, what: str) -> bytes:
        """The bytes of the JSON value at the current position (after spaces), whole."""
        self._skip_space()
        first = self._peek()
        if first is None:
            raise MalformedDocument(f"The document ends before {what}.")
        if first in _OPEN:
            end = self._container_end(limit, what)
        elif first == _QUOTE:
            end = self._string_end(self._pos + 1, limit, what)
        else:
            end = self._scalar_end(limit, what)
        if end - self._pos > limit:
            raise TooLarge(f"{what.capitalize()} is larger than {limit} bytes.")
        raw = bytes(self._buffer[self._pos : end])
        self._pos = end
        return raw

    def _container_end(self, limit: int, what: str) -> int:
        buffer = self._buffer
        depth = 0
        index = self._pos
        while True:
            index = _SKIP.match(buffer, index).end()  # type: ignore[union-attr]
            if index >= len(buffer):
                index = self._more(index, limit, what)
                buffer = self._buffer
                continue
            byte = buffer[index]
            if byte == _QUOTE:  # a string that the buffer holds only the start of
                index = self._string_end(index + 1, limit, what)
                buffer = self._buffer
                continue
            index += 1
            if byte in _OPEN:
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return index
            if index - self._pos > limit:
                raise TooLarge(f"{what.capitalize()} is larger than {limit} bytes.")

    def _string_end(self, index: int, limit: int, what: str) -> int:
        """The index after the closing quote of the string whose content starts at `index`."""
        while True:
            quote = self._buffer.find(b'"', index)
            if quote < 0:
                index = self._more(len(self._buffer), limit, what)
                continue
            before = quote - 1
            while self._buffer[before] == _BACKSLASH:
                before -= 1
            if (quote - 1 - before) % 2 == 0:  # not escaped
                return quote + 1
            index = quote + 1

    def _scalar_end(self, limit: int, what: str) -> int:
        while True:
            end = _SCALAR.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if end < len(self._buffer) or self._eof:
                if end == self._pos:
                    raise MalformedDocument(f"Expected a value at byte {self._at()}.")
                return end
            self._more(end, limit, what)

    def _more(self, index: int, limit: int, what: str) -> int:
        """Reads more of the stream while a value is being read; `index` (a position in
        the buffer) is returned for the buffer as it is after the read."""
        if index - self._pos > limit:
            raise TooLarge(f"{what.capitalize()} is larger than {limit} bytes.")
        shift = self._pos
        if not self._fill():
            raise MalformedDocument(f"The document ends inside {what}.")
        return index - (shift - self._pos)

    # --- The buffer -------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Appends the next read of the stream, dropping what was consumed; False at the end."""
        if self._eof:
            return False
        chunk = self.stream.read(READ_BYTES)
        if not chunk:
            self._eof = True
            return False
        self.bytes_read += len(chunk)
        if self.bytes_read > self.max_bytes:
            raise TooLarge(f"The document is larger than {self.max_bytes} bytes.")
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk
        return True

    def _skip_space(self) -> None:
        while True:
            self._pos = _SPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer) or not self._fill():
                return

    def _peek(self) -> int | None:
        if self._pos >= len(self._buffer) and not self._fill():
            return None
        return self._buffer[self._pos]

    def _next_byte(self, expected: str) -> int:
        self._skip_space()
        byte = self._peek()
        if byte is None:
            raise MalformedDocument(f"The document ends where {expected} was expected.")
        self._pos += 1
        return byte

    def _at(self) -> int:
        """The stream position of the buffer's current byte (for messages)."""
        return self.bytes_read - len(self._buffer) + self._pos
