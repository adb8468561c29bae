#!/usr/bin/env python3
"""The TCP telemetry listener under a flood of idle connections (a measurement; tests/hostile.rs has the tests).

Starts the release binary with the default connection cap (`ingest_max_connections`, 256 unless --cap) and an
idle timeout of --idle-timeout seconds (the default is 300; shorter here so the run is short), opens --connections
(2,000) TCP connections that send nothing, and prints the service's threads and RSS before and with them, what
the connections over the cap were told, the connection and refusal metrics, then how long the idle ones took to
be closed and whether a new sender is served afterwards.

Usage: benches/idle_connections.py [--binary target/release/stormwatch] [--connections 2000] [--cap 256]
       [--idle-timeout 30]
"""
import argparse
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid):
    text = open(f"/proc/{pid}/status").read()
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
    return threads, rss_kb / 1024


OPEN = 'stormwatch_connections{listener="tcp"}'
CAP = 'stormwatch_connections_refused_total{listener="tcp",reason="cap"}'
IDLE = 'stormwatch_connections_refused_total{listener="tcp",reason="idle"}'


def metrics(http):
    text = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
    found = {}
    for name in (OPEN, CAP, IDLE):
        match = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
        found[name] = float(match.group(1)) if match else 0.0
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--cap", type=int, default=256)
    parser.add_argument("--idle-timeout", type=int, default=30)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 256)), hard))

    data_dir = tempfile.mkdtemp(prefix="stormwatch-idle-")
    http, ingest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with open(f"{data_dir}/idle.toml", "w") as config:
        config.write(f"ingest_max_connections = {args.cap}\ningest_idle_timeout_s = {args.idle_timeout}\n")
    service = subprocess.Popen([args.binary, "serve", "--data-dir", data_dir, "--http", http, "--ingest", ingest,
                                "--config", f"{data_dir}/idle.toml"],
                               stderr=None if os.environ.get("BENCH_LOG") else subprocess.DEVNULL)
    sockets = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{http}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        threads0, rss0 = status(service.pid)
        print(f"before: {threads0} threads, RSS {rss0:.1f} MB")
        host, port = ingest.split(":")
        refused_connects = 0
        opened_at = time.monotonic()
        for _ in range(args.connections):
            try:
                sockets.append(socket.create_connection((host, int(port)), timeout=5))
            except OSError:
                refused_connects += 1
        # Let the listener accept (and refuse) them all.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = metrics(http)
            if m[OPEN] + m[CAP] >= len(sockets):
                break
            time.sleep(0.2)
        threads1, rss1 = status(service.pid)
        m = metrics(http)
        print(f"with {args.connections:,} idle connections ({refused_connects} connect() calls failed): "
              f"{threads1} threads, RSS {rss1:.1f} MB; open {m[OPEN]:.0f}, "
              f"refused at the cap {m[CAP]:.0f}")

        # What each connection sees: the refused ones a reason and a close at once, the others a close when idle.
        told, closed_at = {}, {}
        pending = {s.fileno(): s for s in sockets}
        selector = selectors.DefaultSelector()
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + args.idle_timeout + 60
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                fd, sock = key.fd, key.fileobj
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if data:
                    told[fd] = told.get(fd, b"") + data
                    continue
                closed_at[fd] = time.monotonic() - opened_at
                selector.unregister(sock)
                del pending[fd]
        answers = {}
        for fd in closed_at:
            text = told.get(fd, b"").decode(errors="replace").strip() or "(nothing)"
            answers[text] = answers.get(text, 0) + 1
        quick = sum(1 for t in closed_at.values() if t < args.idle_timeout / 2)
        slow = sorted(t for t in closed_at.values() if t >= args.idle_timeout / 2)
        print(f"closed by the service: {len(closed_at):,} of {len(sockets):,} ({len(pending)} still open after "
              f"{args.idle_timeout + 60} s); answers: " + ", ".join(f"{n:,} x {t!r}" for t, n in answers.items()))
        if slow:
            print(f"  {quick:,} closed at once; {len(slow):,} closed as idle after {slow[0]:.1f}-{slow[-1]:.1f} s "
                  f"(idle timeout {args.idle_timeout} s)")
        threads2, rss2 = status(service.pid)
        m = metrics(http)
        print(f"after: {threads2} threads, RSS {rss2:.1f} MB; open {m[OPEN]:.0f}, "
              f"closed as idle {m[IDLE]:.0f}")
        for sock in sockets:
            sock.close()
        sockets = []
        with socket.create_connection((host, int(port)), timeout=5) as sender:
            sender.sendall(b'{"ts":1773133200000,"user":"90-B3-D5-1F-30-01-00-01","event":"request","count":1}\n')
        time.sleep(1.5)
        text = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
        match = re.search(r'^stormwatch_ingest_lines_total\{source="tcp"\} (\S+)$', text, re.M)
        print(f"a new sender afterwards: {match.group(1) if match else 0} line(s) counted")
    finally:
        for sock in sockets:
            sock.close()
        service.terminate()
        service.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
