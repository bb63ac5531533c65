"""Airbyte output: the tap's message writer, speaking the Airbyte protocol instead of Singer.

The tap runs unchanged and hands its messages to this writer, which writes what an Airbyte
platform reads on stdout, one JSON object per line:
- a RECORD (`{"type":"RECORD","record":{"stream":...,"data":{...},"emitted_at":ms}}`) per
  Singer RECORD. The tap's fast paths (`write_record_bodies`, `write_indexed_records`) stay as
  cheap as for Singer: only the bytes around the record change (`_record_affixes`), the
  record's own JSON is spliced in as received;
- per-stream STATE messages (`type: STREAM`) at each checkpoint the tap writes, one per
  configured stream, carrying its bookmarks (`state.py` says which), with the number of
  records written for the stream since its previous STATE (`sourceStats`);
- a stream-status TRACE `RUNNING` before a stream's first record;
- nothing for SCHEMA (the catalog is Airbyte's schema) or ACTIVATE_VERSION.
The buffering, the flush at each STATE and the signal deferral are `BufferedMsgSpecWriter`'s.
LOG and TRACE messages may come from any thread (a worker logs its retries): they are written
at once, whole lines under a lock, never into the record buffer.
"""

from __future__ import annotations

import collections.abc
import logging
import sys
import threading
import time
import typing as t

from singer_sdk.contrib.msgspec import encoder
from singer_sdk.singerlib.encoding.simple import RecordMessage, StateMessage

from tap_polyai.output import BufferedMsgSpecWriter

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.singerlib.encoding.simple import Message

# Python logging levels -> Airbyte LOG levels.
LOG_LEVELS = {
    logging.CRITICAL: "FATAL",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARN",
    logging.INFO: "INFO",
    logging.DEBUG: "DEBUG",
}


def now_ms() -> float:
    return time.time() * 1000


def _ms(extracted: dt.datetime) -> int:
    return int(extracted.timestamp() * 1000)


def stream_status(stream: str, status: str) -> dict[str, t.Any]:
    """A TRACE of type STREAM_STATUS: STARTED, RUNNING, COMPLETE or INCOMPLETE."""
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": now_ms(),
            "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
        },
    }


def error_trace(message: str, failure_type: str, stack_trace: str | None = None) -> dict:
    """A TRACE of type ERROR; `message` is what the tap logs for the failure."""
    error: dict[str, t.Any] = {"message": message, "failure_type": failure_type}
    if stack_trace:
        error["stack_trace"] = stack_trace
    return {"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": now_ms(), "error": error}}


StateTranslator = t.Callable[[t.Mapping[str, t.Any]], list[tuple[str, dict[str, t.Any]]]]


class AirbyteWriter(BufferedMsgSpecWriter):
    """Airbyte messages from the tap's Singer ones; see the module docstring."""

    def __init__(self, translate_state: StateTranslator | None = None) -> None:
        super().__init__()
        # Singer state -> [(configured stream, its stream_state)]; set before a read.
        self.translate_state = translate_state
        self._lock = threading.RLock()
        self._running: set[str] = set()
        self._counts: collections.Counter[str] = collections.Counter()
        self._suffix: tuple[int, bytes] = (-1, b"")  # (ms, its RECORD suffix): `_record_affixes`

    # Messages the SDK builds (STATE, SCHEMA, RECORD when stream maps are on)

    def write_message(self, message: Message) -> None:
        if isinstance(message, StateMessage):
            self.write_state(message.value)
        elif isinstance(message, RecordMessage):
            self.write_records(message.stream, (message.record,), None, message.time_extracted)
        # SCHEMA, ACTIVATE_VERSION, BATCH: nothing in Airbyte's protocol to carry them.

    def write_state(self, state: t.Mapping[str, t.Any]) -> None:
        """One STATE message per configured stream, then flush (records first, as Singer)."""

        if self.translate_state is None:
            return
        messages = []
        for stream, stream_state in self.translate_state(state):
            messages.append(
                {
                    "type": "STATE",
                    "state": {
                        "type": "STREAM",
                        "stream": {
                            "stream_descriptor": {"name": stream},
                            "stream_state": stream_state,
                        },
                        "sourceStats": {"recordCount": float(self._counts.pop(stream, 0))},
                    },
                }
            )
        self._append(messages, flush=True)

    # Records: the tap's fast paths, with Airbyte's envelope

    def write_records(
        self,
        stream: str,
        records: t.Iterable[dict[str, t.Any]],
        version: int | None,
        extracted: t.Any,
    ) -> None:
        self._note_running(stream)
        emitted_at = _ms(extracted) if extracted is not None else int(now_ms())
        inner: dict[str, t.Any] = {"stream": stream, "data": None, "emitted_at": emitted_at}
        message = {"type": "RECORD", "record": inner}
        counts = self._counts

        def messages() -> t.Iterator[dict[str, t.Any]]:
            for record in records:
                inner["data"] = record
                counts[stream] += 1
                yield message

        self._append(messages(), flush=False)

    def write_record_bodies(
        self, stream: str, bodies: t.Iterable[t.Any], version: int | None, extracted: t.Any
    ) -> None:
        if stream not in self._running:
            self._note_running(stream)
        if type(bodies) is not tuple and type(bodies) is not list:  # once per record: no ABC
            bodies = list(bodies)
        self._counts[stream] += len(bodies)
        super().write_record_bodies(stream, bodies, version, extracted)

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
        if type(items) is not list and type(items) is not tuple:
            items = list(items)
        if not items:
            return
        if stream not in self._running:
            self._note_running(stream)
        self._counts[stream] += len(items)
        super().write_indexed_records(
            stream, head, index_field, items, version=version, extracted=extracted
        )

    def _record_affixes(
        self, stream: str, version: int | None, extracted: t.Any
    ) -> tuple[bytes, bytes]:
        """`{"type":"RECORD","record":{"stream":S,"data":` and `,"emitted_at":MS}}` + newline.

        Called once per record on the fast paths, so the suffix is made once per millisecond
        (`_suffix`) and the millisecond comes from the clock, not from `extracted` (a
        datetime's `timestamp()` costs three times `time.time_ns()`): both are "now", taken a
        few microseconds apart, and emitted_at means when the source emitted the record."""
        prefix = self._prefixes.get(stream)
        if prefix is None:
            head = encoder.encode({"type": "RECORD", "record": {"stream": stream}})
            prefix = head[:-2] + b',"data":'
            self._prefixes[stream] = prefix
        ms = time.time_ns() // 1_000_000
        if ms != self._suffix[0]:
            self._suffix = (ms, b',"emitted_at":%d}}\n' % ms)
        return prefix, self._suffix[1]

    def _note_running(self, stream: str) -> None:
        if stream not in self._running:
            self._running.add(stream)
            self._append((stream_status(stream, "RUNNING"),), flush=False)

    # Whole messages from any thread: LOG, TRACE, SPEC, CATALOG, CONNECTION_STATUS

    def emit(self, message: dict[str, t.Any]) -> None:
        """Write one message now, after every record buffered so far when on the main thread."""
        line = encoder.encode(message) + b"\n"
        if threading.current_thread() is threading.main_thread() and not self._busy:
            self._buffer += line
            self.flush()
            return
        with self._lock:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()

    def flush(self) -> None:
        """As the tap's, under the lock the other threads' LOG lines take; a signal arriving
        meanwhile waits until the buffer is out (`defer_signal`), so nothing is written twice."""
        busy, self._busy = self._busy, True
        try:
            with self._lock:
                super().flush()
        finally:
            self._busy = busy
        if not busy:
            self._run_deferred()


class AirbyteLogHandler(logging.Handler):
    """Python logging as Airbyte LOG messages on stdout (Airbyte reads stdout only)."""

    def __init__(self, writer: AirbyteWriter, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = LOG_LEVELS.get(record.levelno) or (
                "ERROR" if record.levelno > logging.WARNING else "INFO"
            )
            message = {"type": "LOG", "log": {"level": level, "message": self.format(record)}}
            self._writer.emit(message)
        except Exception:  # noqa: BLE001 - logging must never break the sync
            self.handleError(record)
