"""The service's message framing: a bad header costs that message only, never the stream."""

import io
import os
import threading

import pytest

from sam2roto import service
from sam2roto.service import FdReader, FramingError, read_message


def framed(body: bytes, length: bytes | None = None) -> bytes:
    return b"Content-Length: " + (length if length is not None else b"%d" % len(body)) + b"\r\n\r\n" + body


def messages(stream) -> list:
    """What read_message gives, message by message, to the end of the stream."""
    out = []
    while True:
        try:
            body = read_message(stream)
        except FramingError as e:
            out.append(f"error: {e}")
            continue
        if body is None:
            return out
        out.append(body)


def test_after_a_bad_header_the_next_message_is_read(monkeypatch):
    monkeypatch.setattr(service, "MAX_MESSAGE_BYTES", 100)
    stream = io.BytesIO(framed(b'{"a":1}', b"abc") + framed(b'{"b":2}') + framed(b"xyz", b"-3")
                        + framed(b"{}", b"9" * 5000) + framed(b'{"e":5}')
                        + framed(b'{"c":3}') + framed(b"x" * 101) + b"Content-Type: json\r\n" + framed(b'{"d":4}'))
    assert messages(stream) == ["error: bad Content-Length 'abc'", b'{"b":2}', "error: bad Content-Length '-3'",
                                f"error: bad Content-Length '{'9' * 40}'", b'{"e":5}', b'{"c":3}',
                                "error: a message of 101 bytes, more than the 100 allowed", b'{"d":4}']


def test_a_large_message_through_a_pipe():
    read_end, write_end = os.pipe()
    body = b'{"x":"' + b"y" * (5 << 20) + b'"}'

    def host():
        with os.fdopen(write_end, "wb") as w:
            w.write(framed(body) + framed(b"{}"))

    threading.Thread(target=host).start()
    reader = FdReader(read_end)
    try:
        assert read_message(reader) == body and read_message(reader) == b"{}" and read_message(reader) is None
    finally:
        os.close(read_end)


@pytest.mark.parametrize("cut", [5, 30])
def test_a_stream_that_ends_mid_message_ends(cut):
    assert messages(io.BytesIO(framed(b'{"a":1}' * 5)[:cut])) == []
