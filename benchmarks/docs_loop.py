"""The hand-written loop from PolyAI's docs: the baseline the tap has to beat.

    python benchmarks/docs_loop.py URL ACCOUNT PROJECT[,...] KEY START END PAGE_SIZE [--orjson]

A cursor loop over `GET .../conversations` with requests, `response.json()` per page and one
`json.dumps` per conversation written to stdout. `--orjson` is the same loop with orjson for
parsing and encoding: the practical floor for pure Python. Several projects (comma-separated)
are read one after another, as a hand-written script would.
"""

from __future__ import annotations

import json
import sys

import requests


def main(argv: list[str]) -> int:
    base, account, projects, key, start, end, page_size, *flags = argv
    window: dict[str, str | int] = {"start_time": start, "end_time": end, "limit": int(page_size)}
    for project in projects.split(","):
        loop(f"{base}/v3/{account}/{project}/conversations", key, window, "--orjson" in flags)
    return 0


def loop(url: str, key: str, window: dict[str, str | int], fast: bool) -> None:
    params = dict(window)
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
        return
    while True:
        response = session.get(url, params=params, headers=headers, timeout=300)
        response.raise_for_status()
        data = response.json()
        for conversation in data["conversations"]:
            print(json.dumps(conversation))
        if not data.get("cursor"):
            break
        params["cursor"] = data["cursor"]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
