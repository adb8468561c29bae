#!/usr/bin/env python3
"""Probes `serve` as an attacker or a careless operator would, and prints one row per probe (a measurement;
the tests in tests/ hold each behaviour).

Each probe starts the given binary on a fresh data directory and free loopback ports, with one `ops` token, and
stops it afterwards (kill -9 if SIGTERM is ignored for 10 s). Run it against an old and a new build to get the
before/after table of issue 20:

  benches/abuse_probe.py --binary target/release/stormwatch [--only NAME[,NAME...]]

Probes (acceptance in brackets):
  unauth_posts    48 parallel unauthenticated 60 MiB POST /api/v1/events: RSS peak above idle [< 100 MB]
  never_reading   520 connections (from 8 loopback addresses, past the per-peer cap) pipelining GET /metrics
                  that never read: worst /readyz latency [< 1 s]
  slowloris       600 connections (from 10 loopback addresses) whose headers never end: worst /readyz [< 1 s]
  bomb            a 1 MiB gzip body of valid lines (about 1 GiB decoded): status, lines accepted, seconds
  bulk_notices    2,000 overlapping notices in one POST: seconds [< 2 s], worst /healthz latency [< 100 ms]
  second_serve    a second serve on the same data directory: exit status and whether it names the PID
  tcp_unauth      300 silent TCP connections from 5 other addresses, then an authenticated sender: is it served?
"""
import argparse
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

LINE = b'{"ts":1773133200104,"user":"90-B3-D5-1F-30-01-00-07","event":"request","srv":"4.1.1","count":1}\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1)) / 1024


class Server:
    def __init__(self, binary, data_dir=None, extra=()):
        self.binary = binary
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="probe-")
        self.http, self.ingest = free_port(), free_port()
        out = subprocess.run([binary, "tokens", "add", "--data-dir", self.data_dir, "--name", "probe",
                              "--role", "ops"], capture_output=True, text=True)
        secrets = re.findall(r"^sw_\S+", out.stdout, re.M)
        self.token = secrets[0] if secrets else None
        self.log = open(os.path.join(self.data_dir, "serve.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--data-dir", self.data_dir,
                                      "--http", f"127.0.0.1:{self.http}",
                                      "--ingest", f"127.0.0.1:{self.ingest}", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.get("/healthz", timeout=1)[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("serve did not come up")

    def url(self, path):
        return f"http://127.0.0.1:{self.http}{path}"

    def get(self, path, timeout=5):
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (OSError, urllib.error.URLError):
            return None, b""

    def post(self, path, body, headers=None, timeout=120):
        request = urllib.request.Request(self.url(path), data=body, method="POST",
                                         headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (OSError, urllib.error.URLError) as e:
            return None, str(e).encode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def timed_get(server, path, timeout):
    start = time.monotonic()
    status, _ = server.get(path, timeout=timeout)
    return status, time.monotonic() - start


def readyz_meanwhile(server):
    """The worst of ten /readyz latencies over 5 s, and how many went unanswered within 10 s."""
    time.sleep(3)
    worst, failed = 0.0, 0
    for _ in range(10):
        status, took = timed_get(server, "/readyz", timeout=10)
        worst = max(worst, took)
        failed += status is None
        time.sleep(0.5)
    return worst, failed


def probe_unauth_posts(binary):
    server = Server(binary)
    try:
        time.sleep(1)
        idle = rss_mb(server.proc.pid)
        peak, done = [idle], threading.Event()

        def sample():
            while not done.is_set():
                peak.append(rss_mb(server.proc.pid))
                time.sleep(0.05)

        size, chunk = 60 << 20, b"x" * (1 << 20)
        statuses = []

        def post():
            try:
                with socket.create_connection(("127.0.0.1", server.http), timeout=60) as s:
                    s.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                              + f"Content-Length: {size}\r\n\r\n".encode())
                    for _ in range(size // len(chunk)):
                        s.sendall(chunk)
                    answer = s.recv(64)
                    statuses.append(answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed")
            except OSError:
                statuses.append("closed")

        sampler = threading.Thread(target=sample)
        sampler.start()
        posts = [threading.Thread(target=post) for _ in range(48)]
        for t in posts:
            t.start()
        for t in posts:
            t.join(120)
        time.sleep(2)
        done.set()
        sampler.join()
        after = rss_mb(server.proc.pid)
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        return (f"RSS idle {idle:.0f} MB, peak +{max(peak) - idle:.0f} MB, after +{after - idle:.0f} MB; "
                f"answers {counts}", max(peak) - idle < 100)
    finally:
        server.stop()


def readyz_behind(binary, count, net, peers, payload):
    """/readyz while `count` connections from `peers` addresses 127.0.`net`.x each send `payload` (without
    blocking) and never read: one row, holding when every /readyz answered within 1 s."""
    server = Server(binary)
    sockets = []
    try:
        for i in range(count):
            try:
                s = socket.create_connection(("127.0.0.1", server.http), timeout=5,
                                             source_address=(f"127.0.{net}.{i % peers + 1}", 0))
                s.setblocking(False)
                try:
                    s.send(payload)
                except OSError:
                    pass
                sockets.append(s)
            except OSError:
                continue
        worst, failed = readyz_meanwhile(server)
        return (f"{len(sockets)} connections open; /readyz worst {worst * 1000:.0f} ms, "
                f"{failed} of 10 unanswered in 10 s", failed == 0 and worst < 1)
    finally:
        for s in sockets:
            s.close()
        server.stop()


def probe_never_reading(binary):
    return readyz_behind(binary, 520, 1, 8, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 200)


def probe_slowloris(binary):
    return readyz_behind(binary, 600, 2, 10, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")


def probe_bomb(binary):
    server = Server(binary)
    try:
        body = gzip.compress(LINE * ((1 << 30) // len(LINE)), compresslevel=9)
        start = time.monotonic()
        status, answer = server.post("/api/v1/events", body, {"Content-Encoding": "gzip"}, timeout=300)
        took = time.monotonic() - start
        try:
            accepted = json.loads(answer).get("accepted")
        except ValueError:
            accepted = None
        return (f"{len(body) / 1024:.0f} KiB gzip: status {status}, accepted {accepted}, {took:.1f} s",
                status == 413)
    finally:
        server.stop()


def probe_bulk_notices(binary):
    server = Server(binary)
    try:
        notices = [{"id": f"CHG-PROBE-{i:05}", "user": "90-B3-D5-1F-30-01-00-07", "title": "overlapping window",
                    "category": "network", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T12:00:00Z"}
                   for i in range(2000)]
        worst, done = [0.0], threading.Event()

        def watch():
            while not done.is_set():
                _, took = timed_get(server, "/healthz", timeout=30)
                worst[0] = max(worst[0], took)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.monotonic()
        status, _ = server.post("/api/v1/changes", json.dumps(notices).encode(),
                                {"Content-Type": "application/json"}, timeout=90)
        took = time.monotonic() - start
        done.set()
        watcher.join()
        return (f"status {status} after {took:.2f} s; /healthz worst {worst[0] * 1000:.0f} ms",
                status in (200, 201) and took < 2 and worst[0] < 0.1)
    finally:
        server.stop()


def probe_second_serve(binary):
    first = Server(binary)
    try:
        second = subprocess.run([binary, "serve", "--data-dir", first.data_dir, "--http", f"127.0.0.1:{free_port()}",
                                 "--ingest", f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=15)
        named = str(first.proc.pid) in second.stderr + second.stdout
        return f"exit {second.returncode}, names the PID: {named}", second.returncode != 0 and named
    except subprocess.TimeoutExpired:
        return "the second serve kept running (killed after 15 s)", False
    finally:
        subprocess.run(["pkill", "-9", "-f", f"serve --data-dir {first.data_dir}"], check=False)
        first.stop()


def probe_tcp_unauth(binary):
    server = Server(binary, extra=["--config", write_config({"ingest_auth": "token"})])
    silent = []
    try:
        # From five other loopback addresses: the attacker is not the exporter's host.
        for i in range(300):
            try:
                silent.append(socket.create_connection(("127.0.0.1", server.ingest), timeout=2,
                                                       source_address=(f"127.0.3.{i % 5 + 1}", 0)))
            except OSError:
                break
        time.sleep(1)
        with socket.create_connection(("127.0.0.1", server.ingest), timeout=5) as s:
            try:
                s.sendall(f"AUTH {server.token}\n".encode())
                answer = s.recv(100).decode(errors="replace").strip()
            except OSError as e:
                answer = f"error: {e}"
        served = answer.startswith("OK")
        return f"{len(silent)} silent connections; authenticated sender got {answer[:60]!r}", served
    finally:
        for s in silent:
            s.close()
        server.stop()


def write_config(settings):
    fd, path = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        for key, value in settings.items():
            f.write(f"{key} = {json.dumps(value)}\n")
    return path


PROBES = {
    "unauth_posts": probe_unauth_posts,
    "never_reading": probe_never_reading,
    "slowloris": probe_slowloris,
    "bomb": probe_bomb,
    "bulk_notices": probe_bulk_notices,
    "second_serve": probe_second_serve,
    "tcp_unauth": probe_tcp_unauth,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--only", default=",".join(PROBES))
    args = parser.parse_args()
    print(f"| probe | {args.binary} | holds |\n| --- | --- | --- |", flush=True)
    for name in args.only.split(","):
        try:
            figure, holds = PROBES[name](args.binary)
        except Exception as e:  # a probe that breaks is a row too
            figure, holds = f"probe failed: {e}", False
        print(f"| {name} | {figure} | {'yes' if holds else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
