"""Recording documents read as a stream (recordings.documents): the events come out whole
and in order however the bytes are cut, and what is not a recording says why."""

import io
from typing import Any

import orjson
import pytest

from recordings.documents import (
    DocumentReader,
    MalformedDocument,
    TooLarge,
    WrongShape,
    loads,
)


class Trickle(io.BytesIO):
    """A stream that hands out `step` bytes a read, as a slow network would."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(self.step)


def read(
    data: bytes, *, step: int = 1 << 20, max_event: int = 10_000, max_bytes: int = 1 << 30
) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    reader = DocumentReader(
        Trickle(data, step), max_event_bytes=max_event, max_bytes=max_bytes, default_target="t"
    )
    events = [(target, loads(raw, "an event")) for target, raw in reader.events()]
    return events, reader.head


TRICKY = [
    {"type": 4, "timestamp": 1, "data": {"href": 'https://x/?q="]}{["', "a": [[], {}, [{}]]}},
    {"type": 3, "timestamp": 2, "data": {"text": 'back\\slash \\" quote ] } é 🎉'}},
    {"type": 3, "timestamp": 3, "data": {}},
]


@pytest.mark.parametrize("step", [1, 2, 7, 4096])
def test_events_come_out_whole_however_the_stream_is_cut(step: int) -> None:
    document = orjson.dumps(
        {"events": {"a": TRICKY, "b": [], "c": TRICKY[:1]}, "sessionId": "s-1", "duration": 9}
    )
    events, head = read(document, step=step)
    assert events == [("a", event) for event in TRICKY] + [("c", TRICKY[0])]
    assert head == {"sessionId": "s-1", "duration": 9}  # read after the events, too


def test_a_plain_array_is_one_target_and_spaces_do_not_matter() -> None:
    document = b" \n[ \t" + b" ,\r\n ".join(orjson.dumps(event) for event in TRICKY) + b" ]\n"
    events, head = read(document, step=3)
    assert events == [("t", event) for event in TRICKY]
    assert head == {}


@pytest.mark.parametrize(
    ("document", "error", "words"),
    [
        (b"", MalformedDocument, "ends"),
        (b'{"events": {"a": [{"type": 4}', MalformedDocument, "ends"),
        (b'{"events": {"a": [{"type": 4} {"type": 4}]}}', MalformedDocument, "Expected ','"),
        (b'{"events": {"a": []}} {}', MalformedDocument, "after the document"),
        (b'{"events": {"a": []}, "events": {}}', WrongShape, "twice"),
        (b'{"events": [1]}', WrongShape, "object of target"),
        (b'{"events": {"a": {}}}', WrongShape, "must be an array"),
        (b'{"duration": 5}', WrongShape, 'no "events"'),
        (b"42", WrongShape, "JSON object"),
        (b"{events: {}}", MalformedDocument, "field name"),
        (b'{"events": {"a": [tru]}}', MalformedDocument, "Malformed JSON"),
    ],
)
def test_what_is_not_a_recording_says_why(document: bytes, error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        read(document, step=5)
    assert words in str(raised.value)


def test_an_event_past_the_limit_is_refused_before_it_is_all_read() -> None:
    huge = b'[{"type": 3, "timestamp": 1, "data": {"t": "' + b"x" * 10_000_000 + b'"}}]'
    stream = Trickle(huge, 4096)
    reader = DocumentReader(stream, max_event_bytes=50_000, max_bytes=1 << 30, default_target="t")
    with pytest.raises(TooLarge, match="Event 0 of target 't' is larger than 50000 bytes"):
        list(reader.events())
    assert stream.tell() < 100_000


def test_a_document_past_its_limit_is_refused() -> None:
    document = orjson.dumps([TRICKY[2]] * 1000)
    with pytest.raises(TooLarge, match="larger than 5000 bytes"):
        read(document, step=1000, max_bytes=5000)
