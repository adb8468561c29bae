#!/usr/bin/env python3
"""Offset sweep for event time (issue 21): shifts every line of one User by a constant offset, replays, and compares
with the unshifted run: lines refused, lines late, and incidents (User, kind, verdict, onset within 60 s).

    benches/clock_sweep.py BINARY [--seed 5] [--offsets 3,6,...] [--work DIR]

Generates `gen --seed S --duration 1h --users 20 --scenario firewall_backlog`, takes its largest User and its
smallest one, and prints one table row per (User, offset, sign). Exits 1 when any row fails.
"""
import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys


def norm(user):
    return re.sub(r"[^0-9A-F]", "", user.upper())


def parse_ts(ts):
    if isinstance(ts, int):
        return ts
    return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def replay(binary, events, changes, report):
    subprocess.run([binary, "replay", events, "--changes", changes, "--report", report],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(report) as f:
        return json.load(f)


def incidents(report):
    return [(i["user"], i["kind"], i["verdict"], i["onset"]) for i in report["incidents"]]


def same(base, other, tolerance_ms=60_000):
    """Every base incident matched once in other (same User, kind, verdict, onset within tolerance) and no extra."""
    left = list(other)
    for (user, kind, verdict, onset) in base:
        match = next((o for o in left if o[:3] == (user, kind, verdict) and abs(o[3] - onset) <= tolerance_ms), None)
        if match is None:
            return False
        left.remove(match)
    return not left


def shift(source, target, user, offset_ms):
    with open(source, "rb") as src, open(target, "wb") as out:
        for raw in src:
            try:
                line = json.loads(raw)
            except ValueError:
                out.write(raw)
                continue
            if norm(line.get("user", "")) == user:
                line["ts"] = parse_ts(line["ts"]) + offset_ms
                out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            else:
                out.write(raw)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--offsets", default="3,6,7,9,12,35,120,300,600", help="seconds; each is tried + and -")
    parser.add_argument("--work", default="/tmp/clock_sweep")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    base_dir = os.path.join(args.work, "base")
    subprocess.run([args.binary, "gen", "--seed", str(args.seed), "--duration", "1h", "--users", "20",
                    "--scenario", "firewall_backlog", "--out", base_dir],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = os.path.join(base_dir, "events.ndjson")
    changes = os.path.join(base_dir, "changes.json")
    counts = collections.Counter()
    with open(events, "rb") as f:
        for raw in f:
            try:
                counts[norm(json.loads(raw)["user"])] += 1
            except (ValueError, KeyError):
                pass
    ranked = counts.most_common()
    targets = [("largest", ranked[0][0]), ("small", ranked[-1][0])]
    base = replay(args.binary, events, changes, os.path.join(args.work, "base.json"))
    base_incidents = incidents(base)
    total = base["summary"]["events"]
    print(f"seed {args.seed}: {total} lines, {len(base_incidents)} incident(s) unshifted: {base_incidents}")
    print("| User | offset s | refused | late | late % | incidents | same |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    failed = 0
    for label, user in targets:
        for magnitude in [int(o) for o in args.offsets.split(",")]:
            for sign in (1, -1):
                offset = sign * magnitude
                shifted = os.path.join(args.work, "shifted.ndjson")
                shift(events, shifted, user, offset * 1000)
                report = replay(args.binary, shifted, changes, os.path.join(args.work, "shifted.json"))
                summary = report["summary"]
                refused = total - summary["events"]
                late = summary["late"]
                ok = same(base_incidents, incidents(report))
                good = ok and refused == 0 and late <= 0.005 * total
                failed += not good
                print(f"| {label} ({counts[user]} lines) | {offset:+d} | {refused} | {late} | "
                      f"{100 * late / total:.2f} | {len(report['incidents'])} | {'yes' if ok else 'NO'} |"
                      + ("" if good else " FAIL"))
                sys.stdout.flush()
    print(f"{failed} row(s) failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
