"""Query semantics of the List Conversations endpoint, independent of HTTP.

Why separate from the server: filtering, ordering and both pagination styles are the part a
client's correctness depends on, so they live in plain functions that the HTTP layer only
calls. Decisions worth knowing:

* Order is a deterministic pseudo-random one (blake2b of the id), never ``started_at``: the
  real API does not document an order and clients must not depend on one.
* Cursors are keysets (the sort key of the last item returned) plus a fingerprint of the
  filters, so pages stay stable while new conversations become visible, and a cursor reused
  with other filters is rejected (400 ``INVALID_CURSOR``).
* Each finished conversation is encoded with msgspec once and its bytes are spliced into page
  bodies, so serving 50k conversations is dominated by socket writes, not JSON encoding.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec  # not orjson: the emulator ships in the wheel, on runtime dependencies only

from .data import StoredConversation, parse_ts

__all__ = ["ApiError", "Page", "ProjectStore", "Query", "parse_query"]

MAX_LIMIT = 1000
_HEAD = b'{"conversations":['
ENVIRONMENTS = ("live", "sandbox", "pre-release")
UNSUPPORTED = ("query_type", "query", "sample", "turn_type")


class ApiError(Exception):
    """An error the API reports with its JSON envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(param: str, detail: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER", f"Invalid value for parameter '{param}': {detail}")


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    return values[-1]


def _bool(params: dict[str, list[str]], name: str) -> bool | None:
    raw = _one(params, name)
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise _bad(name, f"expected true or false, got {raw!r}")


def _int(params: dict[str, list[str]], name: str, lo: int, hi: int | None) -> int | None:
    raw = _one(params, name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise _bad(name, f"expected an integer, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        allowed = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise _bad(name, f"must be {allowed}, got {value}")
    return value


def _time(params: dict[str, list[str]], name: str) -> datetime | None:
    raw = _one(params, name)
    if raw is None:
        return None
    try:
        return parse_ts(raw)
    except ValueError:
        raise _bad(name, f"expected an ISO8601 date-time, got {raw!r}") from None


@dataclass(frozen=True)
class Query:
    """Validated query parameters of one request."""

    start: datetime | None = None
    end: datetime | None = None
    limit: int = MAX_LIMIT
    offset: int | None = None
    cursor: str | None = None
    client_env: str = "live"
    channels: frozenset[str] | None = None
    variant_id: str | None = None
    variant_name: str | None = None
    in_progress: bool | None = None
    include_latency: bool = False
    fingerprint: str = ""


def parse_query(params: dict[str, list[str]], account_id: str, project_id: str) -> Query:
    """Validate query parameters; raise :class:`ApiError` (400) naming the bad parameter."""
    for name in UNSUPPORTED:
        if name in params:
            raise ApiError(
                400,
                "UNSUPPORTED_BY_EMULATOR",
                f"Parameter '{name}' (search/sampling modes) is not emulated.",
            )
    start = _time(params, "start_time")
    end = _time(params, "end_time")
    if start is not None and end is not None and start > end:
        raise _bad("end_time", "must not be before start_time")
    limit = _int(params, "limit", 1, MAX_LIMIT)
    offset = _int(params, "offset", 0, None)
    client_env = _one(params, "client_env") or "live"
    if client_env not in ENVIRONMENTS:
        raise _bad("client_env", f"expected one of {', '.join(ENVIRONMENTS)}")
    channels = frozenset(params["channel"]) if params.get("channel") else None
    variant_id = _one(params, "variant_id")
    variant_name = _one(params, "variant_name")
    if variant_id is not None and variant_name is not None:
        raise ApiError(
            400, "INVALID_PARAMETER", "Only one of 'variant_id' or 'variant_name' may be specified."
        )
    in_progress = _bool(params, "in_progress")
    include_latency = bool(_bool(params, "include_latency"))
    cursor = _one(params, "cursor")
    filters = [
        account_id,
        project_id,
        start.isoformat() if start else None,
        end.isoformat() if end else None,
        client_env,
        sorted(channels) if channels is not None else None,
        variant_id,
        variant_name,
        in_progress,
    ]
    fingerprint = hashlib.blake2b(msgspec.json.encode(filters), digest_size=8).hexdigest()
    return Query(
        start,
        end,
        limit if limit is not None else MAX_LIMIT,
        offset,
        cursor or None,
        client_env,
        channels,
        variant_id,
        variant_name,
        in_progress,
        include_latency,
        fingerprint,
    )


def _sort_key(conv_id: str) -> tuple[str, str]:
    return (hashlib.blake2b(conv_id.encode(), digest_size=8).hexdigest(), conv_id)


def encode_cursor(key: tuple[str, str], fingerprint: str) -> str:
    raw = msgspec.json.encode({"v": 1, "k": list(key), "f": fingerprint})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = msgspec.json.decode(raw)
        key = data["k"]
        ok = (
            isinstance(data, dict)
            and data.get("v") == 1
            and isinstance(key, list)
            and len(key) == 2
            and all(isinstance(k, str) for k in key)
        )
    except (ValueError, binascii.Error, KeyError, TypeError):  # msgspec.DecodeError is a ValueError
        ok = False
    if not ok:
        raise ApiError(400, "INVALID_CURSOR", "The cursor is malformed.")
    if data.get("f") != fingerprint:
        raise ApiError(
            400,
            "INVALID_CURSOR",
            "The cursor was issued for different filters; keep filters identical across pages.",
        )
    return (key[0], key[1])


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


class _Entry:
    """A stored conversation plus what filtering needs, precomputed as plain values."""

    __slots__ = (
        "available",
        "cache",
        "channel",
        "conv",
        "end",
        "env",
        "key",
        "late",
        "start",
        "variant_id",
        "variant_name",
    )

    def __init__(self, conv: StoredConversation) -> None:
        self.conv = conv
        self.key = _sort_key(conv.id)
        self.cache: dict[bool, bytes] = {}
        self.start = _us(conv.started_at)
        self.end = _us(conv.ended_at)
        self.available = _us(conv.available_at)
        self.late = conv.is_late
        rec = conv.record
        self.env = rec.get("environment")
        self.channel = rec.get("channel")
        self.variant_id = rec.get("variant_id")
        self.variant_name = rec.get("variant_name")


def _select(entries: list[_Entry], q: Query, now: datetime) -> list[_Entry]:
    """Filter in API order on precomputed values.

    Visibility mirrors :meth:`StoredConversation.is_visible`; ``start_time`` is inclusive and
    ``end_time`` exclusive, both on ``started_at``.
    """
    t = _us(now)
    lo = _us(q.start) if q.start is not None else None
    hi = _us(q.end) if q.end is not None else None
    out = []
    for e in entries:
        if e.env != q.client_env or e.start > t:
            continue
        if e.available > t and (e.end <= t or e.late):
            continue  # not visible yet
        if (lo is not None and e.start < lo) or (hi is not None and e.start >= hi):
            continue
        if q.channels is not None and e.channel not in q.channels:
            continue
        if (q.variant_id is not None and e.variant_id != q.variant_id) or (
            q.variant_name is not None and e.variant_name != q.variant_name
        ):
            continue
        if q.in_progress is not None and (e.end > t) != q.in_progress:
            continue
        out.append(e)
    return out


def _strip_latency(rec: dict[str, Any]) -> dict[str, Any]:
    turns = rec.get("turns")
    if not turns:
        return rec
    return {**rec, "turns": [{**t, "latency": None} for t in turns]}


def _encode(entry: _Entry, now: datetime, include_latency: bool) -> bytes:
    conv = entry.conv
    if not conv.is_in_progress(now):
        cached = entry.cache.get(include_latency)
        if cached is None:
            rec = conv.record if include_latency else _strip_latency(conv.record)
            cached = msgspec.json.encode(rec)
            entry.cache[include_latency] = cached
        return cached
    rec = conv.snapshot(now)
    return msgspec.json.encode(rec if include_latency else _strip_latency(rec))


@dataclass
class Page:
    """One response page: pre-encoded conversations plus pagination fields.

    ``cursor_field`` False means the response has no ``cursor`` key at all (offset style).
    """

    parts: list[bytes]
    ids: list[str]
    cursor: str | None
    cursor_field: bool
    next_offset: int | None
    _tail: bytes = field(default=b"", init=False, repr=False)

    def __post_init__(self) -> None:
        tail = b"]"
        if self.cursor_field:
            tail += b',"cursor":' + msgspec.json.encode(self.cursor)
        if self.next_offset is not None:
            tail += b',"next_offset":' + str(self.next_offset).encode()
        self._tail = tail + b"}"

    @property
    def size(self) -> int:
        return (
            len(_HEAD)
            + sum(len(p) for p in self.parts)
            + max(0, len(self.parts) - 1)
            + len(self._tail)
        )

    def pieces(self) -> Iterator[bytes]:
        """The body as a sequence of byte strings (no copy of the cached conversations)."""
        yield _HEAD
        for i, part in enumerate(self.parts):
            if i:
                yield b","
            yield part
        yield self._tail

    def body(self) -> bytes:
        return b"".join(self.pieces())

    def pretty(self) -> Page:
        """The same page as a pretty-printing server sends it: pagination keys first, indented
        (newlines between tokens), every non-ASCII character as a ``\\u`` escape."""
        page: dict[str, Any] = {}
        if self.cursor_field:
            page["cursor"] = self.cursor
        if self.next_offset is not None:
            page["next_offset"] = self.next_offset
        page["conversations"] = [json.loads(part) for part in self.parts]
        body = json.dumps(page, indent=2, ensure_ascii=True).encode()
        return _Verbatim([], [], None, False, None, body)


@dataclass
class _Verbatim(Page):
    """A page whose body is given as bytes."""

    verbatim: bytes = b""

    @property
    def size(self) -> int:
        return len(self.verbatim)

    def pieces(self) -> Iterator[bytes]:
        yield self.verbatim


class ProjectStore:
    """The conversations of one project, kept in API order (by blake2b sort key)."""

    def __init__(self, account_id: str, project_id: str) -> None:
        self.account_id = account_id
        self.project_id = project_id
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._by_id: dict[str, _Entry] = {}
        # Recent filter results by (filters, now, data version): paging through one query at a
        # frozen clock filters the project once, not once per page.
        self._version = 0
        self._selections: dict[tuple[str, datetime, int], list[_Entry]] = {}

    def add(self, conversations: Iterable[StoredConversation]) -> None:
        """Add conversations; one with an id already stored replaces the old one."""
        with self._lock:
            by_id = dict(self._by_id)
            for conv in conversations:
                by_id[conv.id] = _Entry(conv)
            entries = list(by_id.values())
            self._by_id = by_id
            entries.sort(key=lambda e: e.key)
            self._entries = entries  # replaced, never mutated: readers need no lock
            self._version += 1
            self._selections = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, conversation_id: str) -> StoredConversation | None:
        entry = self._by_id.get(conversation_id)
        return entry.conv if entry is not None else None

    def warm(self, now: datetime, include_latency: bool) -> None:
        """Pre-encode every conversation finished at ``now`` (first pages then cost no JSON)."""
        for entry in self._entries:
            if not entry.conv.is_in_progress(now):
                _encode(entry, now, include_latency)

    def select(self, query: Query, now: datetime) -> list[_Entry]:
        """Matching entries in API order (cached for a few recent queries)."""
        with self._lock:
            entries, version, selections = self._entries, self._version, self._selections
            hit = selections.get((query.fingerprint, now, version))
        if hit is None:
            hit = _select(entries, query, now)
            with self._lock:
                if len(selections) >= 16:
                    selections.pop(next(iter(selections)))
                selections[(query.fingerprint, now, version)] = hit
        return hit

    def page(self, query: Query, now: datetime, *, cursor_style: bool) -> Page:
        matching = self.select(query, now)
        if cursor_style and query.cursor is not None:
            after = decode_cursor(query.cursor, query.fingerprint)
            begin = bisect.bisect_right(matching, after, key=lambda e: e.key)
        else:
            begin = query.offset or 0
        chosen = matching[begin : begin + query.limit]
        stop = begin + len(chosen)
        more = stop < len(matching)
        cursor = encode_cursor(chosen[-1].key, query.fingerprint) if more and chosen else None
        return Page(
            parts=[_encode(e, now, query.include_latency) for e in chosen],
            ids=[e.conv.id for e in chosen],
            cursor=cursor,
            cursor_field=cursor_style,
            next_offset=stop if more else None,
        )

    def visible(self, now: datetime, include_latency: bool = True) -> list[dict[str, Any]]:
        """Every visible conversation (all environments) in API order, as the API shows it."""
        out = []
        for e in self._entries:
            if e.conv.is_visible(now):
                rec = e.conv.snapshot(now)
                out.append(rec if include_latency else _strip_latency(rec))
        return out

    def visible_summary(self, now: datetime) -> list[dict[str, Any]]:
        return [
            {
                "id": e.conv.id,
                "started_at": e.conv.record.get("started_at"),
                "in_progress": e.conv.is_in_progress(now),
                "environment": e.conv.record.get("environment"),
                "channel": e.conv.record.get("channel"),
            }
            for e in self._entries
            if e.conv.is_visible(now)
        ]
