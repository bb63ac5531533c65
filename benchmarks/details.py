"""Benchmark: `conversation_details` against a sequential loop over the same ids.

    python benchmarks/details.py [--conversations N] [--latency-ms MS]

The emulator runs in its own process with `--latency-ms` (default 250) added to every request,
list pages and details alike. Contenders, each once (the loop alone takes conversations x
latency):
- `tap`: `tap-polyai` at its default settings with `conversation_details` selected (and the
  default streams), writing to /dev/null: it reads the list, then one detail per finished,
  settled conversation, overlapped with writing;
- `loop`: one `GET /v1/agents/{project}/conversations/{id}` after another, over exactly the ids
  the tap asked for (from the emulator's request log), as a script following PolyAI's docs
  would.
Reported: wall times, the ratio tap / loop (goal <= 0.2), and the detail requests each made.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
ACCOUNT, PROJECT, KEY = "ws-bench", "PROJECT-bench", "bench-key"
GOAL = 0.2


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def start_emulator(
    workdir: Path, conversations: int, latency_ms: int
) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / "port"
    proc = subprocess.Popen(
        [
            str(BIN / "polyai-emulator"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--projects",
            f"{ACCOUNT}/{PROJECT}",
            "--api-key",
            KEY,
            "--conversations",
            str(conversations),
            "--days",
            "7",
            "--in-progress",
            "0",
            "--end",
            iso(END),
            "--latency-ms",
            str(latency_ms),
        ],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def detail_ids(url: str) -> list[str]:
    log = requests.get(f"{url}/_emulator/requests", timeout=30).json()["requests"]
    return [r["conversation_id"] for r in log if r.get("endpoint") == "details"]


def run_tap(url: str, workdir: Path) -> float:
    config = {
        "api_url": url,
        "account_id": ACCOUNT,
        "project_id": PROJECT,
        "api_key": KEY,
        "start_date": iso(END - timedelta(days=8)),
        "end_date": iso(END),
    }
    config_file = workdir / "config.json"
    config_file.write_text(json.dumps(config))
    tap = [str(BIN / "tap-polyai"), "--config", str(config_file)]
    catalog = json.loads(
        subprocess.run([*tap, "--discover"], capture_output=True, check=True).stdout
    )
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "conversation_details":
            for item in entry["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"]["selected"] = True
    catalog_file = workdir / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))
    started = time.monotonic()
    with open(workdir / "tap.log", "wb") as log:
        subprocess.run(
            [*tap, "--catalog", str(catalog_file)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            check=True,
        )
    return time.monotonic() - started


def run_loop(url: str, ids: list[str]) -> float:
    """The docs' way: one request after another, each answer parsed."""
    started = time.monotonic()
    with requests.Session() as session:
        for conversation_id in ids:
            response = session.get(
                f"{url}/v1/agents/{PROJECT}/conversations/{conversation_id}",
                headers={"x-api-key": KEY},
                timeout=60,
            )
            response.raise_for_status()
            response.json()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # ~85 % of generated conversations are `live` (the tap's default client_env), and those
    # that ended in the last 30 minutes have not settled: 2,400 give about 2,000 details.
    parser.add_argument("--conversations", type=int, default=2400)
    parser.add_argument("--latency-ms", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        emulator, url = start_emulator(workdir, args.conversations, args.latency_ms)
        try:
            tap_wall = run_tap(url, workdir)
            ids = detail_ids(url)
            requests.delete(f"{url}/_emulator/requests", timeout=30)
            loop_wall = run_loop(url, ids)
            loop_requests = len(detail_ids(url))
        finally:
            emulator.terminate()
            emulator.wait()
    ratio = tap_wall / loop_wall
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {python}")
    print(f"emulator: {args.latency_ms} ms per request, {args.conversations} conversations")
    print(f"details: {len(ids)} (tap detail requests), loop {loop_requests}")
    print(f"tap (defaults, details selected): {tap_wall:.1f} s")
    print(f"loop (sequential over the same ids): {loop_wall:.1f} s")
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"ratio tap / loop: {ratio:.3f}x (goal <= {GOAL}x: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
