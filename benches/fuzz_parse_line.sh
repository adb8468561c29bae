#!/usr/bin/env bash
# A long run of the line parser's fuzz target (crates/core/tests/fuzz_parse_line.rs: byte mutations and splices
# of the seed corpus in crates/core/tests/corpus/parse_line/, and arbitrary bytes), in release, with the number of
# cases per property given (default 40,000,000: about 4 minutes on one core of the 2-core dev machine). Prints
# the wall time, the cases run and the corpus size. A failure is shrunk by proptest and printed; add the line it
# shows to the corpus as a new file.
# Usage: benches/fuzz_parse_line.sh [CASES]
set -euo pipefail
source "$(dirname "$0")/common.sh"
CASES=${1:-40000000}
CORPUS=$REPO/crates/core/tests/corpus/parse_line
cd "$REPO"
cargo test --release --quiet -p stormwatch-core --test fuzz_parse_line --no-run
load_note
start=$(date +%s)
PROPTEST_CASES=$CASES cargo test --release --quiet -p stormwatch-core --test fuzz_parse_line
end=$(date +%s)
printf 'fuzz_parse_line: %s cases for each of 2 properties in %s s; corpus %s files, %s bytes\n' \
    "$CASES" "$((end - start))" "$(find "$CORPUS" -type f | wc -l)" "$(cat "$CORPUS"/* | wc -c)"
