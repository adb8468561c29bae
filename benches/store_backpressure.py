#!/usr/bin/env python3
"""The engine and the API with a slow store (a measurement; tests/store_backpressure.rs has the tests).

Starts `serve` with every store write slowed by --slow-ms (the hidden `--fault-slow-store-ms`), streams
telemetry with a backlog that opens and resolves incidents (so the engine has incidents and charts to write),
and for --seconds samples, every 100 ms: the answer time of /healthz, /readyz, /api/v1/users,
/api/v1/incidents and the console overview (each with its token lookup), the engine's tick age and the write
queue's figures. Prints each route's median, 99th percentile and worst time, the worst tick age, and the queue.

Usage: benches/store_backpressure.py [--binary target/release/stormwatch] [--slow-ms 2000] [--seconds 30]
"""
import argparse
import json
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

T0 = 1_773_133_200_000
USERS = ["90-B3-D5-1F-30-01-00-07", "4C-E1-73-00-00-00-11-01"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lines(second):
    """One second of two Users; the first one's endpoint refuses everything for 200 s of every 400."""
    ts = T0 + second * 1000
    out = []
    for index, user in enumerate(USERS):
        rate = 50 if index == 0 else 20
        out.append({"ts": ts, "user": user, "event": "request", "count": rate})
        out.append({"ts": ts + 200, "user": user, "event": "queued", "count": rate})
        if index == 0 and (second % 400) in range(100, 300):
            out.append({"ts": ts + 400, "user": user, "event": "delivery_failed", "reason": "refused",
                        "count": rate})
        else:
            out.append({"ts": ts + 400, "user": user, "event": "delivered",
                        "count": rate * (2 if index == 0 and (second % 400) >= 300 else 1)})
    return "".join(json.dumps(line) + "\n" for line in out).encode()


def timed_get(http, path, token):
    request = urllib.request.Request(f"http://{http}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return time.monotonic() - started, status


def metric(text, name):
    match = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--slow-ms", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="stormwatch-backpressure-")
    token = subprocess.run([args.binary, "tokens", "add", "--name", "ops", "--role", "ops", "--data-dir", data],
                           check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    http, ingest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    service = subprocess.Popen([args.binary, "serve", "--http", http, "--ingest", ingest, "--data-dir", data,
                                "--fault-slow-store-ms", str(args.slow_ms)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                timed_get(http, "/healthz", None)
                break
            except OSError:
                time.sleep(0.1)
        stop = threading.Event()

        def send():
            # Event time runs 20 times the wall clock: a backlog opens and resolves every 20 s.
            with socket.create_connection(tuple(ingest.split(":"))) as stream:
                second = 0
                while not stop.is_set():
                    stream.sendall(b"".join(lines(second + i) for i in range(2)))
                    second += 2
                    time.sleep(0.1)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        routes = ["/healthz", "/readyz", "/api/v1/users", "/api/v1/incidents", "/api/v1/console/overview"]
        times = {route: [] for route in routes}
        statuses = {route: set() for route in routes}
        tick_age = depth = oldest = 0.0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for route in routes:
                took, status = timed_get(http, route, None if route in ("/healthz", "/readyz") else token)
                times[route].append(took)
                statuses[route].add(status)
            text = urllib.request.urlopen(f"http://{http}/metrics", timeout=60).read().decode()
            tick_age = max(tick_age, metric(text, "stormwatch_engine_tick_age_seconds") or 0.0)
            depth = max(depth, metric(text, "stormwatch_store_queue_depth") or 0.0)
            oldest = max(oldest, metric(text, "stormwatch_store_queue_oldest_seconds") or 0.0)
            time.sleep(0.1)
        stop.set()
        text = urllib.request.urlopen(f"http://{http}/metrics", timeout=60).read().decode()
        readyz = urllib.request.Request(f"http://{http}/readyz")
        try:
            ready = urllib.request.urlopen(readyz, timeout=60).read().decode()
        except urllib.error.HTTPError as error:
            ready = error.read().decode()
        print(f"store writes slowed by {args.slow_ms} ms; {args.seconds} s of samples")
        for route in routes:
            samples = sorted(times[route])
            pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
            print(f"{route:28} n={len(samples):4} p50={pick(0.5):7.1f} ms p99={pick(0.99):7.1f} ms "
                  f"max={samples[-1] * 1000:7.1f} ms statuses={sorted(statuses[route])}")
        print(f"worst engine tick age {tick_age:.2f} s; queue depth up to {depth:.0f}, oldest write up to "
              f"{oldest:.1f} s; watermark {metric(text, 'stormwatch_watermark_timestamp_seconds')}")
        for name in ("stormwatch_store_queue_coalesced_total", "stormwatch_store_engine_waits_total",
                     "stormwatch_store_engine_waited_seconds"):
            print(f"{name} {metric(text, name)}")
        print("readyz at the end:\n" + ready.strip())
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()


if __name__ == "__main__":
    main()
