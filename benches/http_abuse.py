#!/usr/bin/env python3
"""HTTP abuse figures for `stormwatch serve` (a measurement, not a test; tests/abuse_http.rs holds the liveness
checks). Starts the binary on loopback, then for each scenario samples how long a normal client on 127.0.0.1
waits for /readyz, /healthz and /metrics:

  1. pipeline: --abusers connections (default 520, from 8 source addresses 127.0.1.x) each pipeline 2,000
     `GET /metrics` and never read their answers;
  2. slowloris: --abusers connections (from 10 source addresses 127.0.2.x) send headers that never end;
  3. rss: 48 posts of 60 MiB without a token; the service's peak VmRSS above idle.

Usage: benches/http_abuse.py [--binary target/release/stormwatch] [--abusers 520] [--samples 20]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time


def start(binary, data_dir):
    process = subprocess.Popen(
        [binary, "serve", "--http", "127.0.0.1:0", "--ingest", "127.0.0.1:0", "--log-format", "json",
         "--data-dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    http = None
    while http is None:
        line = process.stderr.readline()
        if not line:
            raise SystemExit("serve exited before listening")
        try:
            log = json.loads(line)
        except ValueError:
            continue
        if log.get("fields", {}).get("message") == "HTTP API up":
            host, port = log["fields"]["address"].rsplit(":", 1)
            http = (host, int(port))
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    return process, http


def connect_from(source, address):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    return sock


def timed_get(address, path):
    started = time.monotonic()
    sock = socket.create_connection(address, timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    return status, time.monotonic() - started


def sample(address, samples):
    times = []
    for i in range(samples):
        path = ["/readyz", "/healthz", "/metrics"][i % 3]
        status, took = timed_get(address, path)
        assert status == 200, (path, status)
        times.append(took * 1000)
    return f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {samples} requests"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--abusers", type=int, default=520)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        process, address = start(args.binary, data_dir)
        try:
            print("idle:", sample(address, args.samples))
            held = []
            pipeline = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
            for i in range(args.abusers):
                sock = connect_from(f"127.0.1.{1 + i % 8}", address)
                if sock:
                    held.append(sock)
            for sock in held:
                sock.setblocking(False)
                try:
                    sock.send(pipeline)
                except OSError:
                    pass
            time.sleep(1)
            print(f"pipeline ({args.abusers} never-reading clients):", sample(address, args.samples))
            for sock in held:
                sock.close()
            held = []
            for i in range(args.abusers):
                sock = connect_from(f"127.0.2.{1 + i % 10}", address)
                if sock:
                    sock.setblocking(False)
                    try:
                        sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
                    except OSError:
                        pass
                    held.append(sock)
            time.sleep(1)
            print(f"slowloris ({args.abusers} connections):", sample(address, args.samples))
            for sock in held:
                sock.close()

            idle = rss_kib(process.pid)
            peak = [idle]

            def post():
                sock = socket.create_connection(address, timeout=60)
                body = 60 << 20
                try:
                    sock.sendall(f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n".encode())
                    chunk = b"\n" * (1 << 20)
                    for _ in range(60):
                        sock.sendall(chunk)
                except OSError:
                    pass
                sock.close()

            posts = [threading.Thread(target=post) for _ in range(48)]
            for thread in posts:
                thread.start()
            while any(thread.is_alive() for thread in posts):
                peak.append(rss_kib(process.pid))
                time.sleep(0.02)
            print(f"rss: idle {idle} KiB, peak {max(peak)} KiB during 48 x 60 MiB unauthenticated posts "
                  f"(+{(max(peak) - idle) / 1024:.1f} MiB)")
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
