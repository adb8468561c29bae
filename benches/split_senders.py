#!/usr/bin/env python3
"""Split senders (issue 21): one generated file sent to `stormwatch serve` by several TCP senders at once, flat
out, as exporters flushing their buffers after an outage would, and compared with `stormwatch replay` of the whole
file. A measurement for the issue's closing note, not a test.

    benches/split_senders.py BINARY [--seed 1] [--duration 12h] [--scale 4] [--users 30] [--senders 4]
                             [--engine-queue 2] [--splits user,round_robin] [--work DIR] [--serve-config TOML]
                             [--known-first]

Generates `gen --seed S --duration D --scale X --users U --scenario firewall_backlog`, replays it, then for each
split (`user`: each User's lines all to one sender, Users dealt out by line count; `round_robin`: line i to sender
i mod N) starts `serve --engine-queue Q` on loopback ports with the change register imported, sends the N parts at
once over N connections, waits until every line is counted, none is held and the watermark has passed the last
line, and prints per split: lines, late (and %), refused, malformed, the incidents (User, kind, verdict, onset within
60 s) equal to replay's yes/no, how many warnings of a source too far behind were logged, and the wall time from
the first byte sent to the last line counted. Exits 1 when a split's incidents differ or more than 0.5 % is late.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

USER = re.compile(rb'"user"\s*:\s*"([^"]*)"')
ONSET_TOLERANCE_MS = 60_000


def hex_user(raw):
    return re.sub(rb"[^0-9A-Fa-f]", b"", raw).upper()


def run(*command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def free_ports(count):
    """`count` distinct free loopback ports (held open together while chosen, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def incidents_of(listed):
    return [(hex_user(i["user"].encode()), i["kind"], i["verdict"], i["onset"]) for i in listed]


def differences(expected, got):
    """(missing, extra): each expected incident matches one of `got` with the same User, kind and verdict and an
    onset within a minute."""
    extra, missing = list(got), []
    for want in expected:
        match = next((g for g in extra if g[:3] == want[:3] and abs(g[3] - want[3]) <= ONSET_TOLERANCE_MS), None)
        if match is None:
            missing.append(want)
        else:
            extra.remove(match)
    return missing, extra


def split(events, parts, how, work):
    """Writes the N parts of `events`; their paths and line counts."""
    paths = [os.path.join(work, f"{how}-{n}.ndjson") for n in range(parts)]
    if how == "user":
        counts = {}
        with open(events, "rb") as f:
            for line in f:
                m = USER.search(line)
                user = hex_user(m.group(1)) if m else b""
                counts[user] = counts.get(user, 0) + 1
        # Largest Users first, each to the sender with the fewest lines so far.
        load, owner = [0] * parts, {}
        for user, count in sorted(counts.items(), key=lambda kv: -kv[1]):
            n = load.index(min(load))
            owner[user] = n
            load[n] += count
    outs = [open(p, "wb", buffering=1 << 20) for p in paths]
    lines = [0] * parts
    with open(events, "rb") as f:
        for i, line in enumerate(f):
            if how == "user":
                m = USER.search(line)
                n = owner[hex_user(m.group(1)) if m else b""]
            else:
                n = i % parts
            outs[n].write(line)
            lines[n] += 1
    for out in outs:
        out.close()
    return paths, lines


def metrics(http):
    text = urllib.request.urlopen(f"http://{http}/metrics", timeout=30).read().decode()
    totals = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return totals


def get_json(http, path, token):
    request = urllib.request.Request(f"http://{http}{path}", headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(request, timeout=60))


def send_file(address, path, errors, known_first):
    try:
        with socket.create_connection(address) as sock, open(path, "rb") as f:
            if known_first:
                sock.sendall(f.readline())
                time.sleep(2)
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            # Wait for the service to close or the test to end: closing first could reset unread lines away.
            sock.settimeout(3600)
            while sock.recv(65536):
                pass
    except OSError as error:
        errors.append(f"{path}: {error}")


def stop(process):
    """SIGTERM, and SIGKILL if it has not exited within a minute."""
    process.terminate()
    deadline = time.time() + 60
    while process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
        process.wait()


def serve_split(binary, paths, total, last_ts, changes, queue, work, how, config, known_first):
    data = os.path.join(work, f"data-{how}")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    run(binary, "changes", "import", changes, "--data-dir", data)
    ops = run(binary, "tokens", "add", "--name", "ops", "--role", "ops", "--data-dir", data).strip().splitlines()[-1]
    http_port, ingest_port = free_ports(2)
    http, ingest = f"127.0.0.1:{http_port}", ("127.0.0.1", ingest_port)
    log_path = os.path.join(work, f"serve-{how}.log")
    log = open(log_path, "w")
    service = subprocess.Popen([binary, "serve", "--http", http, "--ingest", f"{ingest[0]}:{ingest[1]}",
                                "--data-dir", data, "--engine-queue", str(queue), "--log-format", "json"]
                               + (["--config", os.path.abspath(config)] if config else []),
                               stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                metrics(http)
                break
            except OSError:
                if time.time() > deadline or service.poll() is not None:
                    raise SystemExit(f"serve did not start (see {log_path})")
                time.sleep(0.2)
        errors, held_max = [], 0
        started = time.time()
        senders = [threading.Thread(target=send_file, args=(ingest, p, errors, known_first)) for p in paths]
        for sender in senders:
            sender.start()
        deadline = started + 3 * 3600
        while True:
            m = metrics(http)
            held_max = max(held_max, m.get("stormwatch_ingest_held_lines", 0))
            counted = sum(m.get(k, 0) for k in ("stormwatch_ingest_lines_total", "stormwatch_ingest_refused_total",
                                                  "stormwatch_ingest_malformed_total"))
            watermark = m.get("stormwatch_watermark_timestamp_seconds", 0) * 1000
            if counted >= total and m.get("stormwatch_ingest_held_lines", 0) == 0 and watermark > last_ts:
                break
            if time.time() > deadline or service.poll() is not None:
                raise SystemExit(f"{how}: not settled: {counted} of {total} counted, watermark {watermark}")
            time.sleep(0.5)
        wall = time.time() - started
        incidents = [i for i in get_json(http, "/api/v1/incidents", ops) if i["onset"] <= last_ts]
    finally:
        stop(service)
        log.close()
        for sender in senders if "senders" in locals() else []:
            sender.join(timeout=10)
    with open(log_path) as f:
        warnings = sum("too far behind" in line for line in f)
    return m, wall, incidents_of(incidents), warnings, held_max, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--duration", default="12h")
    parser.add_argument("--scale", default="4")
    parser.add_argument("--users", default="30")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--engine-queue", type=int, default=2)
    parser.add_argument("--splits", default="user,round_robin")
    parser.add_argument("--work", default="/tmp/split_senders")
    parser.add_argument("--serve-config", help="a TOML file for `serve --config` (say, other [engine.clock] thresholds)")
    parser.add_argument("--known-first", action="store_true",
                        help="each sender sends its first line and waits 2 s before the rest, so that the service "
                             "has every source's first lines before any runs ahead (a connection is waited for from the moment "
                             "it opens, but only from the frontier it joined at)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    os.makedirs(args.work, exist_ok=True)
    gen = os.path.join(args.work, "gen")
    events, changes = os.path.join(gen, "events.ndjson"), os.path.join(gen, "changes.json")
    gen_args = ["gen", "--seed", args.seed, "--duration", args.duration, "--scale", args.scale, "--users",
                args.users, "--scenario", "firewall_backlog"]
    if not os.path.exists(events):
        run(binary, *gen_args, "-q", "--out", gen)
    report = os.path.join(args.work, "replay.json")
    began = time.time()
    run(binary, "replay", events, "--changes", changes, "--report", report, "-q")
    replay_s = time.time() - began
    with open(report) as f:
        replayed = json.load(f)
    summary = replayed["summary"]
    total, last_ts = summary["events"] + summary["malformed"], summary["last_ts"]
    expected = incidents_of(replayed["incidents"])
    print(f"`stormwatch {' '.join(gen_args)}`: {total} lines; replay: {summary['late']} late, "
          f"{len(expected)} incident(s) in {replay_s:.1f} s: {expected}")
    print(f"{args.senders} TCP senders flat out to `serve --engine-queue {args.engine_queue}`")
    print("| split | lines | late | late % | refused | malformed | incidents | equal | warnings | held max | wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    failed = 0
    for how in args.splits.split(","):
        paths, lines = split(events, args.senders, how, args.work)
        m, wall, got, warnings, held_max, errors = serve_split(
            binary, paths, total, last_ts, changes, args.engine_queue, args.work, how, args.serve_config,
            args.known_first)
        for path in paths:
            os.remove(path)
        late, refused = m.get("stormwatch_ingest_late_total", 0), m.get("stormwatch_ingest_refused_total", 0)
        missing, extra = differences(expected, got)
        equal = not missing and not extra
        failed += not equal or late > 0.005 * total or refused > 0 or bool(errors)
        print(f"| {how} ({'/'.join(map(str, lines))}) | {int(m.get('stormwatch_ingest_lines_total', 0))} | "
              f"{int(late)} | {100 * late / total:.2f} | {int(refused)} | "
              f"{int(m.get('stormwatch_ingest_malformed_total', 0))} | {len(got)} | {'yes' if equal else 'NO'} | "
              f"{warnings} | {int(held_max)} | {wall:.1f} |")
        if not equal:
            print(f"  missing: {missing}\n  extra: {extra}")
        if errors:
            print(f"  sender errors: {errors}")
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
