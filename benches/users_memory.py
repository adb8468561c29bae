#!/usr/bin/env python3
"""Memory per User of `stormwatch serve` (a measurement, not a test).

Starts the binary on loopback, POSTs --seconds seconds of traffic for --users made-up Users (one line per User
per second, like tests/bounded_users.rs), waits until the engine holds them all, then prints resident memory
before and after, bytes per User, the size of /metrics, and (after a clean stop, which takes a final snapshot)
the size of the engine snapshot in the store.

With --idle S, the service runs with `evict_idle_after_s = S`; after the measurement one User alone sends a line a
second for S + 30 s of event time, the others fall idle and are evicted, and resident memory and /metrics are
measured again with one User left, and once more after a second wave of --users new made-up Users fills the
table again (freed memory is reused: the allocator need not give it back to the system, so resident memory after
eviction alone says little). The snapshot is then taken with the second wave in the table.

Usage: benches/users_memory.py [--binary target/release/stormwatch] [--users 4096] [--seconds 10] [--idle 60]
"""
import argparse
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

T0 = 1_773_133_200_000


def user(n):
    return f"02-00-00-00-{n >> 24:02X}-{(n >> 16) & 0xFF:02X}-{(n >> 8) & 0xFF:02X}-{n & 0xFF:02X}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"^VmRSS:\s+(\d+)", status.read(), re.M).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--users", type=int, default=4096)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=0, help="evict_idle_after_s; 0 skips the eviction phase")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="stormwatch-users-")
    try:
        token = subprocess.run([args.binary, "tokens", "add", "--name", "bench", "--role", "ingest",
                                "--data-dir", data_dir], check=True, capture_output=True, text=True)
        secret = token.stdout.strip().splitlines()[-1].strip()
        http = f"127.0.0.1:{free_port()}"
        config = []
        if args.idle > 0:
            with open(f"{data_dir}/stormwatch.toml", "w") as file:
                file.write(f"[engine]\nevict_idle_after_s = {args.idle}\n")
            config = ["--config", f"{data_dir}/stormwatch.toml"]
        service = subprocess.Popen([args.binary, "serve", "--data-dir", data_dir, "--http", http,
                                    "--ingest", f"127.0.0.1:{free_port()}", *config], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://{http}/readyz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(0.5)
            before = rss_kib(service.pid)
            def post(body):
                request = urllib.request.Request(f"http://{http}/api/v1/events", data=body, method="POST",
                                                 headers={"Authorization": f"Bearer {secret}"})
                urllib.request.urlopen(request, timeout=60).read()

            def users_reach(done):
                while True:
                    metrics = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read()
                    found = re.search(rb"^stormwatch_users (\S+)$", metrics, re.M)
                    if found and done(float(found.group(1))):
                        return
                    time.sleep(0.2)

            for second in range(args.seconds):
                post("".join(
                    f'{{"ts":{T0 + second * 1000},"user":"{user(n)}","event":"request","count":1}}\n'
                    for n in range(args.users)).encode())
            users_reach(lambda n: n >= args.users)
            time.sleep(2)
            after = rss_kib(service.pid)
            metrics = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read()
            if args.idle > 0:
                post("".join(
                    f'{{"ts":{T0 + second * 1000},"user":"{user(0)}","event":"request","count":1}}\n'
                    for second in range(args.seconds, args.seconds + args.idle + 30)).encode())
                users_reach(lambda n: n <= 1)
                time.sleep(2)
                evicted = rss_kib(service.pid)
                evicted_metrics = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read()
                start = args.seconds + args.idle + 30
                for second in range(start, start + args.seconds):
                    post("".join(
                        f'{{"ts":{T0 + second * 1000},"user":"{user(n)}","event":"request","count":1}}\n'
                        for n in range(args.users, 2 * args.users)).encode())
                users_reach(lambda n: n >= args.users)
                time.sleep(2)
                refilled = rss_kib(service.pid)
        finally:
            service.terminate()
            service.wait(timeout=60)
        with sqlite3.connect(f"{data_dir}/stormwatch.db") as db:
            row = db.execute("SELECT length(data) FROM snapshot").fetchone()
        snapshot = row[0] if row else 0
        print(f"{args.users} Users x {args.seconds} s: RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB "
              f"after = {(after - before) * 1024 / args.users / 1024:.1f} KiB per User; /metrics "
              f"{len(metrics) / 1e6:.2f} MB; snapshot {snapshot / 1e6:.1f} MB "
              f"({snapshot / args.users / 1024:.1f} KiB per User)")
        if args.idle > 0:
            print(f"after {args.users - 1} Users idle {args.idle} s and evicted: RSS {evicted / 1024:.1f} MiB, "
                  f"/metrics {len(evicted_metrics) / 1e6:.2f} MB (evicted Users' series gone); a second wave of "
                  f"{args.users} new Users fills the table again: RSS {refilled / 1024:.1f} MiB")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
