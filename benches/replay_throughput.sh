#!/usr/bin/env bash
# Whole-program replay throughput: median lines/s, MB/s and peak RSS of `stormwatch replay` over a large
# per-second aggregated NDJSON file, and a memory-flatness check (the file's first 1/24 vs the whole file).
#
# usage: benches/replay_throughput.sh [FILE]
#   FILE      telemetry to replay; default: 24 h of generated traffic (`stormwatch gen --scale 5 --duration 24h
#             --seed 1` if the binary has it, else benches/gen_traffic.rs: 100 Users, ~36 M lines, ~3.4 GB)
# env: RUNS=3 (timed replays per file), DURATION=24h, SEED=1, USERS=100 (fallback generator only),
#      WORKDIR=/tmp/stormwatch-bench (generated files are cached there), SKIP_FLATNESS=1 to skip the 1/24 check.
# MB is 10^6 bytes of uncompressed input; wall time is the whole process (start, replay, report write).
set -euo pipefail
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION=${DURATION:-24h}
build_release
ensure_gnu_time
mkdir -p "$WORKDIR"

FILE=${1:-$(make_traffic "$DURATION")}
[[ -r $FILE ]] || die "cannot read $FILE"
read -r LINES BYTES < <(count_lines_bytes "$FILE")
log "file: $FILE ($LINES lines, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1e6}') MB uncompressed)"
# Warm the page cache so that the first timed run is not the only one reading from disk.
cat "$FILE" >/dev/null

report() {
    local tag=$1 lines=$2 bytes=$3 wall cpu rss
    wall=$(median "${WALLS[@]}")
    cpu=$(median "${CPUS[@]}")
    rss=$(median "${RSSES[@]}")
    awk -v tag="$tag" -v w="$wall" -v c="$cpu" -v l="$lines" -v b="$bytes" -v r="$rss" -v n="$RUNS" 'BEGIN {
        printf "%-6s median of %d: wall %.2f s  %.3f M lines/s  %.1f MB/s  CPU %.2f s (%.0f ns/line)  peak RSS %.1f MiB\n",
            tag, n, w, l / w / 1e6, b / w / 1e6, c, c / l * 1e9, r / 1024 }'
}

LOAD_BEFORE=$(load_note)
log "replaying the whole file $RUNS times ($LOAD_BEFORE) ..."
replay_runs "$FILE" full
[[ $REPORT_EVENTS -gt 0 ]] || die "the replay found no events in $FILE"
FULL_RSS=$(median "${RSSES[@]}")
echo "stormwatch replay $FILE --report ... --quiet   ($LINES lines, $BYTES bytes; report: $REPORT_EVENTS events, $REPORT_MALFORMED malformed)"
echo "$LOAD_BEFORE before the runs"
report full "$LINES" "$BYTES"

if [[ ${SKIP_FLATNESS:-0} != 1 ]]; then
    # The same traffic, 24 times shorter (for a 24 h file: its first hour). Memory should not depend on length.
    SHORT=$WORKDIR/$(basename "$FILE" | sed 's/\.\(gz\|zst\)$//; s/\.ndjson$//')-first-24th.ndjson
    decompressed "$FILE" | head -n $((LINES / 24)) >"$SHORT" || true
    read -r SHORT_LINES SHORT_BYTES < <(count_lines_bytes "$SHORT")
    log "replaying the first 1/24 ($SHORT_LINES lines) $RUNS times ..."
    replay_runs "$SHORT" short
    SHORT_RSS=$(median "${RSSES[@]}")
    report short "$SHORT_LINES" "$SHORT_BYTES"
    awk -v s="$SHORT_RSS" -v f="$FULL_RSS" 'BEGIN {
        printf "memory flatness: peak RSS first 1/24 %.1f MiB vs whole file %.1f MiB (x%.2f for 24x the input)\n",
            s / 1024, f / 1024, f / s }'
    rm -f "$SHORT"
fi
