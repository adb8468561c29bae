#!/usr/bin/env bash
# Kafka scale-out benchmark (not a test, not run by CI): consumption throughput of a bare librdkafka consumer
# (`crates/kafka/examples/bare_consume.rs`, the yardstick), of one `serve` instance, then of two in one consumer
# group, all on the same topic of generated telemetry; then one instance's rate as a share of the bare one's.
# Needs the tansu broker (`cargo install --locked tansu --features dynostore`); starts its own in memory on a
# loopback port and stops it at the end. Builds the release binary with `--features kafka`.
#
#   benches/kafka_scale.sh            # USERS=100 DURATION=3h PARTITIONS=8 by default
#   STORMWATCH_BIN=/tmp/before benches/kafka_scale.sh    # another build of `stormwatch`, e.g. to compare
#
# Each run starts from a fresh consumer group and ends when every partition is owned, nothing is left to read,
# every line was applied and every instance's watermark has passed the last event; the time includes the group
# join and any rebuild after it. Two times are printed: until every line was applied (consumption, what the bare
# consumer's time compares with: it too stops at the end of every partition), and until the watermark passed the
# last event. The second adds a fixed tail that does not depend on the topic's size: partitions at their end
# hold the others back for 2 s (event-time alignment, docs/kafka.md), then the engine closes the last seconds
# by the wall clock once nothing arrived for the lateness (5 s).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
USERS=${USERS:-100}
DURATION=${DURATION:-3h}
PARTITIONS=${PARTITIONS:-8}
TIMEOUT=${TIMEOUT:-1800}
WORKDIR=${WORKDIR:-/tmp/stormwatch-kafka-bench}
TANSU=${TANSU:-$HOME/.cargo/bin/tansu}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${STORMWATCH_BIN:-$TARGET/release/stormwatch}
BARE=$TARGET/release/examples/bare_consume

log() { printf '%s\n' "$*" >&2; }
if [[ -z ${STORMWATCH_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --quiet --features kafka --bin stormwatch)
fi
(cd "$REPO" && cargo build --release --quiet -p stormwatch-kafka --example bare_consume)
mkdir -p "$WORKDIR"
data=$WORKDIR/gen-$USERS-$DURATION
if [[ ! -f $data/events.ndjson ]]; then
    log "generating $USERS Users, $DURATION ..."
    "$BIN" gen --seed 1 --users "$USERS" --duration "$DURATION" --out "$data" -q
fi
lines=$(wc -l <"$data/events.ndjson")
last_ts=$(tail -c 4096 "$data/events.ndjson" | grep -o '"ts":[0-9]*' | cut -d: -f2 | sort -n | tail -1)

while :; do
    port=$(shuf -i 20000-60000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
"$TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" >"$WORKDIR/tansu.log" 2>&1 &
tansu=$!
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    kill "$tansu" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
broker=127.0.0.1:$port
log "producing $lines lines to $PARTITIONS partitions ..."
"$BIN" kafka-produce "$data/events.ndjson" --brokers "$broker" --topic bench --partitions "$PARTITIONS"

# metric NAME PORT -> sum of the samples of NAME on that instance
metric() {
    { curl -s "http://127.0.0.1:$2/metrics" || true; } | awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $NF } END { print s + 0 }'
}

run() {
    local count=$1 group="bench-$1-$RANDOM" http=() start end consumed=
    pids=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$count"); do
        local dir=$WORKDIR/instance-$count-$i p=$((port + 10 * i + count))
        rm -rf "$dir"
        "$BIN" serve --data-dir "$dir" --http "127.0.0.1:$p" --ingest 127.0.0.1:0 --kafka-brokers "$broker" \
            --kafka-topic bench --kafka-group "$group" --log-format json 2>"$dir.log" &
        pids+=($!)
        http+=("$p")
    done
    while :; do
        local assigned=0 lag=0 closed=1 applied=0 rebalances=0
        for p in "${http[@]}"; do
            rebalances=$(awk -v a="$rebalances" -v b="$(metric stormwatch_kafka_rebalances_total "$p")" 'BEGIN{print a+b}')
            applied=$(awk -v a="$applied" -v b="$(metric 'stormwatch_ingest_lines_total' "$p")" 'BEGIN{print a+b}')
            assigned=$(awk -v a="$assigned" -v b="$(metric stormwatch_kafka_assigned_partitions "$p")" 'BEGIN{print a+b}')
            lag=$(awk -v a="$lag" -v b="$(metric stormwatch_kafka_lag_records "$p")" 'BEGIN{print a+b}')
            w=$(metric stormwatch_watermark_timestamp_seconds "$p")
            awk -v w="$w" -v t="$last_ts" 'BEGIN{exit !(w * 1000 > t)}' || closed=0
        done
        # One instance assigned once applies each line once, so all applied is all consumed; the lag (from
        # librdkafka's statistics, once a second) would add up to two seconds of staleness the bare consumer
        # does not pay. With rebuilds (more instances), lines are applied again: the lag says when all are read.
        if [[ -z $consumed && $assigned == "$PARTITIONS" ]] && { [[ $lag == 0 ]] || [[ $count == 1 && $rebalances == 1 ]]; } \
            && awk -v a="$applied" -v l="$lines" 'BEGIN{exit !(a >= l)}'; then consumed=$(date +%s.%N); fi
        if [[ -n $consumed && $closed == 1 ]]; then break; fi
        if awk -v s="$start" -v now="$(date +%s.%N)" -v t="$TIMEOUT" 'BEGIN{exit !(now - s > t)}'; then
            log "gave up after $TIMEOUT s: $assigned partitions assigned, lag $lag records, $applied of $lines lines applied (logs: $WORKDIR/instance-$count-*.log)"
            exit 1
        fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    applied=0
    for p in "${http[@]}"; do
        applied=$(awk -v a="$applied" -v b="$(metric stormwatch_ingest_lines_total "$p")" 'BEGIN{print a+b}')
    done
    # CPU seconds the instances used (utime + stime): on a shared machine, lines per CPU second is the figure
    # that does not depend on what else ran.
    local cpu=0 late=0
    for p in "${http[@]}"; do
        late=$(awk -v a="$late" -v b="$(metric stormwatch_ingest_late_total "$p")" 'BEGIN{print a+b}')
    done
    for pid in "${pids[@]}"; do
        cpu=$(awk -v a="$cpu" -v t="$(getconf CLK_TCK)" '{print a + ($14 + $15) / t}' "/proc/$pid/stat")
    done
    for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    pids=()
    awk -v n="$count" -v s="$start" -v e="$end" -v d="$consumed" -v l="$lines" \
        'BEGIN { printf "%.0f %.0f\n", l / (d - s) / n, l / (e - s) / n }' >"$WORKDIR/per-instance-$count"
    awk -v n="$count" -v s="$start" -v d="$consumed" -v l="$lines" 'BEGIN {
        w = d - s; printf "%d instance(s): every line applied after %.1f s: %.0f lines/s in all, %.0f per instance\n", n, w, l / w, l / w / n }'
    awk -v n="$count" -v s="$start" -v e="$end" -v l="$lines" -v a="$applied" -v c="$cpu" -v late="$late" 'BEGIN {
        w = e - s; printf "%d instance(s): %.1f s for %d lines (%d applied, %d late, rebuilds included): %.0f lines/s in all, %.0f per instance; %.1f CPU s, %.0f lines per CPU s\n", n, w, l, a, late, l / w, l / w / n, c, l / c }'
}

printf '%s; %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc) cores"
bare=$("$BARE" "$broker" bench "$PARTITIONS")
printf '%s\n' "$bare"
run 1
read -r consumed closed <"$WORKDIR/per-instance-1"
awk -v b="$(printf '%s' "$bare" | awk '{print $(NF-1)}')" -v c="$consumed" -v w="$closed" 'BEGIN {
    printf "one instance at %.2f of the bare consumer until every line applied (%.0f vs %.0f lines/s), %.2f until the watermark passed the last event (%.0f)\n", c / b, c, b, w / b, w }'
run 2

