"""Read one page of conversations from a response, parsing the body exactly once.

Small bodies are read whole and decoded in one msgspec call (the fastest path). Large or
chunked bodies (PolyAI streams big pages with chunked transfer encoding; a page of long
transcripts can be hundreds of MB) are parsed incrementally with ijson, one conversation at
a time, so memory stays flat however large the page. The next-page token is known only once
the body has been read to the end, because the API does not promise key order.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import ijson
import msgspec
import requests

STREAM_THRESHOLD_BYTES = 16 << 20
_CHUNK_BYTES = 256 << 10

_decoder = msgspec.json.Decoder()


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

    def is_streamed(self) -> bool:
        headers = self._response.headers
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return True
        length = headers.get("Content-Length")
        return length is None or int(length) > STREAM_THRESHOLD_BYTES

    def conversations(self) -> t.Iterator[dict[str, t.Any]]:
        if self.is_streamed():
            yield from self._stream()
        else:
            yield from self._whole()

    def _whole(self) -> t.Iterator[dict[str, t.Any]]:
        try:
            body = _decoder.decode(self._response.content)
        except msgspec.DecodeError as exc:
            # msgspec names the error and a byte offset, never the bytes themselves.
            raise BrokenBodyError(f"response body is not valid JSON ({exc})") from None
        if not isinstance(body, dict) or not isinstance(body.get("conversations"), list):
            raise BrokenBodyError("response body has no 'conversations' array")
        self.next_page = _next_page("cursor" in body, body.get("cursor"), body.get("next_offset"))
        yield from body["conversations"]

    def _stream(self) -> t.Iterator[dict[str, t.Any]]:
        # Three C-level parsers over the same bytes: one builds conversations one by one, the
        # others pick out the two top-level scalars wherever they sit. No Python per JSON event.
        conversations = ijson.sendable_list()
        cursors = ijson.sendable_list()
        offsets = ijson.sendable_list()
        parsers = [
            ijson.items_coro(conversations, "conversations.item", use_float=True),
            ijson.items_coro(cursors, "cursor"),
            ijson.items_coro(offsets, "next_offset"),
        ]
        try:
            for chunk in self._response.iter_content(_CHUNK_BYTES):
                for parser in parsers:
                    parser.send(chunk)
                if conversations:
                    yield from conversations
                    conversations.clear()
            for parser in parsers:
                parser.close()
        except ijson.JSONError as exc:
            # Not str(exc): yajl quotes the bytes around the error, i.e. possibly transcripts.
            msg = f"response body is not valid JSON ({type(exc).__name__})"
            raise BrokenBodyError(msg) from None
        yield from conversations
        self.next_page = _next_page(
            bool(cursors), cursors[0] if cursors else None, offsets[0] if offsets else None
        )


def _next_page(has_cursor: bool, cursor: t.Any, next_offset: t.Any) -> NextPage | None:
    """v3 says `cursor: null` at the end; responses without a cursor page by `next_offset`."""
    if has_cursor:
        return NextPage(cursor=str(cursor)) if cursor else None
    if next_offset is None:
        return None
    return NextPage(offset=int(next_offset))
