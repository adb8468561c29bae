# Shared helpers of the whole-program benchmark scripts (sourced, not run): building the release binary, making
# or reusing the synthetic traffic file, timing a run with its peak RSS, and medians.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET_DIR/release/stormwatch
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/stormwatch-bench}
SEED=${SEED:-1}
RUNS=${RUNS:-3}

log() { printf '%s\n' "$*" >&2; }
# The machine may be shared: say how busy it was, so that wall-clock figures can be judged.
load_note() { printf 'load average %s, %s cores\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"; }
die() { log "error: $*"; exit 1; }

build_release() {
    log "building release binary ..."
    (cd "$REPO" && cargo build --release --quiet --bin stormwatch) || die "cargo build --release failed"
}

# Peak RSS comes from GNU time; without it (and without apt) we fall back to polling VmHWM in /proc.
ensure_gnu_time() {
    if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then
        return 0
    fi
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing GNU time ..."
        apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq time >/dev/null 2>&1; } || true
    fi
    [[ -x /usr/bin/time ]] || log "note: GNU time unavailable; peak RSS is sampled from /proc every 50 ms"
}

# make_traffic DURATION -> prints the path of a telemetry file of that much traffic (cached in $WORKDIR).
# Prefers `stormwatch gen` (being written elsewhere); falls back to the benches' own generator, which writes the
# same per-second aggregated line shapes (integer ts, 100 Users, ~4.1 lines per User-second).
make_traffic() {
    local duration=$1 dir="$WORKDIR/traffic-$1-seed$SEED-users${USERS:-100}" file
    mkdir -p "$WORKDIR"
    if [[ -f $dir/.done ]]; then
        cat "$dir/.done"
        return 0
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    log "generating $duration of traffic in $dir ..."
    if "$BIN" gen --scale 5 --duration "$duration" --seed "$SEED" --out "$dir" >"$dir/gen.log" 2>&1; then
        # The telemetry file: events.ndjson[.gz|.zst] if there is one, else the largest NDJSON file that is not
        # change notices, truth or quarantine.
        file=$(find "$dir" -maxdepth 2 -type f -name 'events.ndjson*' | sort | head -n 1)
        if [[ -z $file ]]; then
            file=$(find "$dir" -maxdepth 2 -type f -name '*.ndjson*' \
                ! -name '*change*' ! -name '*truth*' ! -name '*quarantine*' -printf '%s %p\n' |
                sort -rn | head -n 1 | cut -d' ' -f2-)
        fi
        [[ -n $file ]] || die "stormwatch gen wrote no telemetry file in $dir"
        log "  (stormwatch gen)"
    else
        log "  stormwatch gen is not available ($(head -c 200 "$dir/gen.log" | tr '\n' ' ')); using benches/gen_traffic.rs"
        file=$dir/events.ndjson
        (cd "$REPO" && cargo bench --quiet --bench gen_traffic -- \
            --out "$file" --users "${USERS:-100}" --duration "$duration" --seed "$SEED") >"$dir/gen.log" 2>&1 ||
            die "traffic generator failed: $(cat "$dir/gen.log")"
    fi
    printf '%s\n' "$file" >"$dir/.done"
    printf '%s\n' "$file"
}

# decompressed FILE: writes the uncompressed bytes of FILE to stdout.
decompressed() {
    case $1 in
        *.gz) gzip -dc "$1" ;;
        *.zst) zstd -dcq "$1" ;;
        *) cat "$1" ;;
    esac
}

# count_lines_bytes FILE -> "lines bytes" of the uncompressed content (blank lines included: wc counts them).
count_lines_bytes() {
    decompressed "$1" | wc -lc | awk '{print $1, $2}'
}

# timed_run OUT_PREFIX CMD... : runs CMD, writes wall seconds to OUT_PREFIX.wall, user+system CPU seconds to
# OUT_PREFIX.cpu (less disturbed than wall time by other load on a shared machine) and peak RSS (KiB) to OUT_PREFIX.rss.
timed_run() {
    local prefix=$1 start end
    shift
    start=$(date +%s%N)
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -v -o "$prefix.time" "$@" >"$prefix.out" 2>"$prefix.err" || die "failed: $* ($(tail -n 3 "$prefix.err"))"
        end=$(date +%s%N)
        awk -F': ' '/Maximum resident set size/ {print $2}' "$prefix.time" >"$prefix.rss"
        awk -F': ' '/(User|System) time \(seconds\)/ {cpu += $2} END {printf "%.3f\n", cpu}' "$prefix.time" >"$prefix.cpu"
    else
        "$@" >"$prefix.out" 2>"$prefix.err" &
        local pid=$! peak=0 hwm
        while kill -0 "$pid" 2>/dev/null; do
            hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $hwm && $hwm -gt $peak ]] && peak=$hwm
            sleep 0.05
        done
        wait "$pid" || die "failed: $* ($(tail -n 3 "$prefix.err"))"
        end=$(date +%s%N)
        printf '%s\n' "$peak" >"$prefix.rss"
        echo nan >"$prefix.cpu"
    fi
    awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f\n", (e - s) / 1e9}' >"$prefix.wall"
}

# median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# replay_runs FILE TAG: RUNS timed replays of FILE; sets WALLS, CPUS and RSSES (arrays) and REPORT_EVENTS and
# REPORT_MALFORMED (from the last report), and logs one line per run.
# shellcheck disable=SC2034 # the callers read these
replay_runs() {
    local file=$1 tag=$2 i prefix
    WALLS=() CPUS=() RSSES=()
    for ((i = 1; i <= RUNS; i++)); do
        prefix=$WORKDIR/run-$tag-$i
        timed_run "$prefix" "$BIN" replay "$file" --report "$prefix.report.json" --quiet
        WALLS+=("$(cat "$prefix.wall")")
        CPUS+=("$(cat "$prefix.cpu")")
        RSSES+=("$(cat "$prefix.rss")")
        log "  $tag run $i: $(cat "$prefix.wall") s wall, $(cat "$prefix.cpu") s CPU, peak RSS $(awk '{printf "%.1f", $1 / 1024}' "$prefix.rss") MiB"
    done
    # Sanity: the replay saw every line as an event or a malformed line.
    REPORT_EVENTS=$(grep -o '"events": *[0-9]*' "$prefix.report.json" | grep -o '[0-9]*$')
    REPORT_MALFORMED=$(grep -o '"malformed": *[0-9]*' "$prefix.report.json" | grep -o '[0-9]*$')
}
