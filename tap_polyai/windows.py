"""Bookmark rules: which time range a run reads, in which windows, and where it may checkpoint.

The rules, and why:
- A run reads `[max(start_date, bookmark - lookback), end)` where `end` is `end_date` or the
  moment the sync started, frozen for the run. The lookback re-reads a margin so conversations
  that reach the API late (ingestion delay) are still caught.
- The range is cut into windows, each requested as `start_time`/`end_time` `[start, end)`.
  After a window is complete the bookmark may move to its end, so a killed sync resumes at the
  last finished window. Window sizes follow the data: see `WindowPlanner`.
- The API promises no order, so nothing is inferred from the order of records within a window;
  the bookmark is the window's end, never "the largest started_at seen".
- A conversation still `in_progress` will change. The bookmark is held at the earliest
  `started_at` of any in-progress conversation seen in this run, so the next run reads it again
  once finished. Conversations in progress for longer than `in_progress_hold_hours` stop
  holding it (and are named in a warning): one stuck conversation must not pin every run.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import logging
import math
import typing as t
from dataclasses import dataclass, field

from tap_polyai.settings import Settings, parse_datetime


def isoformat(value: dt.datetime) -> str:
    """UTC, 'Z'-suffixed, microseconds only when present: what PolyAI accepts and emits."""
    text = value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return f"{text}Z"


@dataclass(frozen=True)
class Window:
    """One `[start, end)` slice of one project's range.

    `expected` is how many conversations the planner expected in it (None: it could not tell).
    `split_from_page` and `parent` are set on the parts of a window split after its first page
    (see `WindowPlanner`): that page's conversations which fall in this part, by id, and the
    window it is a part of.
    """

    start: dt.datetime
    end: dt.datetime
    expected: float | None = None
    split_from_page: t.Mapping[str, t.Any] | None = field(default=None, compare=False, repr=False)
    parent: Window | None = field(default=None, compare=False, repr=False)

    @property
    def start_param(self) -> str:
        return isoformat(self.start)

    @property
    def end_param(self) -> str:
        return isoformat(self.end)


def read_range(
    settings: Settings, bookmark: str | None, sync_started_at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The `[start, end)` one project reads in this run."""
    end = min(settings.end_date or sync_started_at, sync_started_at)
    start = settings.start_date
    if bookmark:
        start = max(start, parse_datetime(bookmark) - settings.lookback)
    return start, end


# Windows sized to the data. A window costs at least one request even when empty, and a window
# of many pages is fetched one page after another (a cursor cannot be shared). The planner aims
# every window at TARGET_PAGES pages of conversations: a few pages each, so the rounding up to
# whole requests costs little while `max_concurrency` windows are in flight at once; far from
# the end of a long range, at up to LONG_PAGES (`WindowPlanner._window_target`).
TARGET_PAGES = 3.75
LONG_PAGES = 8  # at most this many pages (less a quarter) a window, far from the range's end:
REST_POOLS = 4  # while the rest of the range is expected to hold this many pools of them
GROWTH = 4  # a window is at most this many times longer than the one planned before it
MIN_WINDOW = dt.timedelta(minutes=1)  # below this a dense window is simply paged through
MAX_SPLIT = 16  # parts of a window split after its first page
RATE_OVER = 4  # windows a rate is measured over (fewer at the start)
RATE_DAY = dt.timedelta(hours=24)  # and the span of windows a day's average is taken over
RATE_DAY_WINDOWS = 96  # at most this many windows (a day of 15-minute windows) for it
DAY = dt.timedelta(days=1)  # and the same hours a day earlier (`_rate_day_before`)
PROFILE_SPAN = 7 * DAY  # a final wave spans at most this (a day's shape, repeated)
WAVE_SLACK = 1.25  # and the measured rate may expect this much more than the wave holds
TIME_ORDER = 0.6  # a first page this rank-correlated with time is in time order (`split`)
TIME_ORDER_MIN_PAGE = 20  # below this many conversations a page says nothing of the order
# A complete window's conversations are counted by ten minutes: what the 'YYYY-MM-DDTHH:M'
# prefix of a `started_at` names (`BucketCounter`), so this is not a setting to tune.
BUCKET_SECONDS = 600


def profiled(window: Window) -> bool:
    """Whether a complete window is counted by ten minutes for a day's profile (`_pieces`):
    a window of at most a day; a longer one is taken at its average rate."""
    return window.end - window.start <= DAY


class BucketCounter:
    """How many of a window's conversations started in each ten minutes of the clock: what a
    day's profile is made of (`WindowPlanner._pieces`). Counted by the text of `started_at`
    ('YYYY-MM-DDTHH:M' of a UTC 'Z' value), which costs a slice a conversation; other forms are
    parsed."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, started: str | None) -> None:
        if not started:
            return
        if started.endswith("Z") and started[13:14] == ":":
            key = started[:15]
        else:
            moment = _parsed(started)
            if moment is None:
                return
            key = isoformat(moment)[:15]
        self.counts[key] = self.counts.get(key, 0) + 1

    def starts(self) -> dict[dt.datetime, int]:
        """The counts by the moment their ten minutes begin (keys that do not parse: dropped)."""
        out: dict[dt.datetime, int] = {}
        for key, count in self.counts.items():
            moment = _parsed(key + "0:00Z")
            if moment is not None:
                out[moment] = out.get(moment, 0) + count
        return out


class WindowPlanner:
    """Cuts one project's `[start, end)` into windows, in order, sized to the data.

    The boundaries depend only on the data and the settings, never on which response arrives
    first: the same data gives the same windows, so runs are reproducible (and an API-side
    cache or a proxy can help). Every decision waits for the one result it is made from:
    - The first window is `first_size` (`window_hours`) long and planned blind; nothing else
      is planned until its first page is in. If that page is full it is split (below) and its
      parts take its place in the plan. With `prior_rate` (conversations per second: what the
      project's last checkpoint recorded, `recent_conversations_per_hour`) the first `lag`
      windows are instead sized from it, all at once: a scheduled run has a full pool from
      its first request and reads no page twice.
    - Window j (counted in plan order) is sized from the rate (conversations per second)
      measured up to window j - `lag` (`lag` = `max_concurrency`; for the first ones, the
      first window, or all its parts): the larger of the rate over its last 4 windows and over its
      last day of windows (`_rate_upto`), to hold `TARGET_PAGES` pages (more, up to
      `LONG_PAGES`, while much of the range is left: `_window_target`),
      growing at most `GROWTH`-fold per window. So each completed window (or part of the
      first) lets one more be planned, `lag` ahead: the pool stays full, and the plan is the
      same whatever order the results arrive in. Empty time is crossed in a
      few requests (3 empty years: about 6), dense time in windows of a few pages.
    - A window whose first page says more pages follow, although it was expected to hold under
      half a page (or was planned blind), is split (`split`): into `split_parts` parts at
      quantiles of that page's `started_at` values (in time order: one part for the span
      the page covers, equal spans for the rest), fetched in parallel. That page's
      conversations are not thrown away: each part carries those that fall in it
      (`Window.split_from_page`) and hands them out unless its own pages return them again, so
      nothing is lost or repeated. Parts are `[start, end)` like every window: conversations
      that start exactly on a split point belong to the later part. Parts are not split again;
      a window counts as complete when all its parts are.
    Not thread-safe: the fetcher calls it under its lock.
    """

    def __init__(
        self,
        start: dt.datetime,
        end: dt.datetime,
        first_size: dt.timedelta,
        page_size: int,
        concurrency: int = 8,
        *,
        prior_rate: float | None = None,
    ) -> None:
        self._prior = prior_rate if prior_rate and 0 < prior_rate < math.inf else None
        self._cursor = start
        self._end = end
        self._first_size = first_size
        self._page_size = page_size
        self._target = TARGET_PAGES * page_size
        self._prior_target = self._target
        if self._prior is not None:
            # Spread what the prior rate expects over the pool, in whole pages a window (aimed
            # a little under, so a window rarely spills onto one more, nearly empty, page).
            expected_pages = self._prior * (end - start).total_seconds() / page_size
            per_window = max(2, math.ceil(expected_pages / max(1, concurrency)))
            self._prior_target = min(TARGET_PAGES, per_window - 0.1) * page_size
        self._lag = max(1, concurrency)
        self.split_parts = max(2, min(MAX_SPLIT, concurrency))
        self._planned: list[Window] = []  # in plan order (parts are not listed)
        self._first_parts = 0  # the first window's parts, when it was split (they lead the plan)
        self._wave: list[tuple[dt.datetime, float]] = []  # the final wave, still to hand out
        self._waved = False
        self._counts: dict[tuple[dt.datetime, dt.datetime], int] = {}  # complete windows
        self._parts: dict[tuple[dt.datetime, dt.datetime], list[int]] = {}  # [parts left, count]
        # Complete windows by ten minutes (`_pieces`), kept while a profile may still use them:
        self._buckets: dict[tuple[dt.datetime, dt.datetime], dict[dt.datetime, int]] = {}
        self._pieced: dict[tuple[dt.datetime, dt.datetime], list[_Piece]] = {}
        self._numbers: dict[tuple[dt.datetime, dt.datetime], int] = {}  # their plan order

    @property
    def exhausted(self) -> bool:
        """Every part of the range has been handed out."""
        return self._cursor >= self._end

    def next_window(self) -> Window | None:
        """The next window, or None: the range is planned, or the result it needs is not in."""
        if self.exhausted:
            return None
        number = len(self._planned) + 1
        if self._prior is not None and number <= self._lag:
            # The rate the last run recorded: the first `lag` windows are sized from it at once.
            seconds = round(self._prior_target / self._prior)
            return self._sized(max(MIN_WINDOW, dt.timedelta(seconds=seconds)), self._prior)
        if number == 1:
            end = min(self._cursor + self._first_size, self._end)
            return self._append(Window(self._cursor, end, None))
        if self._wave:
            end, expected = self._wave.pop(0)
            return self._append(Window(self._cursor, end, expected))
        return self._from_rates(number)

    def _from_rates(self, number: int) -> Window | None:
        """Window `number` sized from the rates measured up to window `number - lag`, or the
        first window of the final wave; None while a result they need is not in."""
        last = max(0, number - 1 - self._lag)
        measured = self._rate_upto(last, ahead=self._first_parts - 1)
        if measured is None:
            return None
        known = max(last, self._first_parts - 1)
        previous = self._planned[-1]
        cap = GROWTH * (previous.end - previous.start).total_seconds()
        wave = self._final_wave(measured, known, cap)
        if wave is _WAIT:
            return None
        if wave:
            self._wave = t.cast("list[tuple[dt.datetime, float]]", wave)
            end, expected = self._wave.pop(0)
            return self._append(Window(self._cursor, end, expected))
        target = self._window_target(measured)
        seconds = min(target / measured if measured > 0 else math.inf, cap)
        before = self._rate_day_before(self._cursor, seconds, known)
        if before is _WAIT:
            return None
        rate = max(measured, t.cast(float, before))
        if rate > measured:
            seconds = min(target / rate, cap)
        return self._sized(max(MIN_WINDOW, dt.timedelta(seconds=round(seconds))), rate)

    def _window_target(self, rate: float) -> float:
        """Conversations a window sized from `rate` is aimed at: `TARGET_PAGES`, or whole pages
        less a quarter, up to `LONG_PAGES`, while the rest of the range is expected to hold
        `REST_POOLS` pools (`lag` windows) of them.

        Every window ends on a partial page and now and then spills onto one more, ~0.4 of a
        request a window: in windows of 3.75 pages a long backfill sends ~1.12 requests a page
        of data (busy data over 60 days: 598 requests for 535 pages). Far from the end of the
        range the pool stays as full with longer windows, which cost that per window, not per
        page (579 requests in the same wall time; with a contact centre's day 615 -> 591, and
        6 % less wall). Near the end they shrink back to `TARGET_PAGES`: a window is planned
        when the one `lag` before it completes, and long windows there left the pool idle
        before the final wave (all 8-page windows: a 144-page backfill 6.7 -> 8.0 s).
        """
        rest_pages = rate * (self._end - self._cursor).total_seconds() / self._page_size
        whole = math.floor(rest_pages / (REST_POOLS * self._lag))
        return max(TARGET_PAGES, min(LONG_PAGES, whole) - 0.25) * self._page_size

    def _sized(self, size: dt.timedelta, rate: float) -> Window:
        end = min(self._cursor + size, self._end)
        return self._append(Window(self._cursor, end, rate * (end - self._cursor).total_seconds()))

    def _append(self, window: Window) -> Window:
        self._numbers[_key(window)] = len(self._planned)
        self._planned.append(window)
        self._cursor = window.end
        return window

    def _final_wave(self, measured: float, known: int, cap: float) -> object:
        """The rest of the range as one wave of windows, `[(end, expected), ...]`, once it is
        expected to hold at most `lag` windows of `TARGET_PAGES`; [] before; `_WAIT` while a
        window it is measured from is not complete.

        Windows planned one after another, each for `TARGET_PAGES`, leave a tail: the last of
        them is planned when an earlier one completes and is read while the pool idles (a
        daily cycle: 2.9 s of which the last 1.1 s one window). Planned at once, in equal
        shares of what the rest is expected to hold, the windows end together. The shares
        follow the last day of complete windows, repeated (`_profile`: a contact centre's
        day). Only for a rest of at most `PROFILE_SPAN` that both that day and the measured
        rate (within `WAVE_SLACK`) expect to fit, none of its windows longer than `cap`
        (crossing empty time stays gradual): a wave commits the rest at once, where windows
        one after another would each follow the newest rate. Decided once, from windows up to
        `known` only, so the plan stays deterministic.
        """
        start, end = self._cursor, self._end
        seconds = (end - start).total_seconds()
        limit = self._lag * self._target
        if (
            self._waved
            or end - start > PROFILE_SPAN
            or seconds > self._lag * cap
            or measured * seconds > WAVE_SLACK * limit
        ):
            return []
        profile = self._profile(known)
        if profile is _WAIT:
            return _WAIT
        if profile is None:  # less than a day known: windows one after another, as before
            return []
        segments = _segments(
            t.cast("list[tuple[dt.datetime, dt.datetime, float]]", profile), start, end
        )
        total = _expected_count(segments)
        if total > limit:
            return []
        self._waved = True
        expected = max(total, measured * seconds)  # as many windows as the larger needs
        parts = min(self._lag, max(1, math.ceil(expected / self._target)))
        if total <= 0:
            segments, total = [(start, end, 1.0)], seconds
        cuts = _equal_shares(segments, total, parts)
        bounds = [start, *(c for c in cuts if start + MIN_WINDOW <= c <= end - MIN_WINDOW), end]
        bounds = [b for i, b in enumerate(bounds) if i == 0 or b > bounds[i - 1]]
        share = expected / max(1, len(bounds) - 1)
        return [(bounds[i + 1], share) for i in range(len(bounds) - 1)]

    def _profile(self, known: int) -> object:
        """The last day of complete windows up to `known`: `[(start, end, rate), ...]` in time
        order, each window by ten minutes where it is at most a day long (`_pieces`); None if
        they span less than a day within `RATE_DAY_WINDOWS`; `_WAIT` while one of them is not
        complete."""
        day: list[tuple[dt.datetime, dt.datetime, float]] = []
        day_start = self._planned[known].end - DAY
        for i in range(known, max(-1, known - RATE_DAY_WINDOWS), -1):
            window = self._planned[i]
            counted = self._counts.get(_key(window))
            if counted is None:
                return _WAIT
            day.extend(reversed(self._pieces(window, counted)))
            if window.start <= day_start:
                return day[::-1]
        return None

    def _pieces(self, window: Window, count: int) -> list[_Piece]:
        """A complete window as pieces of constant rate: by ten minutes of the clock, from when
        its conversations started (`BucketCounter`), for a window of at most a day; else its
        average.

        A day's profile made of whole windows took each at its average rate: the first day's
        part from 18:38 to midnight averaged a contact centre's evening with its night, so the
        final wave's window that ended at 19:11 held 419 conversations for a share of 338 and
        spilled onto a fifth page, one round trip after the rest (busy_diurnal: 8 round trips
        -> 7, 2.80 -> 2.58 s).
        """
        cached = self._pieced.get(_key(window))
        if cached is not None:
            return cached
        buckets = self._buckets.get(_key(window))
        length = max((window.end - window.start).total_seconds(), 1e-6)
        if buckets is None or not profiled(window):
            return [(window.start, window.end, count / length)]
        step = dt.timedelta(seconds=BUCKET_SECONDS)
        pieces: list[_Piece] = []
        at = window.start
        while at < window.end:
            begins = at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)
            until = min(window.end, begins + step)
            seconds = max((until - at).total_seconds(), 1e-6)
            pieces.append((at, until, buckets.get(begins, 0) / seconds))
            at = until
        self._pieced[_key(window)] = pieces
        return pieces

    def _rate_upto(self, last: int, ahead: int = -1) -> float | None:
        """Conversations per second measured up to window `last` (plan order); None while a
        window it is measured over is not complete.

        The larger of two rates: over the last `RATE_OVER` windows (it follows a project that
        gets busier, within a few windows) and over the windows of the last `RATE_DAY` (a
        day's average: contact centres are ten times busier by day than by night, and a window
        sized from the night's rate alone runs into the morning with ten times the pages it was
        sized for, one page after another; at most `RATE_DAY_WINDOWS` windows, so planning a
        window and writing a checkpoint cost a bounded scan however dense the project). Erring
        high makes windows shorter: a few requests more, never a long chain. Near the start of
        the range, where the windows up to `last` span less than a day, the day's average also
        takes the windows after it, up to `ahead` (the first window's parts: the span it was
        planned to cover).
        """
        count = 0
        seconds = 0.0
        recent: float | None = None
        indices = itertools.chain(range(last, -1, -1), range(last + 1, ahead + 1))
        for n, i in enumerate(itertools.islice(indices, RATE_DAY_WINDOWS), start=1):
            window = self._planned[i]
            counted = self._counts.get(_key(window))
            if counted is None:
                return None
            count += counted
            seconds += (window.end - window.start).total_seconds()
            if n == min(RATE_OVER, last + 1):
                recent = count / max(seconds, 1e-6)
            if seconds >= RATE_DAY.total_seconds() and recent is not None:
                break
        day = count / max(seconds, 1e-6)
        return day if recent is None else max(recent, day)

    def _rate_day_before(self, start: dt.datetime, seconds: float, known: int) -> object:
        """The rate the last day of complete windows up to `known` (`_profile`, repeated) had
        over the same hours as `seconds` from `start`; 0.0 if no day is known; `_WAIT` while a
        window of it is not complete.

        A contact centre's morning is as busy as yesterday's morning, not as the night before
        it or the day's average: sized from the day's average alone (~0.6 of the daytime
        rate), every daytime window held nearly twice its pages, read one after another. Only
        windows the plan waits for anyway count, so the boundaries stay the same whatever
        order results arrive in.
        """
        profile = self._profile(known)
        if profile is None or profile is _WAIT:
            return 0.0 if profile is None else _WAIT
        end = start + dt.timedelta(seconds=seconds)
        expected = _expected_between(t.cast("list[_Piece]", profile), start, end)
        return expected / max(seconds, 1e-6)

    def recent_rate(self, upto: Window) -> float | None:
        """The rate (`_rate_upto`) measured over complete windows in plan order that end by
        `upto`'s end (what a checkpoint after `upto` records); None if none is."""
        for i in range(len(self._planned) - 1, -1, -1):  # from the end: few are planned ahead
            window = self._planned[i]
            if window.end <= upto.end and _key(window) in self._counts:
                return self._rate_upto(i)
        return None

    def finished(
        self, window: Window, count: int, buckets: dict[dt.datetime, int] | None = None
    ) -> None:
        """A window (or a part of one) is complete with `count` conversations (`buckets`:
        when they started, `BucketCounter.starts`)."""
        self._counts[_key(window)] = count
        if buckets is not None and _key(window) in self._numbers:  # a window of the plan
            self._buckets[_key(window)] = buckets
            self._forget_buckets()
        if window.parent is not None:
            key = _key(window.parent)
            left = self._parts[key]
            left[0] -= 1
            left[1] += count
            if buckets is not None and key in self._numbers:  # the parts of a planned window
                merged = self._buckets.setdefault(key, {})
                for bucket, n in buckets.items():
                    merged[bucket] = merged.get(bucket, 0) + n
            if left[0] == 0:
                self._counts[key] = left[1]

    def _forget_buckets(self) -> None:
        """Drop the ten-minute counts of windows no profile can use any more: a profile is
        made of at most `RATE_DAY_WINDOWS` windows up to one `lag` behind the newest planned
        (`_profile`), and that only moves on. By plan order, so what is kept does not depend
        on which result arrives first."""
        oldest = len(self._planned) - 2 - self._lag - RATE_DAY_WINDOWS
        if oldest <= 0 or len(self._buckets) <= 2 * (RATE_DAY_WINDOWS + self._lag):
            return
        for key in [k for k in self._buckets if self._numbers[k] < oldest]:
            del self._buckets[key]
            self._pieced.pop(key, None)

    def should_split(self, window: Window) -> bool:
        """Asked when `window`'s first page is full and more pages follow."""
        if window.parent is not None or window.end - window.start < 2 * MIN_WINDOW:
            return False
        return window.expected is None or window.expected * 2 <= self._page_size

    def split(
        self, window: Window, first_page: t.Sequence[tuple[str, str | None, t.Any]], parts: int
    ) -> list[Window]:
        """`window` cut into `parts` parts after its first page; [] when it cannot be cut.

        `first_page` holds `(id, started_at, record)` per conversation, in the API's order. Each
        part carries the first-page conversations that fall inside it (one without a readable
        `started_at`: the first part), so each is handed out exactly once. Where the cuts go
        depends on what the page says about the API's order, which is undocumented (it only
        decides how fast the window is read, never what is read):
        - in an order unrelated to time (a random or hashed order, or by id), the page is a
          sample of the window: cut at its quantiles, so each part holds about as many;
        - in time order (the page's `started_at` follow its order: rank correlation at least
          `TIME_ORDER`; v1 documented ascending), the page is the window's earliest (or latest)
          conversations, not a sample of it: one part covers what the page covers and the
          rest of the window is cut into equal spans. Quantiles of such a page would put every
          cut inside the part already read and leave the rest of the window to one part.
        """
        parts = max(2, min(MAX_SPLIT, parts))
        starts = [_parsed(started) for _, started, _ in first_page]
        known = [s for s in starts if s is not None]
        ordered = sorted(known)
        trend = _time_trend(known)
        if abs(trend) >= TIME_ORDER:
            cuts = _time_order_cuts(window, ordered, parts, ascending=trend > 0)
        else:
            cuts = [ordered[len(ordered) * i // parts] for i in range(1, parts)] if ordered else []
        points: list[dt.datetime] = []
        for point in cuts:
            if window.start < point < window.end and (not points or point > points[-1]):
                points.append(point)
        if not points:
            return []
        bounds = [window.start, *points, window.end]
        carried: list[dict[str, t.Any]] = [{} for _ in range(len(points) + 1)]
        for (conversation_id, _, record), started in zip(first_page, starts, strict=True):
            part = 0 if started is None else sum(1 for p in points if started >= p)
            carried[part][conversation_id] = record
        self._parts[_key(window)] = [len(bounds) - 1, 0]
        parts_ = [
            Window(bounds[i], bounds[i + 1], None, carried[i], parent=window)
            for i in range(len(bounds) - 1)
        ]
        if self._planned == [window]:
            # The first window: nothing was planned from it yet, so its parts take its place
            # in the plan and each sizes a later window as soon as it is complete.
            self._planned = list(parts_)
            self._first_parts = len(parts_)
            self._numbers = {_key(part): i for i, part in enumerate(parts_)}
        return parts_


def _time_trend(starts: list[dt.datetime]) -> float:
    """Spearman's rank correlation of a page's `started_at` with their place on the page:
    about 0 (within ~0.1 for 100 conversations) in an order unrelated to time, near 1 in
    ascending time order (or by `ended_at`), near -1 in descending; 0 for a short page."""
    n = len(starts)
    if n < TIME_ORDER_MIN_PAGE:
        return 0.0
    ranks = [0.0] * n
    by_time = sorted(range(n), key=starts.__getitem__)
    i = 0
    while i < n:  # equal timestamps share their mean rank
        j = i
        while j + 1 < n and starts[by_time[j + 1]] == starts[by_time[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[by_time[k]] = (i + j) / 2
        i = j + 1
    mean = (n - 1) / 2
    spread = sum((r - mean) ** 2 for r in ranks)
    if spread == 0:
        return 0.0
    covariance = sum((position - mean) * (r - mean) for position, r in enumerate(ranks))
    return covariance / math.sqrt(spread * sum((p - mean) ** 2 for p in range(n)))


def _time_order_cuts(
    window: Window, ordered: list[dt.datetime], parts: int, *, ascending: bool
) -> list[dt.datetime]:
    """Cuts for a page in time order: the span the page covers (to its 90th percentile, so an
    order only close to time order, as by `ended_at`, still leaves that part nearly whole) is
    one part; the rest of the window is cut into `parts - 1` equal spans."""
    if ascending:
        covered = ordered[len(ordered) * 9 // 10]
        rest = window.end - covered
        return [covered + rest * i / (parts - 1) for i in range(parts - 1)]
    covered = ordered[len(ordered) // 10]
    rest = covered - window.start
    return [window.start + rest * i / (parts - 1) for i in range(1, parts)]


_WAIT = object()  # `_rate_day_before`, `_final_wave`: a result it needs is not in yet
_Piece = tuple[dt.datetime, dt.datetime, float]  # a stretch of time at a constant rate


def _segments(
    profile: list[tuple[dt.datetime, dt.datetime, float]], start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime, float]]:
    """`[start, end)` in pieces of constant rate: each moment has the rate of the same time of
    day in `profile` (its last day, repeated)."""
    day_end = profile[-1][1]
    day_start = day_end - DAY
    starts = [a for a, _, _ in profile]
    pieces: list[tuple[dt.datetime, dt.datetime, float]] = []
    at = start
    while at < end:
        mapped = day_start + (at - day_start) % DAY
        i = max(0, bisect.bisect_right(starts, mapped) - 1)
        _, window_end, rate = profile[i]
        until = min(end, at + (window_end - mapped))
        if until <= at:  # a rounding corner: step over it
            until = min(end, at + MIN_WINDOW)
        pieces.append((at, until, rate))
        at = until
    return pieces


def _expected_count(segments: list[tuple[dt.datetime, dt.datetime, float]]) -> float:
    """How many conversations `segments` (pieces of constant rate) are expected to hold."""
    return sum(rate * (b - a).total_seconds() for a, b, rate in segments)


def _expected_between(profile: list[_Piece], start: dt.datetime, end: dt.datetime) -> float:
    """What `profile` (its last day, repeated: `_segments`) expects in `[start, end)`: whole
    days at the day's total, only the rest piece by piece. Piece by piece throughout, a window
    of months sized through empty time walked a day's 144 ten-minute pieces per day of it,
    each time the planner was asked (sparse benchmark: 0.5 s of CPU)."""
    days = (end - start) // DAY
    if days:
        day_end = profile[-1][1]
        per_day = _expected_count(_segments(profile, day_end - DAY, day_end))
        start += days * DAY
        return days * per_day + _expected_count(_segments(profile, start, end))
    return _expected_count(_segments(profile, start, end))


def _equal_shares(
    segments: list[tuple[dt.datetime, dt.datetime, float]], total: float, parts: int
) -> list[dt.datetime]:
    """The `parts - 1` moments (whole seconds) that cut `segments` into equal expected counts."""
    cuts: list[dt.datetime] = []
    goal, done = total / parts, 0.0
    for a, b, rate in segments:
        count = rate * (b - a).total_seconds()
        while len(cuts) < parts - 1 and done + count >= goal * (len(cuts) + 1) and rate > 0:
            into = (goal * (len(cuts) + 1) - done) / rate
            cut = a + dt.timedelta(seconds=round(into))
            cuts.append(min(max(cut, a), b))
        done += count
    return cuts


def _key(window: Window) -> tuple[dt.datetime, dt.datetime]:
    return (window.start, window.end)


def _parsed(value: str | None) -> dt.datetime | None:
    try:
        return parse_datetime(value) if value else None
    except ValueError:
        return None


class BookmarkHold:
    """Tracks the earliest in-progress conversation that must be read again next run."""

    def __init__(self, settings: Settings, range_end: dt.datetime, logger: logging.Logger):
        self._oldest_held = range_end - settings.in_progress_hold
        self._logger = logger
        self.held_at: dt.datetime | None = None

    def observe(self, record: t.Mapping[str, t.Any]) -> None:
        if not record.get("in_progress"):
            return
        started_at = parse_datetime(record["started_at"])
        if started_at < self._oldest_held:
            self._logger.warning(
                "Conversation %s has been in progress since %s, longer than "
                "'in_progress_hold_hours'; it no longer holds the bookmark.",
                record.get("id"),
                record["started_at"],
            )
            return
        if self.held_at is None or started_at < self.held_at:
            self.held_at = started_at

    def hold_at(self, started_at: dt.datetime) -> bool:
        """Hold the bookmark at a conversation to read again next run (a detail not settled,
        `details.py`); False, and no hold, when it started before `in_progress_hold_hours`."""
        if started_at < self._oldest_held:
            return False
        if self.held_at is None or started_at < self.held_at:
            self.held_at = started_at
        return True

    def bookmark_after(self, window: Window) -> dt.datetime:
        """Where the bookmark may stand once `window` and all windows before it are complete."""
        return window.end if self.held_at is None else min(self.held_at, window.end)
