"""How many conversations the demo must load: the emulator's truth, not what the tap requested.

`make demo` ends by comparing the rows loaded with this number. It comes from
`GET /_emulator/truth` (every conversation the API holds now), filtered to the `client_env` the
tap reads (`live` by default): the rest are sandbox or pre-release conversations, which the
tap skips on purpose. Counting what the emulator *served* instead would agree with any tap
bug that never asked for some range. Standard library only (runs from any venv).

    python scripts/demo_truth.py http://127.0.0.1:8765 ws-demo PROJECT-demo [--client-env live]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import urllib.parse
import urllib.request


def truth_counts(base_url: str, account_id: str, project_id: str) -> collections.Counter[str]:
    """Distinct conversations per environment (live, sandbox, pre-release) in the truth."""
    query = urllib.parse.urlencode({"account_id": account_id, "project_id": project_id})
    with urllib.request.urlopen(f"{base_url}/_emulator/truth?{query}", timeout=30) as response:  # noqa: S310 - a local URL
        truth = json.load(response)
    seen: dict[str, str] = {c["id"]: c.get("environment") or "" for c in truth["conversations"]}
    return collections.Counter(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("account_id")
    parser.add_argument("project_id")
    parser.add_argument("--client-env", default="live")
    args = parser.parse_args()
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
