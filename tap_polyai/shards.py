"""Shard plans for running tap-polyai in parallel: by project, by date range, or both.

Why a function and not a hand-written list: a gap between two date ranges is never read and
nobody notices; an overlap is read twice. `plan_shards` cuts `[start, end)` into contiguous
`[start, end)` pieces (`end_date` is exclusive in the tap, so adjacent shards share a bound and
no instant is in two), and crosses them with the projects. Each shard has its own name, used as
its Meltano state ID suffix, so no two shards ever share a bookmark (the tap refuses another
shard's state anyway, see `state.py`).

Shards come out date-major and project-minor, so the first shards an orchestrator starts are
different projects, i.e. different API keys. Pure standard library: the Dagster and Airflow
recipes under `orchestration/` import it without the tap's dependencies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import typing as t
from dataclasses import dataclass

PROJECTS_VARIABLE = "TAP_POLYAI_PROJECTS"


def _iso(value: dt.datetime) -> str:
    text = value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def _parse(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class Shard:
    """One independent Meltano run: a `[start, end)` range of one project (or of all)."""

    start: dt.datetime
    end: dt.datetime | None  # None: open-ended (up to each run's start), incremental
    account_id: str | None = None  # None: every project configured
    project_id: str | None = None

    @property
    def name(self) -> str:
        """Unique by construction, stable across runs; safe as a state ID suffix and a task key.

        `<account>_<project>_<start>_<end>` with every character but `[A-Za-z0-9_]` made `_`.
        Whenever that loses information — a character was replaced, an id holds `_` (the
        separator), a bound has seconds — the name ends in `_` and 8 hex digits of the SHA-256
        of the exact `(account, project, start, end)`: `(ws-a, P-1)` and `(ws-a, P.1)` differ.
        """
        end = self.end.strftime("%Y%m%dT%H%M") if self.end else "open"
        ids = [i for i in (self.account_id, self.project_id) if i is not None]
        readable = "".join(f"{i}_" for i in ids) + f"{self.start:%Y%m%dT%H%M}_{end}"
        name = re.sub(r"[^A-Za-z0-9_]", "_", readable)
        whole_minutes = all(
            b is None or (b.second == 0 and b.microsecond == 0) for b in (self.start, self.end)
        )
        if name != readable or any("_" in i for i in ids) or not whole_minutes:
            name += f"_{self.digest}"
        return name

    @property
    def digest(self) -> str:
        """8 hex digits of SHA-256 over the exact identity `(account, project, start, end)`."""
        exact = [self.account_id, self.project_id, _iso(self.start)]
        exact.append(_iso(self.end) if self.end else None)
        return hashlib.sha256(json.dumps(exact).encode()).hexdigest()[:8]

    def to_dict(self) -> dict[str, str | None]:
        """JSON-able, without any key: what an orchestrator may store and show."""
        return {
            "name": self.name,
            "start_date": _iso(self.start),
            "end_date": _iso(self.end) if self.end else None,
            "account_id": self.account_id,
            "project_id": self.project_id,
        }

    @classmethod
    def from_dict(cls, value: t.Mapping[str, t.Any]) -> Shard:
        end = value.get("end_date")
        return cls(
            _parse(value["start_date"]),
            _parse(end) if end else None,
            value.get("account_id"),
            value.get("project_id"),
        )

    def env(self, environ: t.Mapping[str, str]) -> dict[str, str]:
        """The tap's settings for this shard, as Meltano environment variables.

        A project shard keeps only its own entry of `TAP_POLYAI_PROJECTS` (with its key) from
        `environ`; keys never travel through the plan.
        """
        env = {"TAP_POLYAI_START_DATE": _iso(self.start)}
        if self.end is not None:
            env["TAP_POLYAI_END_DATE"] = _iso(self.end)
        if self.project_id is not None:
            entries = [
                entry
                for entry in json.loads(environ.get(PROJECTS_VARIABLE) or "[]")
                if (entry.get("account_id"), entry.get("project_id"))
                == (self.account_id, self.project_id)
            ]
            if not entries:
                raise ValueError(
                    f"Shard {self.name}: project {self.account_id}/{self.project_id} is not in "
                    f"{PROJECTS_VARIABLE}."
                )
            env[PROJECTS_VARIABLE] = json.dumps(entries[:1])
        return env


def date_ranges(
    start: dt.datetime, end: dt.datetime | None, every: dt.timedelta | None
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """Contiguous `[start, end)` pieces of `every`; the last one is cut at `end`."""
    if every is None or end is None:
        return [(start, end)]
    if every <= dt.timedelta(0):
        raise ValueError("every must be positive")
    if end <= start:
        raise ValueError("end must be later than start")
    pieces: list[tuple[dt.datetime, dt.datetime | None]] = []
    cursor = start
    while cursor < end:
        pieces.append((cursor, min(cursor + every, end)))
        cursor += every
    return pieces


def projects_of(environ: t.Mapping[str, str]) -> list[tuple[str, str]]:
    """`(account_id, project_id)` of every entry of `TAP_POLYAI_PROJECTS`, keys left out."""
    entries = json.loads(environ.get(PROJECTS_VARIABLE) or "[]")
    return [(entry["account_id"], entry["project_id"]) for entry in entries]


def plan_shards(
    start: str | dt.datetime,
    end: str | dt.datetime | None = None,
    *,
    every: dt.timedelta | None = None,
    projects: t.Sequence[tuple[str, str]] | None = None,
) -> list[Shard]:
    """Shards covering `[start, end)` for each project exactly once: no gap, no overlap.

    `every` cuts the range (requires `end`); `projects` gives one shard per project and range
    (None: each shard reads every configured project).
    """
    start_dt = _parse(start)
    end_dt = _parse(end) if end is not None else None
    if projects is not None and len(set(projects)) != len(projects):
        raise ValueError("projects must not repeat")
    ranges = date_ranges(start_dt, end_dt, every)
    if projects is None:
        shards = [Shard(a, b) for a, b in ranges]
    else:
        shards = [Shard(a, b, account, pid) for a, b in ranges for account, pid in projects]
    names = [shard.name for shard in shards]
    if len(set(names)) != len(names):  # two shards would share a state ID and a run directory
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"shard names must be unique; repeated: {', '.join(twice)}")
    return shards


def shards_at_once(requests_per_key: int, max_concurrency: int) -> int:
    """How many shards of one key may run at once so that requests per key stay in budget.

    Each shard sends at most `max_concurrency` requests at a time (the tap's cap), so
    `shards × max_concurrency` is the most one key sees.
    """
    if requests_per_key < 1 or max_concurrency < 1:
        raise ValueError("requests_per_key and max_concurrency must be at least 1")
    return max(1, requests_per_key // max_concurrency)
