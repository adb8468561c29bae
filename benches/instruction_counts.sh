#!/usr/bin/env bash
# Instructions per operation of the hot paths, counted by callgrind: a noise-free complement to the criterion
# medians on a shared machine (where wall time moves by tens of percent between runs, these do not move).
#
# usage: benches/instruction_counts.sh
# Prints instructions per parsed line (three line shapes), per ingested event of the generated traffic, and the
# per-event and per-closed-User-second split of the engine (the detector tick), all in the engine's steady state.
# Needs valgrind. Takes a minute or two: the workloads' set-up runs under valgrind too, but only
# `icount::measured` is counted.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
BIN=$(cd "$REPO" && cargo bench --bench icount --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*icount-[^"]*"' | cut -d'"' -f4)
[[ -x $BIN ]] || { echo "could not build benches/icount.rs" >&2; exit 1; }

# count WORKLOAD RUNS -> "instructions ops_per_run"
count() {
    local out
    out=$(ICOUNT_WORKLOAD=$1 ICOUNT_RUNS=$2 valgrind --tool=callgrind --toggle-collect='*icount::measured*' \
        --callgrind-out-file=/dev/null "$BIN" 2>&1)
    grep -q 'ops_per_run' <<<"$out" || { echo "icount $1 failed: $out" >&2; exit 1; }
    printf '%s %s\n' "$(grep -o 'Collected : [0-9]*' <<<"$out" | grep -o '[0-9]*$')" \
        "$(grep -o 'ops_per_run [0-9]*' <<<"$out" | grep -o '[0-9]*$')"
}

for shape in parse_aggregated parse_rfc3339 parse_delivery_failed; do
    read -r ir _ < <(count "$shape" 20000)
    awk -v s="$shape" -v i="$ir" 'BEGIN {printf "%-24s %8.0f instructions/line\n", s, i / 20000}'
done
read -r ir ops < <(count ingest_traffic 2)
awk -v i="$ir" -v o="$ops" 'BEGIN {printf "%-24s %8.0f instructions/event (generated traffic, 100 Users, steady state)\n", "engine_ingest", i / 2 / o}'
# 600 s x 100 Users with 1 or 8 events per User-second: I(n) = 60 000 x tick + 60 000 n x per_event.
read -r ir1 ops1 < <(count tick_1 1)
read -r ir8 ops8 < <(count tick_8 1)
awk -v a="$ir1" -v b="$ir8" -v o1="$ops1" -v o8="$ops8" 'BEGIN {
    per_event = (b - a) / (o8 - o1); user_seconds = o1
    tick = (a - o1 * per_event) / user_seconds
    printf "%-24s %8.0f instructions/event (request events, excluding the tick)\n", "engine_per_event", per_event
    printf "%-24s %8.0f instructions/closed User-second (%.0f per closed second of 100 Users)\n", "detector_tick", tick, tick * 100 }'
