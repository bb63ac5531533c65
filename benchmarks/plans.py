"""What a blind plan would cost on the benchmark data (issue #20: "≤ 1.1 requests per page").

    python benchmarks/plans.py [--scenario NAME ...]   (~1.5 min for all five)

The tap sizes windows from what its first pages say (`tap_polyai/windows.py`): short windows,
8 at once, the first one's first page read twice. The alternative this probe prices is the
fewest requests a full pool allows without counts: the range cut blind into `max_concurrency`
equal windows, each read through by its cursor (no page read twice; each window ends on one
partial page). Nothing here runs such a planner. The probe asks the benchmark server how many
conversations each of those windows holds (one `limit=1` request a window, outside every
figure) and computes:
- requests: the sum over windows of max(1, ceil(n / page_size));
- round trips, pool only: the chains scheduled over `max_concurrency` slots in plan order;
- round trips within the read-ahead budget: the same, but pages of a window after the one being
  written wait in memory (checkpoint order), and a window other than that one fetches a page
  only while the pages held and in flight stay within `max_buffer_mb` (the tap's rule,
  `fetcher.py`; a page is charged as there, `DECODED_BYTES_PER_JSON_BYTE`);
- the peak of pages held ahead of the writer without a budget (what holding the pool full
  would take).
Then it runs the tap once on the same server: its requests, and its wall time at 250 ms a page.
`launch` is a project that went live during the range: 8,400 generated conversations in the
last 3 days of a 7-day first sync. The others are `run.py`'s scenarios.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import (
    ACCOUNT,
    END,
    KEY,
    ON_REQUEST,
    SCENARIOS,
    Scenario,
    ServerProcess,
    commands,
    iso,
    project_ids,
)
from tap_polyai.fetcher import DECODED_BYTES_PER_JSON_BYTE

SLOTS = 8  # the tap's default max_concurrency
BUDGET = 64 << 20  # and max_buffer_mb
CASES: dict[str, Scenario] = {
    "busy": SCENARIOS["busy"],
    "busy_diurnal": SCENARIOS["busy_diurnal"],
    "projects": SCENARIOS["projects"],
    "launch": replace(SCENARIOS["busy"], name="launch", conversations=8_400, days=3, range_days=7),
    "dense": ON_REQUEST["dense"],
}


def window_counts(url: str, project: str, start: datetime, parts: int) -> list[int]:
    span = (END - start) / parts
    bounds = [start + span * i for i in range(parts)] + [END]
    counts = []
    for a, b in itertools.pairwise(bounds):
        response = requests.get(
            f"{url}/v3/{ACCOUNT}/{project}/conversations",
            params={"start_time": iso(a), "end_time": iso(b), "limit": 1},
            headers={"x-api-key": KEY},
            timeout=60,
        )
        response.raise_for_status()
        counts.append(
            requests.get(f"{url}/_bench/log", timeout=60).json()["pages"][-1]["in_window"]
        )
    return counts


def pool_round_trips(chains: list[int]) -> int:
    free = [0] * SLOTS
    end = 0
    for chain in chains:
        done = heapq.heappop(free) + chain
        end = max(end, done)
        heapq.heappush(free, done)
    return end


def budget_round_trips(
    chains: list[int], page_charge: float, budget: float = BUDGET
) -> tuple[int, int]:
    """(round trips, peak pages held ahead of the writer) with every page after the head's held
    until its window is written, and non-head pages only while `budget` allows."""
    read = [0] * len(chains)
    started = [False] * len(chains)
    head, rounds, peak = 0, 0, 0
    while head < len(chains):
        rounds += 1
        held = sum(read[head + 1 :])
        active = [i for i in range(head, len(chains)) if started[i] and read[i] < chains[i]]
        for i in range(head, len(chains)):  # free slots start windows in plan order
            if len(active) >= SLOTS:
                break
            if not started[i]:
                started[i] = True
                active.append(i)
        fetching, reserved = [], 0.0
        for i in sorted(active):
            if i == head or (held * page_charge + reserved + page_charge) <= budget:
                fetching.append(i)
                reserved += page_charge
        for i in fetching:
            read[i] += 1
        while head < len(chains) and read[head] >= chains[head]:
            head += 1
        peak = max(peak, sum(read[head + 1 :]) if head < len(chains) else 0)
    return rounds, peak


def probe(s: Scenario, workdir: Path) -> None:
    server = ServerProcess(s, workdir)
    try:
        start = END - timedelta(days=s.range_days or s.days)
        page = s.page_size or 100
        sample = requests.get(
            f"{server.url}/v3/{ACCOUNT}/{project_ids(s)[0]}/conversations",
            params={"start_time": iso(start), "end_time": iso(END), "limit": page},
            headers={"x-api-key": KEY},
            timeout=60,
        )
        sample.raise_for_status()
        per_page = len(sample.content) * DECODED_BYTES_PER_JSON_BYTE
        chains, data_pages, total = [], 0, 0
        for project in project_ids(s):
            counts = window_counts(server.url, project, start, SLOTS)
            total += sum(counts)
            data_pages += max(1, math.ceil(sum(counts) / page))
            chains += [max(1, math.ceil(n / page)) for n in counts]
        blind = sum(chains)
        rounds, _ = budget_round_trips(chains, per_page)
        _, peak = budget_round_trips(chains, per_page, budget=math.inf)
        command = commands(s, server.url, workdir)["tap"]
        server.reset_stats()
        began = time.monotonic()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.monotonic() - began
        tap = server.requests()
    finally:
        server.stop()
    print(
        f"| {s.name} | {total:,} | {data_pages} | {tap} ({tap / data_pages:.2f}), {wall:.2f} s | "
        f"{blind} ({blind / data_pages:.2f}) | {pool_round_trips(chains)} | {rounds} | "
        f"{peak} x {per_page / 2**20:.1f} MB |",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=list(CASES), action="append")
    names = parser.parse_args().scenario or list(CASES)
    print(
        "| scenario | conversations | pages of data | tap: requests (per page), wall | "
        "blind: requests (per page) | round trips, pool only | round trips, in budget | "
        "peak held, no budget |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            probe(CASES[name], Path(workdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
