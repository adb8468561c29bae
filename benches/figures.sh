#!/usr/bin/env bash
# The figures of docs/benchmarks.md's table, measured side by side in one run: replay of the 24 h 5x file against
# `wc -l` and polars (rounds alternate, medians of RUNS), replay's peak RSS, instructions per line (callgrind,
# first 400 k lines), then TCP ingest (benches/tcp_ingest.py) and Kafka against a bare consumer
# (benches/kafka_scale.sh, when the tansu broker is installed). Prints the machine's load before and after: wall
# times on a shared machine only mean something next to it.
#
# usage: benches/figures.sh            env: RUNS=5, SKIP=tcp,kafka,polars,callgrind (any of them), WORKDIR
set -euo pipefail
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS=${RUNS:-5}
SKIP=${SKIP:-}
skipped() { [[ ,$SKIP, == *,$1,* ]]; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
seconds() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || die "failed: $*"
    end=$(date +%s%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", (b - a) / 1e9}'
}

build_release
ensure_gnu_time
FILE=$(make_traffic 24h)
CHANGES=$(dirname "$FILE")/changes.json
[[ -f $CHANGES ]] || CHANGES=
read -r LINES BYTES < <(count_lines_bytes "$FILE")
log "file: $FILE ($LINES lines, $BYTES bytes); $(load_note)"
LOAD_BEFORE=$(load_note)
cat "$FILE" >/dev/null

replay() { "$BIN" replay -q "$FILE" ${CHANGES:+--changes "$CHANGES"} --report "$WORKDIR/figures-report.json"; }

POLARS=
if ! skipped polars; then
    VENV=$WORKDIR/polars-venv
    if [[ ! -x $VENV/bin/python ]]; then
        log "installing polars in $VENV ..."
        python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check polars ||
            die "pip install polars failed (SKIP=polars to go without)"
    fi
    cat >"$WORKDIR/polars_once.py" <<'PY'
import sys
import polars as pl
# As compare_polars.sh: `ts` read as text, since the contract allows RFC 3339 strings beside integers.
text = pl.col("ts")
ts = (
    pl.when(text.str.contains("T"))
    .then(
        text.str.replace("Z$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ms", time_zone="UTC")
        .dt.epoch("ms")
    )
    .otherwise(text.cast(pl.Int64))
)
(pl.scan_ndjson(sys.argv[1], schema_overrides={"ts": pl.String})
    .group_by(["user", (ts // 1000).alias("second"), "event"])
    .agg(pl.col("count").fill_null(1).sum()).collect())
PY
    POLARS=$VENV/bin/python
fi

declare -a T_REPLAY T_WC T_POLARS
for round in $(seq "$RUNS"); do
    log "round $round of $RUNS ..."
    T_REPLAY+=("$(seconds replay)")
    T_WC+=("$(seconds wc -l "$FILE")")
    [[ -n $POLARS ]] && T_POLARS+=("$(seconds "$POLARS" "$WORKDIR/polars_once.py" "$FILE")")
done
R=$(printf '%s\n' "${T_REPLAY[@]}" | median)
W=$(printf '%s\n' "${T_WC[@]}" | median)
RSS=$(/usr/bin/time -f %M "$BIN" replay -q "$FILE" ${CHANGES:+--changes "$CHANGES"} --report "$WORKDIR/figures-report.json" 2>&1 >/dev/null | tail -n 1)
rate() { awk -v l="$LINES" -v s="$1" 'BEGIN {printf "%.1f M", l / s / 1e6}'; }

echo "| figure | stormwatch | reference | ratio |"
echo "| --- | --- | --- | --- |"
echo "| replay, 24 h 5x file ($LINES lines), median of $RUNS | $R s, $(rate "$R") lines/s | \`wc -l\` $W s, $(rate "$W") lines/s | $(awk -v a="$R" -v b="$W" 'BEGIN {printf "%.1fx wc", a / b}') |"
if [[ -n $POLARS ]]; then
    P=$(printf '%s\n' "${T_POLARS[@]}" | median)
    echo "| replay against polars (whole process, \`import polars\` included) | $(rate "$R") lines/s | polars $P s, $(rate "$P") lines/s | $(awk -v a="$R" -v b="$P" 'BEGIN {printf "%.1fx faster", b / a}') |"
fi
echo "| replay peak RSS | $((RSS / 1024)) MiB | | |"
if ! skipped callgrind && command -v valgrind >/dev/null; then
    head -n 400000 "$FILE" >"$WORKDIR/first400k.ndjson"
    IR=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" replay -q "$WORKDIR/first400k.ndjson" \
        --report "$WORKDIR/figures-report.json" 2>&1 | awk '/Collected/ {print $NF}')
    echo "| instructions per line (callgrind, first 400 k lines, start-up included) | $((IR / 400000)) | | |"
fi
if ! skipped tcp; then
    log "TCP ingest ..."
    python3 "$REPO/benches/tcp_ingest.py" --binary "$BIN" 2>/dev/null | sed 's/^/    tcp: /'
fi
if ! skipped kafka && [[ -x ${TANSU:-$HOME/.cargo/bin/tansu} ]]; then
    log "Kafka ..."
    "$REPO/benches/kafka_scale.sh" 2>/dev/null | sed 's/^/    kafka: /'
fi
echo "load before: $LOAD_BEFORE; after: $(load_note)"
