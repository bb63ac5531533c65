"""A controllable clock: the emulator's idea of "now".

Why: in-progress and late-arriving conversations only make sense relative to a moment in time,
and tests must move that moment deterministically (no sleeping). A frozen clock (the default)
stays put until :meth:`Clock.set` or :meth:`Clock.advance`; :meth:`Clock.system` follows real
time, still shiftable by the same two calls.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

__all__ = ["Clock"]


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class Clock:
    """Thread-safe clock, frozen at ``now`` (default: the real time at construction)."""

    def __init__(self, now: datetime | None = None, *, frozen: bool = True) -> None:
        self._lock = threading.Lock()
        start = _aware(now) if now is not None else datetime.now(UTC)
        self._frozen: datetime | None = start if frozen else None
        self._offset = timedelta(0) if frozen else start - datetime.now(UTC)

    @classmethod
    def system(cls) -> Clock:
        """A clock that follows real time (``set``/``advance`` shift it by an offset)."""
        return cls(frozen=False)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def set(self, dt: datetime) -> None:
        dt = _aware(dt)
        with self._lock:
            if self._frozen is not None:
                self._frozen = dt
            else:
                self._offset = dt - datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta

    def __repr__(self) -> str:
        kind = "frozen" if self.frozen else "system"
        return f"Clock({kind}, now={self.now().isoformat()})"
