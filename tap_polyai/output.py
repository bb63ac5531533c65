"""Singer output: msgspec encoding into one buffer, written out in large blocks.

The SDK's `MsgSpecWriter` flushes stdout after every message: one write system call (and,
behind a pipe, a wake-up of the target) per conversation. This writer produces the same
bytes but keeps them in a buffer until
- a STATE message: the buffer (every record before it, then the STATE) is written and
  flushed at once, so a STATE never reaches the target before the records it covers, and a
  target that has a STATE has everything before it;
- the buffer holds `FLUSH_BYTES` (bounded memory whatever the record size);
- the process exits (atexit), including after an error, so no record written so far is lost.
SIGTERM/SIGINT: the SDK's handler writes a final STATE and exits. A signal handler runs
between two bytecodes of the main thread, possibly in the middle of `write_message`; the
tap defers the handler until the current message is complete (`defer_signal`), so the
buffer is never seen half-appended and the final STATE still follows every record before it.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import typing as t
import weakref

from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib.encoding.simple import StateMessage

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

FLUSH_BYTES = 1 << 20
_COMMA = ord(",")

_live: weakref.WeakSet[BufferedMsgSpecWriter] = weakref.WeakSet()


class BufferedMsgSpecWriter(MsgSpecWriter):
    """`MsgSpecWriter`'s bytes, written per STATE or per MiB instead of per message."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._busy = False
        self._deferred: t.Callable[[], None] | None = None
        self._stdout: t.Any = None  # the stdout the buffered bytes were meant for
        self._prefixes: dict[str, bytes] = {}  # stream -> start of its RECORD messages
        _live.add(self)

    def write_message(self, message: Message) -> None:
        self._append((message.to_dict(),), flush=isinstance(message, StateMessage))

    def write_records(
        self,
        stream: str,
        records: t.Iterable[dict[str, t.Any]],
        version: int | None,
        extracted: t.Any,
    ) -> None:
        """RECORD messages from their parts: the bytes `RecordMessage.to_dict` would give,
        without building message objects (the per-turn cost of `conversation_turns`)."""
        message: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": None}
        if version is not None:
            message["version"] = version
        message["time_extracted"] = extracted

        def messages() -> t.Iterator[dict[str, t.Any]]:
            for record in records:
                message["record"] = record
                yield message

        self._append(messages(), flush=False)

    def write_record_bodies(
        self,
        stream: str,
        bodies: t.Iterable[t.Any],  # bytes-like: bytes, memoryview, msgspec.Raw
        version: int | None,
        extracted: t.Any,
    ) -> None:
        """RECORD messages around records that are already JSON (one object each, on one
        line): the same message as `write_records`, without decoding or re-encoding them.
        Called once per conversation: kept lean (no context manager, prefix cached)."""
        prefix, suffix = self._record_affixes(stream, version, extracted)
        self._busy = True
        try:
            buffer = self._buffer
            if not buffer:
                self._stdout = sys.stdout
            for body in bodies:
                buffer += prefix
                buffer += body
                buffer += suffix
            if len(buffer) >= FLUSH_BYTES:
                self.flush()
        finally:
            self._busy = False
        self._run_deferred()

    def write_indexed_records(
        self,
        stream: str,
        head: dict[str, t.Any],
        index_field: str,
        items: t.Iterable[t.Any],
        *,
        version: int | None,
        extracted: t.Any,
    ) -> None:
        """One RECORD per item: `head`'s fields, `index_field` (0, 1, ...), then the item's own
        fields (an item encodes to a JSON object, e.g. a msgspec struct). Each item is encoded
        once and its opening brace becomes the comma after the index (the per-turn cost of
        `conversation_turns` on spliced conversations).

        It is encoded into a small buffer of its own, then appended: msgspec's
        `encode_into` resizes the buffer it writes to, so encoding onto the end of the MiB
        output buffer reallocated it for each turn (a sync of 144k turn rows: 0.2 s of CPU)."""
        prefix, suffix = self._record_affixes(stream, version, extracted)
        start = prefix + encoder.encode({**head, index_field: 0})[:-2]  # ...,"index": (no 0})
        encode_into = encoder.encode_into
        item_bytes = bytearray()
        self._busy = True
        try:
            buffer = self._buffer
            if not buffer:
                self._stdout = sys.stdout
            for index, item in enumerate(items):
                buffer += start
                buffer += b"%d" % index
                encode_into(item, item_bytes)
                if len(item_bytes) == 2:  # {}: no fields of its own
                    buffer += b"}"
                else:
                    item_bytes[0] = _COMMA
                    buffer += item_bytes
                buffer += suffix
            if len(buffer) >= FLUSH_BYTES:
                self.flush()
        finally:
            self._busy = False
        self._run_deferred()

    def _record_affixes(
        self, stream: str, version: int | None, extracted: t.Any
    ) -> tuple[bytes, bytes]:
        """The bytes of a RECORD message before its record (cached per stream) and after it."""
        prefix = self._prefixes.get(stream)
        if prefix is None:
            prefix = encoder.encode({"type": "RECORD", "stream": stream})[:-1] + b',"record":'
            self._prefixes[stream] = prefix
        tail: dict[str, t.Any] = {} if version is None else {"version": version}
        tail["time_extracted"] = extracted
        return prefix, b"," + encoder.encode(tail)[1:] + b"\n"

    def _append(self, messages: t.Iterable[dict[str, t.Any]], *, flush: bool) -> None:
        """Encode into the buffer; write it out when asked or when it is large."""
        self._busy = True
        try:
            buffer = self._buffer
            if not buffer:
                self._stdout = sys.stdout
            for message in messages:
                encoder.encode_into(message, buffer, -1)  # -1: append
                buffer.extend(b"\n")
            if flush or len(buffer) >= FLUSH_BYTES:
                self.flush()
        finally:
            self._busy = False
        self._run_deferred()

    def flush(self) -> None:
        """Write out everything buffered, then flush stdout."""
        if self._buffer:
            sys.stdout.buffer.write(self._buffer)
            self._buffer.clear()
        sys.stdout.flush()

    def defer_signal(self, handler: t.Callable[[], None]) -> None:
        """Run `handler` now, or, if a message is being written, right after it."""
        if self._busy:
            self._deferred = handler
        else:
            handler()

    def _run_deferred(self) -> None:
        handler, self._deferred = self._deferred, None
        if handler is not None:
            handler()


@atexit.register
def _flush_at_exit() -> None:
    """Records written after the last STATE still reach stdout when the process ends."""
    for writer in list(_live):
        # Not when stdout was redirected meanwhile (in-process runs in tests): the bytes
        # belonged to the redirected stream, not to whatever stdout is now.
        if writer._buffer and writer._stdout is sys.stdout:
            with contextlib.suppress(OSError, ValueError):  # stdout closed: nowhere to go
                writer.flush()
