"""Read one page of conversations from a response, parsing the body once.

Each conversation comes out as its own JSON bytes, decoded by `decoding.ConversationPayload`
(one strict typed pass) and later spliced into its RECORD line unchanged. Small bodies are
read whole and split into conversations by one msgspec call (`list[msgspec.Raw]`: a scan, no
Python objects). Large or chunked bodies (PolyAI streams big pages with chunked transfer
encoding; a page of long transcripts can be hundreds of MB) are split incrementally by
`_StreamedPage`, one conversation at a time, so memory stays flat however large the page.
The next-page token is known only once the body has been read to the end, because the API
does not promise key order.

JSON may put newlines between tokens; a RECORD line may not contain one. A string cannot
hold a raw control character (msgspec rejects it), so in JSON that decoded, every CR or LF
byte is whitespace and becomes a space.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

import msgspec
import requests

from tap_polyai.decoding import ConversationPayload

STREAM_THRESHOLD_BYTES = 16 << 20
_CHUNK_BYTES = 256 << 10
_WHOLE_READ_BYTES = 1 << 20


class _Page(msgspec.Struct):
    conversations: list[msgspec.Raw]
    cursor: t.Any = msgspec.UNSET  # UNSET: no `cursor` key (offset paging)
    next_offset: t.Any = None


_page_decoder = msgspec.json.Decoder(_Page)


class BrokenBodyError(Exception):
    """The body was cut short or is not the JSON the API documents."""


@dataclass(frozen=True)
class NextPage:
    """Where the next page starts: a cursor (v3) or an offset (v2 without streaming)."""

    cursor: str | None = None
    offset: int | None = None

    def params(self) -> dict[str, str | int]:
        return (
            {"cursor": self.cursor}
            if self.cursor is not None
            else {"offset": t.cast(int, self.offset)}
        )


class PageReader:
    """Iterate `conversations()`, then read `next_page` (None: this was the last page)."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.next_page: NextPage | None = None
        self.bytes_read = 0  # body bytes read so far

    def is_streamed(self) -> bool:
        headers = self._response.headers
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return True
        length = headers.get("Content-Length")
        if length is None:
            return True
        try:
            return int(length) > STREAM_THRESHOLD_BYTES
        except ValueError:
            raise BrokenBodyError("the Content-Length header is not a number") from None

    def conversations(self) -> t.Iterator[ConversationPayload]:
        try:
            yield from (self._stream() if self.is_streamed() else self._whole())
        except msgspec.ValidationError as exc:
            # msgspec names the expected type and a path, never the bytes themselves.
            raise BrokenBodyError(f"response body is not the documented page ({exc})") from None
        except msgspec.DecodeError as exc:
            # msgspec names the error and a byte offset, never the bytes themselves.
            raise BrokenBodyError(f"response body is not valid JSON ({exc})") from None

    def _whole(self) -> t.Iterator[ConversationPayload]:
        # Not `.content`: it reads 10 KiB at a time; reading 1 MiB at a time took less than
        # half its CPU on 5 MB pages.
        body = b"".join(self._response.iter_content(_WHOLE_READ_BYTES))
        self.bytes_read = len(body)
        page = _page_decoder.decode(body)
        if _has_line_breaks(body):
            page = _page_decoder.decode(_without_line_breaks(body))
        self.next_page = _next_page(page.cursor is not msgspec.UNSET, page.cursor, page.next_offset)
        for raw in page.conversations:
            yield ConversationPayload(raw)

    def _stream(self) -> t.Iterator[ConversationPayload]:
        page = _StreamedPage(self._counted(self._response.iter_content(_CHUNK_BYTES)))
        for raw in page.conversations():
            yield ConversationPayload(_without_line_breaks(raw) if _has_line_breaks(raw) else raw)
        top = page.top_level
        self.next_page = _next_page("cursor" in top, top.get("cursor"), top.get("next_offset"))

    def _counted(self, chunks: t.Iterator[bytes]) -> t.Iterator[bytes]:
        for chunk in chunks:
            self.bytes_read += len(chunk)
            yield chunk


def _has_line_breaks(data: bytes) -> bool:
    return b"\n" in data or b"\r" in data


def _without_line_breaks(data: bytes) -> bytes:
    """Only for JSON that decoded: there, CR and LF can only be whitespace between tokens."""
    return data.replace(b"\n", b" ").replace(b"\r", b" ")


_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_AT_BYTE = re.compile(r"\(byte (\d+)\)$")
_skip_decoder = msgspec.json.Decoder(msgspec.Raw)  # checks one value's syntax, builds nothing


class _StreamedPage:
    """Split a page's body, arriving in chunks, into each conversation's JSON bytes.

    One scan: the top level (`{"conversations": [...], "cursor": ...}` in any key order) is
    walked here, token by token; each value in it — a conversation, a key, the cursor — is
    measured by msgspec, which checks its syntax and stops at its end. msgspec has no
    incremental API, but it reports where a value ends when trailing data follows
    ("trailing characters (byte N)"), and says "truncated" when the buffer ends inside the
    value: then more chunks are read (at least doubling what is buffered, so a huge value is
    rescanned a bounded number of times) and the value is measured again.
    """

    def __init__(self, chunks: t.Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.top_level: dict[str, t.Any] = {}  # every top-level value but the conversations

    def conversations(self) -> t.Iterator[bytes]:
        seen = False
        self._expect(b"{")
        if self._peek() == b"}":
            self._pos += 1
        else:
            while True:
                key = msgspec.json.decode(self._value())
                if not isinstance(key, str):
                    raise BrokenBodyError("response body is not valid JSON (a key is no string)")
                self._expect(b":")
                if key == "conversations":
                    seen = True
                    yield from self._array()
                else:
                    self.top_level[key] = msgspec.json.decode(self._value())
                if self._next_of(b",}") == b"}":
                    break
        if not seen:
            raise BrokenBodyError("response body has no 'conversations' array")
        if self._peek(at_eof=None) is not None:
            raise BrokenBodyError("response body is not valid JSON (data after the page)")

    def _array(self) -> t.Iterator[bytes]:
        self._expect(b"[")
        if self._peek() == b"]":
            self._pos += 1
            return
        while True:
            yield self._value()
            if self._next_of(b",]") == b"]":
                return

    def _expect(self, token: bytes) -> None:
        if self._peek() != token:
            raise BrokenBodyError(f"response body is not the documented page (expected {token!r})")
        self._pos += 1

    def _next_of(self, tokens: bytes) -> bytes:
        token = self._peek()
        if token not in tokens:
            raise BrokenBodyError("response body is not valid JSON (unexpected token)")
        self._pos += 1
        return token

    def _peek(self, at_eof: t.Any = ...) -> t.Any:
        """The next byte that is not whitespace (not consumed)."""
        while True:
            found = _NOT_SPACE.search(self._buf, self._pos)
            if found is not None:
                self._pos = found.start()
                return self._buf[self._pos : self._pos + 1]
            self._pos = len(self._buf)
            if not self._read_more(1):
                if at_eof is ...:
                    raise BrokenBodyError("response body was cut short")
                return at_eof

    def _value(self) -> bytes:
        """The next JSON value's bytes, consumed."""
        self._peek()
        while True:
            view = memoryview(self._buf)[self._pos :]
            try:
                _skip_decoder.decode(view)
            except msgspec.DecodeError as exc:
                message = str(exc)
                at = _AT_BYTE.search(message)
                if at is not None and "trailing characters" in message:
                    end = self._pos + int(at.group(1)) - 1  # the byte after the value
                elif "truncated" in message or (at is not None and int(at.group(1)) == len(view)):
                    # Cut by the end of the buffer (a number cut after "1." or "1e" reads as
                    # malformed at the very end): read more, at least doubling the buffer.
                    if not self._read_more(2 * len(view)):
                        raise BrokenBodyError("response body was cut short") from None
                    continue
                else:
                    raise
            else:
                # The value runs to the end of what is buffered; a number might go on.
                if not self._eof and self._read_more(len(view) + 1):
                    continue
                end = len(self._buf)
            finally:
                view.release()
            value = self._buf[self._pos : end].rstrip(b" \t\r\n")
            self._pos = end
            return value

    def _read_more(self, need: int) -> bool:
        """Buffer at least `need` unread bytes if the body has them; False at its end."""
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        grew = False
        while have < need and not self._eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
            elif chunk:
                parts.append(chunk)
                have += len(chunk)
                grew = True
        self._buf = b"".join(parts)
        self._pos = 0
        return grew


def _next_page(has_cursor: bool, cursor: t.Any, next_offset: t.Any) -> NextPage | None:
    """v3 says `cursor: null` at the end; responses without a cursor page by `next_offset`.

    A cursor that is not a string or an offset that is not a non-negative integer is a broken
    body: retried like a truncated one, then a named error.
    """
    if has_cursor:
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, (str, int)):
            raise BrokenBodyError("the page's 'cursor' is not a string")
        return NextPage(cursor=str(cursor))
    if next_offset is None:
        return None
    if isinstance(next_offset, bool) or not isinstance(next_offset, int) or next_offset < 0:
        raise BrokenBodyError("the page's 'next_offset' is not a non-negative integer")
    return NextPage(offset=next_offset)
