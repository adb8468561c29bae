#!/usr/bin/env python3
"""Event time lost by kill -9 under `stormwatch serve` (a measurement, not a test; tests/crash.rs is the test).

A sender streams per-second telemetry over TCP, paced at --speed seconds of event time per wall second, for 20
Users; one of them queues 100 messages a second and delivers 50, so its queue depth grows by exactly 50 per
second of event time and tells how many seconds the service holds. The service is killed with SIGKILL
--kill-after seconds after it started (by default 27 s after its second periodic snapshot), the sender stops,
the service is started again on the same data dir, and the User's state is read back.

Printed for each speed:
  - sent: the last second of event time the sender had written when the service died;
  - before: the second the service's state had reached (User API `as_of`, last closed second) just before the kill;
  - after: the same after the restart, and again once the idle clock has closed the seconds that were open, with
    whether the depth still matches every second up to it;
  - lost = sent - kept: event time the sender would have to resend (whatever was in flight in socket buffers and
    the engine's queue), and sent - after, counting the seconds still open (the allowed lateness and one second)
    as lost too; against the snapshot interval's worth of event time a restart from the snapshot alone loses.

Usage: benches/crash_loss.py [--binary target/release/stormwatch] [--speeds 1,20] [--kill-after 87]
       [--snapshot-every 30] [--lateness 5]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

USERS = [f"90-B3-D5-1F-30-02-00-{i:02X}" for i in range(20)]
WATCHED = USERS[0]


def second_lines(ts):
    out = []
    for index, user in enumerate(USERS):
        queued, delivered = (100, 50) if user == WATCHED else (10 + index, 10 + index)
        out.append(f'{{"ts":{ts},"user":"{user}","event":"request","count":{queued}}}\n')
        out.append(f'{{"ts":{ts + 200},"user":"{user}","event":"queued","count":{queued}}}\n')
        out.append(f'{{"ts":{ts + 400},"user":"{user}","event":"delivered","count":{delivered}}}\n')
    return "".join(out).encode()


class Sender(threading.Thread):
    """Writes one second of event time at a time, paced; remembers the last second written whole."""

    def __init__(self, address, t0_ms, speed):
        super().__init__(daemon=True)
        self.address, self.t0_ms, self.speed = address, t0_ms, speed
        self.last_sent = None
        self.stop = threading.Event()

    def run(self):
        try:
            with socket.create_connection(self.address) as sock:
                start = time.perf_counter()
                second = 0
                while not self.stop.is_set():
                    sock.sendall(second_lines(self.t0_ms + second * 1000))
                    self.last_sent = second
                    second += 1
                    delay = start + second / self.speed - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        except OSError:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, token=None, timeout=10):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read().decode()


def start(args, data_dir, http, ingest):
    command = [args.binary, "serve", "--data-dir", data_dir, "--http", http, "--ingest", ingest,
               "--snapshot-every", str(args.snapshot_every), "--lateness", str(args.lateness)]
    service = subprocess.Popen(command, stderr=None if os.environ.get("BENCH_LOG") else subprocess.DEVNULL)
    for _ in range(300):
        try:
            get(f"http://{http}/readyz", timeout=1)
            return service
        except OSError:
            time.sleep(0.1)
    service.kill()
    raise SystemExit("the service did not become ready")


def user_state(http, token):
    view = json.loads(get(f"http://{http}/api/v1/users/{WATCHED}", token))
    return view["as_of"], view["depth"]


def measure(args, speed):
    data_dir = tempfile.mkdtemp(prefix="stormwatch-crash-")
    try:
        token = subprocess.run([args.binary, "tokens", "add", "--name", "bench", "--role", "ops", "--data-dir",
                                data_dir], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        http, ingest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        service = start(args, data_dir, http, ingest)
        started = time.monotonic()
        # Event time starts far enough behind the wall clock that a 20x run never passes it.
        t0_ms = (int(time.time()) - 6 * 3600) * 1000
        sender = Sender(("127.0.0.1", int(ingest.split(":")[1])), t0_ms, speed)
        sender.start()
        time.sleep(max(0.0, args.kill_after - (time.monotonic() - started)))
        before, _ = user_state(http, token)
        service.send_signal(signal.SIGKILL)
        sent = sender.last_sent
        service.wait()
        sender.stop.set()
        sender.join(timeout=10)

        service = start(args, data_dir, http, ingest)
        after, depth = user_state(http, token)
        # With nothing arriving, the idle clock closes the seconds that were still open: they were kept too.
        time.sleep(args.lateness + 3)
        kept, kept_depth = user_state(http, token)
        service.terminate()
        service.wait(timeout=30)
        after_s = (after - t0_ms) // 1000
        before_s = (before - t0_ms) // 1000
        kept_s = (kept - t0_ms) // 1000
        whole = depth == 50 * (after_s + 1) and kept_depth == 50 * (kept_s + 1)
        interval = args.snapshot_every * speed
        print(f"{speed:>4g}x: killed {args.kill_after:g} s after start; sent through second {sent}; closed seconds "
              f"before the kill {before_s}, after the restart {after_s}, and {kept_s} once the idle clock closed the "
              f"open ones (depth {kept_depth}: {'every second' if whole else 'NOT every second'} up to it); "
              f"lost {sent - kept_s} s of event time, {sent - after_s} s counting the seconds still open "
              f"(lateness {args.lateness:g} s; one snapshot interval is {interval:g} s of event time at this speed)")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--speeds", default="1,20")
    parser.add_argument("--kill-after", type=float, default=87.0)
    parser.add_argument("--snapshot-every", type=int, default=30)
    parser.add_argument("--lateness", type=float, default=5.0)
    args = parser.parse_args()
    for speed in args.speeds.split(","):
        measure(args, float(speed))


if __name__ == "__main__":
    main()
