"""Nothing secret or personal in any output, whatever a server sends back or a library logs.

A key can reach a log line by many roads: a server that echoes the request in its error
message, the SDK printing a setting whose type is wrong, urllib3 at DEBUG, a traceback. Rather
than trust every call site, two rules hold for all of them:
- every configured secret (each `api_key`, top level and per project, and any other setting
  that looks like a secret) is registered in `REDACTOR` as soon as the config is read, and cut
  from every log record — its message, arguments, traceback and stack — by a log-record factory
  that every logger in the process uses (SDK, urllib3, root, ours);
- phone-number-like strings (9 to 15 digits, optionally `+`, spaces, dots, dashes, brackets)
  are cut the same way, and `PolyAIError` messages go through the same redaction when built.
Transcript text cannot be recognised; it stays out of logs because response bodies are never
logged, only PolyAI's own error fields, shortened (`errors.describe_envelope`).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import typing as t
from urllib.parse import quote, quote_plus

from singer_sdk.metrics import METRICS_LOGGER_NAME, Point

REDACTED = "[redacted]"
PHONE_REDACTED = "[phone]"
MIN_SECRET_LENGTH = 4  # shorter values would cut ordinary words out of every line

# 9-15 digits, optionally led by + or 00 and separated by single spaces, dots, dashes or
# brackets; not glued to a word, a decimal point or an id (so dates, versions, UUID parts and
# timings stay readable).
PHONE = re.compile(r"(?<![\w./-])(?:\+|\(\+?)?\d(?:[ .()-]{0,2}\d){8,14}(?![\w])")

# Settings whose name says they are secret, wherever they sit in the config.
_SECRET_NAME = re.compile(r"(api_?key|secret|token|password|passwd|salt|credential)", re.I)


class Redactor:
    """Cuts registered secrets and phone numbers from text. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: t.Any) -> None:
        """Register secret values (strings; others are registered as their text)."""
        new = set()
        for value in values:
            if value is None or isinstance(value, bool):
                continue
            text = str(value)
            if len(text) >= MIN_SECRET_LENGTH:
                new |= {text, quote(text, safe=""), quote_plus(text), repr(text)[1:-1]}
        with self._lock:
            known = set(self._secrets)
            if new <= known:
                return
            self._secrets = tuple(sorted(known | new, key=len, reverse=True))
            self._pattern = re.compile("|".join(re.escape(s) for s in self._secrets))

    def add_config(self, config: t.Any, secret_settings: t.Iterable[str] = ()) -> None:
        """Register every secret-looking value of a raw config, however it is nested."""
        names = set(secret_settings)
        found: list[t.Any] = []

        def walk(value: t.Any, name: str | None) -> None:
            if isinstance(value, t.Mapping):
                for key, item in value.items():
                    walk(item, str(key))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item, name)
            elif name is not None and (name in names or _SECRET_NAME.search(name)):
                found.append(value)

        walk(config, None)
        # A stream map's salt and the like: every value it is given is treated as secret.
        if isinstance(config, t.Mapping):
            walk(config.get("stream_map_config") or {}, "secret")
        self.add(*found)

    def redact(self, text: str) -> str:
        """`text` without secrets or phone numbers."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return PHONE.sub(PHONE_REDACTED, text)

    def clear(self) -> None:
        """Forget every secret (tests)."""
        with self._lock:
            self._secrets = ()
            self._pattern = None


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def shorten(text: str, limit: int = 200) -> str:
    """Server text for a message: redacted, on one line, at most `limit` characters."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_UNPARSED = ", unparsed data:"  # urllib3's HeaderParsingError, before the server's text
URLLIB3_LIMIT = 300  # its warnings name a URL (ours: no key in it) and what went wrong

_installed = threading.Lock()
_previous_factory: t.Callable[..., logging.LogRecord] | None = None


def _redacted_record(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    point = _metric_point(record)
    if point is not None:
        # The SDK's own METRIC record keeps its shape, `("METRIC: %s", point)`: its
        # MetricExclusionFilter and its StructuredFormatter read the Point in `args`. Only its
        # tags hold text (names, ids from the config); they are redacted. Its number stays a
        # number: formatted as text first, a duration of 2.93817462811 s is 12 digits and a
        # dot, which the phone rule would cut (the line would no longer be JSON).
        record.args = (
            Point(point.metric_type, point.metric, _tags(point.value), _tags(point.tags)),
        )
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the line
        message = str(record.msg)
    if record.name.startswith("urllib3") and record.levelno < logging.ERROR:
        # urllib3 warns with a whole traceback about what a server sent (a header with a line
        # break: "Failed to parse headers") and carries on; the warning's line says it all,
        # but for the header text it could not parse: the server's words (a hostile one's
        # could be anything: a transcript, a phone number), never shown. Its other records
        # below ERROR (DEBUG request lines) are cut to the same length.
        record.exc_info = None
        head, cut, _ = message.partition(_UNPARSED)
        message = shorten(head + (f"{_UNPARSED} (not shown)" if cut else ""), URLLIB3_LIMIT)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def _metric_point(record: logging.LogRecord) -> Point[t.Any] | None:
    """The Point of a record the SDK's `metrics.log` made, else None."""
    if (
        record.name == METRICS_LOGGER_NAME
        and record.msg == "METRIC: %s"
        and isinstance(record.args, tuple)
        and len(record.args) == 1
        and isinstance(record.args[0], Point)
    ):
        return record.args[0]
    return None


def _tags(value: t.Any) -> t.Any:
    """A Point's value or tags with every text redacted, keys too; numbers, booleans (ints)
    and None as they are."""
    if isinstance(value, t.Mapping):
        return {_tags(key): _tags(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tags(item) for item in value]
    if isinstance(value, (int, float)) or value is None:
        return value
    # A str enum (the SDK's `Tag.STREAM`, `Status.SUCCEEDED`) by its value, as JSON writes it.
    text = str.__str__(value) if isinstance(value, str) else str(value)
    return redact(text)


def install() -> None:
    """Redact every log record made from now on in this process, whoever makes it. Idempotent."""
    global _previous_factory  # noqa: PLW0603 - one factory per process, by logging's design
    with _installed:
        if _previous_factory is None:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_redacted_record)
