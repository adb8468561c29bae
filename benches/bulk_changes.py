#!/usr/bin/env python3
"""Bulk change registration benchmark for `stormwatch serve` (a benchmark, not a test).

Starts the release binary on loopback with a `user` token, then for each size N posts N network change notices
of that User whose windows all overlap (every one a pile-up with all the others) in one `POST /api/v1/changes`,
each size into a fresh data directory. Meanwhile a thread asks `GET /healthz` every 10 ms. Prints, per size, the
registration's wall time and the slowest `/healthz` answer while it ran (issue 20: 2,000 must register in under
2 s with `/healthz` within 100 ms).

Usage: benches/bulk_changes.py [--binary target/release/stormwatch] [--sizes 250,500,1000,2000,10000]
"""
import argparse
import json
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

USER = "90-B3-D5-1F-30-01-00-07"
ELEVEN = 1_773_140_400_000  # 2026-03-10T11:00Z: clear of the morning peak and the overnight reads


def rfc3339(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def notices(count):
    return [
        {
            "id": f"CHG-{n}",
            "user": USER,
            "title": f"Firewall rule batch {n}",
            "category": "network",
            "start": rfc3339(ELEVEN + (n % 60) * 60_000),
            "end": rfc3339(ELEVEN + 4 * 3_600_000 + (n % 60) * 60_000),
        }
        for n in range(count)
    ]


def start(binary, data_dir):
    out = subprocess.run(
        [binary, "tokens", "add", "--name", "bench", "--role", "user", "--user", USER, "--data-dir", data_dir],
        check=True, capture_output=True, text=True,
    )
    token = out.stdout.strip().splitlines()[-1].strip()
    service = subprocess.Popen(
        [binary, "serve", "--http", "127.0.0.1:0", "--ingest", "127.0.0.1:0", "--log-format", "json",
         "--data-dir", data_dir],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        line = service.stderr.readline()
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "HTTP API up":
            threading.Thread(target=lambda: [None for _ in service.stderr], daemon=True).start()
            return service, token, fields["address"]
    service.kill()
    raise SystemExit("the service did not come up")


def watch(address, stop, slowest):
    while not stop.is_set():
        asked = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://{address}/healthz", timeout=30) as answer:
                answer.read()
            slowest[0] = max(slowest[0], time.perf_counter() - asked)
        except OSError:
            slowest[1] += 1
        time.sleep(0.01)


def run(binary, size):
    with tempfile.TemporaryDirectory() as data_dir:
        service, token, address = start(binary, data_dir)
        try:
            body = json.dumps(notices(size)).encode()
            stop, slowest = threading.Event(), [0.0, 0]
            watcher = threading.Thread(target=watch, args=(address, stop, slowest))
            watcher.start()
            request = urllib.request.Request(
                f"http://{address}/api/v1/changes", data=body, method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as answer:
                status, counts = answer.status, json.loads(answer.read()).get("counts")
            took = time.perf_counter() - began
            time.sleep(0.5)
            stop.set()
            watcher.join()
            print(f"{size:>6} notices: HTTP {status} {counts} in {took:.3f} s; slowest /healthz "
                  f"{slowest[0] * 1000:.1f} ms, {slowest[1]} unanswered", flush=True)
        finally:
            service.terminate()
            service.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--sizes", default="250,500,1000,2000,10000")
    args = parser.parse_args()
    for size in [int(s) for s in args.sizes.split(",")]:
        run(args.binary, size)


if __name__ == "__main__":
    main()
