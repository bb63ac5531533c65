"""The hand-written loop from PolyAI's docs: the baseline the tap has to beat.

    python benchmarks/docs_loop.py URL ACCOUNT PROJECT KEY START END PAGE_SIZE [--orjson]

A cursor loop over `GET .../conversations` with requests, `response.json()` per page and one
`json.dumps` per conversation written to stdout. `--orjson` is the same loop with orjson for
parsing and encoding: the practical floor for pure Python.
"""

from __future__ import annotations

import json
import sys

import requests


def main(argv: list[str]) -> int:
    base, account, project, key, start, end, page_size, *flags = argv
    fast = "--orjson" in flags
    url = f"{base}/v3/{account}/{project}/conversations"
    params: dict[str, str | int] = {"start_time": start, "end_time": end, "limit": int(page_size)}
    headers = {"x-api-key": key}
    session = requests.Session()
    if fast:
        import orjson

        write = sys.stdout.buffer.write
        while True:
            response = session.get(url, params=params, headers=headers, timeout=300)
            response.raise_for_status()
            data = orjson.loads(response.content)
            for conversation in data["conversations"]:
                write(orjson.dumps(conversation) + b"\n")
            if not data.get("cursor"):
                break
            params["cursor"] = data["cursor"]
        sys.stdout.flush()
        return 0
    while True:
        response = session.get(url, params=params, headers=headers, timeout=300)
        response.raise_for_status()
        data = response.json()
        for conversation in data["conversations"]:
            print(json.dumps(conversation))
        if not data.get("cursor"):
            break
        params["cursor"] = data["cursor"]
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
