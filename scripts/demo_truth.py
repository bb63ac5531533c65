"""How many conversations the demo must load: the emulator's truth, not what the tap requested.

`make demo` ends by comparing the rows loaded with this number. It comes from
`GET /_emulator/truth` (every conversation the API holds now), filtered to the `client_env` the
tap reads (`live` by default): the rest are sandbox or pre-release conversations, which the
tap skips on purpose. Counting what the emulator *served* instead would agree with any tap
bug that never asked for some range. Standard library only (runs from any venv).

    python scripts/demo_truth.py http://127.0.0.1:8765 ws-demo PROJECT-demo [--client-env live]
        [--details-out output/demo-truth-details.json]

With `--details-out`, it also writes what the conversation_details models must show, from
`GET /_emulator/details` (each conversation's detail as the Agents API answers it now): the
conversations whose detail the tap loads (finished, `finishedAt` at least `--settle-minutes`
before the emulator's clock, as the tap's default `details_settle_minutes`), and per variant
and per UTC day their PolyScore (scored, average, min, max), per language x direction and per
tag their counts. scripts/demo_report.py compares the models with it.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import sys
import typing as t
import urllib.parse
import urllib.request
from pathlib import Path


def truth_counts(base_url: str, account_id: str, project_id: str) -> collections.Counter[str]:
    """Distinct conversations per environment (live, sandbox, pre-release) in the truth."""
    query = urllib.parse.urlencode({"account_id": account_id, "project_id": project_id})
    with urllib.request.urlopen(f"{base_url}/_emulator/truth?{query}", timeout=30) as response:  # noqa: S310 - a local URL
        truth = json.load(response)
    seen: dict[str, str] = {c["id"]: c.get("environment") or "" for c in truth["conversations"]}
    return collections.Counter(seen.values())


def _get(base_url: str, route: str, account_id: str, project_id: str) -> t.Any:
    query = urllib.parse.urlencode({"account_id": account_id, "project_id": project_id})
    with urllib.request.urlopen(f"{base_url}/_emulator/{route}?{query}", timeout=30) as response:  # noqa: S310 - a local URL
        return json.load(response)


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "scored": len(values),
        "avg": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def detail_figures(
    base_url: str, account_id: str, project_id: str, client_env: str, settle_minutes: int
) -> dict[str, t.Any]:
    """What the conversation_details models must hold, from the emulator's own details."""
    answer = _get(base_url, "details", account_id, project_id)
    now = _ts(answer["now"])
    settle = dt.timedelta(minutes=settle_minutes)
    loaded = [
        d
        for d in answer["details"]
        if d.get("clientEnv") == client_env
        and d.get("finishedAt")
        and _ts(d["finishedAt"]) + settle <= now
    ]
    scores: dict[str, list[float]] = collections.defaultdict(list)
    per_day: dict[str, list[float]] = collections.defaultdict(list)
    splits: collections.Counter[str] = collections.Counter()
    tags: collections.Counter[str] = collections.Counter()
    for detail in loaded:
        if detail.get("polyScore") is not None:
            scores[detail.get("variantId") or "(none)"].append(float(detail["polyScore"]))
            day = _ts(detail["startedAt"]).date().isoformat()  # the models' UTC day
            per_day[day].append(float(detail["polyScore"]))
        language = detail.get("language") or "(unknown)"
        splits[f"{language}/{detail.get('direction') or '(unknown)'}"] += 1
        tags.update(detail.get("tags") or [])
    return {
        "now": answer["now"],
        "settle_minutes": settle_minutes,
        "details": len(loaded),
        "not_settled": sum(1 for d in answer["details"] if d.get("clientEnv") == client_env)
        - len(loaded),
        "poly_score": {variant: _stats(values) for variant, values in sorted(scores.items())},
        "poly_score_per_day": {day: _stats(values) for day, values in sorted(per_day.items())},
        "language_direction": dict(sorted(splits.items())),
        "tags": dict(sorted(tags.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("account_id")
    parser.add_argument("project_id")
    parser.add_argument("--client-env", default="live")
    parser.add_argument("--details-out", type=Path, help="write the detail figures here (JSON)")
    parser.add_argument("--settle-minutes", type=int, default=30)
    args = parser.parse_args()
    if args.details_out:
        figures = detail_figures(
            args.base_url.rstrip("/"),
            args.account_id,
            args.project_id,
            args.client_env,
            args.settle_minutes,
        )
        args.details_out.write_text(json.dumps(figures, indent=1))
        print(
            f"    emulator truth: {figures['details']} {args.client_env} conversations with a "
            f"settled detail ({figures['not_settled']} in progress or finished less than "
            f"{args.settle_minutes} min before the emulator's clock)",
            file=sys.stderr,
        )
    counts = truth_counts(args.base_url.rstrip("/"), args.account_id, args.project_id)
    expected = counts[args.client_env]
    others = ", ".join(f"{n} {env}" for env, n in sorted(counts.items()) if env != args.client_env)
    print(
        f"    emulator truth: {sum(counts.values())} conversations, {expected} "
        f"{args.client_env} (skipped by client_env={args.client_env}: {others or 'none'})",
        file=sys.stderr,
    )
    print(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
