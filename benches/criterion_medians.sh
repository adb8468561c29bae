#!/usr/bin/env bash
# Prints the median of every criterion benchmark from the last `cargo bench` run (target/criterion/*/new), per
# iteration and per element or byte, since criterion's own summary line shows the mean.
#
# usage: benches/criterion_medians.sh [FILTER]   (FILTER: a substring of the benchmark id, e.g. `detector_tick`)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CRITERION=${CARGO_TARGET_DIR:-$REPO/target}/criterion
[[ -d $CRITERION ]] || { echo "no $CRITERION: run cargo bench first" >&2; exit 1; }
python3 - "$CRITERION" "${1:-}" <<'PY'
import json, pathlib, sys

root, wanted = pathlib.Path(sys.argv[1]), sys.argv[2]

def human(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"

for meta in sorted(root.glob("**/new/benchmark.json")):
    info = json.loads(meta.read_text())
    if wanted not in info["full_id"]:
        continue
    median = json.loads((meta.parent / "estimates.json").read_text())["median"]
    ns, (low, high) = median["point_estimate"], (
        median["confidence_interval"]["lower_bound"], median["confidence_interval"]["upper_bound"])
    line = f"{info['full_id']:<48} median {human(ns):>12}  [{human(low)} .. {human(high)}]"
    for kind, n in (info.get("throughput") or {}).items():
        if kind == "Elements":
            line += f"  {ns / n:10.1f} ns/elem  {n / ns * 1e3:10.3f} M elem/s"
        elif kind == "Bytes":
            line += f"  {n / ns * 1e3:10.1f} MB/s"
    print(line)
PY
