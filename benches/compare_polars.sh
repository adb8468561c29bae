#!/usr/bin/env bash
# Stormwatch vs polars on the same NDJSON file: `stormwatch replay` (parse, validate, detect, report) against a
# polars lazy per-(User, second, event) count aggregation, both in lines/s, and their ratio.
#
# usage: benches/compare_polars.sh [FILE]
#   FILE   NDJSON telemetry (.gz/.zst are decompressed first; every line must be JSON, polars stops at a malformed
#          one); default: DURATION (24h) of 5x national traffic from `stormwatch gen` (15.2 M lines,
#          1.75 GB; see common.sh make_traffic), the issue's benchmark file.
# env: RUNS=3, DURATION=24h, SEED=1, WORKDIR=/tmp/stormwatch-bench, POLARS_SPEC=polars (pip requirement).
#
# What is compared: polars only groups and sums four columns; stormwatch parses every field, checks each line
# against the contract and runs the detectors. Polars is timed in-process with time.perf_counter (interpreter
# start and `import polars` excluded); stormwatch is timed as a whole process. Needs the network only for pip.
set -euo pipefail
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION=${DURATION:-24h}
build_release
mkdir -p "$WORKDIR"
FILE=${1:-$(make_traffic "$DURATION")}
[[ -r $FILE ]] || die "cannot read $FILE"
# Polars scans plain NDJSON only: both tools get the same decompressed copy.
case $FILE in
    *.gz | *.zst)
        PLAIN=$WORKDIR/$(basename "${FILE%.*}")
        log "decompressing $FILE to $PLAIN (both tools read the plain copy) ..."
        decompressed "$FILE" >"$PLAIN"
        FILE=$PLAIN
        ;;
esac
# The contract allows `ts` as an integer or an RFC 3339 string. On such a file polars infers `ts` as a string (or
# fails to parse a string that comes after its inference window), and `ts // 1000` is an error; so for a mixed file
# polars reads `ts` as text and converts it (integers cast, RFC 3339 parsed, any offset): the same file for both.
TS_MODE=int
if grep -q -m 1 -E '"ts"[[:space:]]*:[[:space:]]*"' "$FILE"; then
    TS_MODE=mixed
    log "note: $FILE has RFC 3339 (string) ts values: polars reads ts as text and converts it"
fi
read -r LINES BYTES < <(count_lines_bytes "$FILE")
log "file: $FILE ($LINES lines, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1e6}') MB)"
cat "$FILE" >/dev/null

VENV=$(mktemp -d "${TMPDIR:-/tmp}/stormwatch-polars-venv.XXXXXX")
trap 'rm -rf "$VENV"' EXIT
log "creating a throwaway venv in $VENV and installing ${POLARS_SPEC:-polars} ..."
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${POLARS_SPEC:-polars}" || die "pip install polars failed"

cat >"$VENV/bench.py" <<'PY'
import resource, statistics, sys, time
import polars as pl

path, runs, ts_mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]

if ts_mode == "int":
    # The query as specified: every ts is integer milliseconds.
    scan, ts = pl.scan_ndjson(path), pl.col("ts")
else:
    text = pl.col("ts")
    scan = pl.scan_ndjson(path, schema_overrides={"ts": pl.String})
    ts = (
        pl.when(text.str.contains("T"))
        .then(
            text.str.replace("Z$", "+00:00")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ms", time_zone="UTC")
            .dt.epoch("ms")
        )
        .otherwise(text.cast(pl.Int64))
    )

def query():
    return (
        scan.group_by(["user", (ts // 1000).alias("second"), "event"])
        .agg(pl.col("count").fill_null(1).sum())
        .collect()
    )

times, cpus = [], []
for run in range(runs):
    start, cpu = time.perf_counter(), time.process_time()
    frame = query()
    times.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
    print(f"  polars run {run + 1}: {times[-1]:.3f} s wall, {cpus[-1]:.3f} s CPU, {frame.height} groups", file=sys.stderr)
median = statistics.median
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{median(times):.3f} {median(cpus):.3f} {peak_mib:.1f} {pl.__version__} {frame.height} {int(frame['count'].sum())}")
PY

# The runs alternate, polars then stormwatch, each after re-reading the file into the page cache: both tools get
# a warm cache and the same machine conditions (polars' multi-GiB peak on a large file can push the file out of
# the cache, which would otherwise penalise whichever tool runs after it).
ensure_gnu_time
POLARS_WALLS=() POLARS_CPUS=() WALLS=() CPUS=() RSSES=() RATIOS=()
for ((run = 1; run <= RUNS; run++)); do
    cat "$FILE" >/dev/null
    read -r wall cpu POLARS_RSS POLARS_VERSION POLARS_GROUPS POLARS_COUNT < <("$VENV/bin/python" "$VENV/bench.py" "$FILE" 1 "$TS_MODE")
    POLARS_WALLS+=("$wall") POLARS_CPUS+=("$cpu")
    cat "$FILE" >/dev/null
    prefix=$WORKDIR/run-polars-cmp-$run
    timed_run "$prefix" "$BIN" replay "$FILE" --report "$prefix.report.json" --quiet
    WALLS+=("$(cat "$prefix.wall")") CPUS+=("$(cat "$prefix.cpu")") RSSES+=("$(cat "$prefix.rss")")
    RATIOS+=("$(awk -v p="$wall" -v s="${WALLS[-1]}" 'BEGIN {printf "%.2f", p / s}')")
    log "  run $run: polars $wall s, stormwatch ${WALLS[-1]} s wall (${CPUS[-1]} s CPU), ratio ${RATIOS[-1]}"
done
REPORT_EVENTS=$(grep -o '"events": *[0-9]*' "$prefix.report.json" | grep -o '[0-9]*$')
REPORT_MALFORMED=$(grep -o '"malformed": *[0-9]*' "$prefix.report.json" | grep -o '[0-9]*$')
POLARS_WALL=$(median "${POLARS_WALLS[@]}")
POLARS_CPU=$(median "${POLARS_CPUS[@]}")
SW_WALL=$(median "${WALLS[@]}")
SW_CPU=$(median "${CPUS[@]}")
SW_RSS=$(median "${RSSES[@]}")

echo "file: $FILE ($LINES lines, $BYTES bytes); $(load_note) at the end"
echo "polars $POLARS_VERSION (ts: $TS_MODE): $POLARS_GROUPS (user, second, event) groups, $POLARS_COUNT messages, peak RSS $POLARS_RSS MiB (python process, all runs)"
echo "stormwatch: $REPORT_EVENTS events, $REPORT_MALFORMED malformed, median peak RSS $(awk -v r="$SW_RSS" 'BEGIN {printf "%.1f", r / 1024}') MiB"
awk -v l="$LINES" -v p="$POLARS_WALL" -v pc="$POLARS_CPU" -v s="$SW_WALL" -v sc="$SW_CPU" -v n="$RUNS" 'BEGIN {
    printf "polars     median of %d: wall %.3f s  %.3f M lines/s  CPU %.3f s (%.0f ns/line)\n", n, p, l / p / 1e6, pc, pc / l * 1e9
    printf "stormwatch median of %d: wall %.3f s  %.3f M lines/s  CPU %.3f s (%.0f ns/line)\n", n, s, l / s / 1e6, sc, sc / l * 1e9
    printf "ratio stormwatch/polars: %.2f (lines/s, wall)  %.2f (CPU per line, polars/stormwatch)\n", p / s, pc / sc }'
echo "ratio of each run (polars wall / stormwatch wall): ${RATIOS[*]} (median $(median "${RATIOS[@]}"))"
