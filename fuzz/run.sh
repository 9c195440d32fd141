#!/bin/sh
# Builds and runs one libFuzzer target against MLStoreCore (outside CI).
#   fuzz/run.sh TARGET [SECONDS]     TARGET: Tree Chunked Commit Object PackIndex Ref (or "all")
# How: SwiftPM builds the MLStoreCore target (and its dependencies, Yams included) with
# `-sanitize=fuzzer` into its own scratch directory (.build-fuzz, so normal builds are untouched); then
# swiftc links fuzz/Targets/<TARGET>Fuzz.swift (which defines LLVMFuzzerTestOneInput) with those objects.
# Corpus: fixtures/fuzz-corpus/<target>/ (seeds, read only) + .build-fuzz/corpus/<target>/ (grown).
# Crashes are written to .build-fuzz/crashes/<target>/; copy each into
# fixtures/fuzz-corpus/regressions/ (HostileParserTests.fuzzRegressions replays them).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
SECS=${2:-60}
if [ "$TARGET" = all ]; then
    for t in Tree Chunked Commit Object PackIndex Ref; do "$0" "$t" "$SECS"; done
    exit 0
fi
SCRATCH=${MLSTORE_FUZZ_BUILD:-$ROOT/.build-fuzz}
CONF=${MLSTORE_FUZZ_CONFIG:-debug}
swift build --package-path "$ROOT" --scratch-path "$SCRATCH" -c "$CONF" --target MLStoreCore \
    -Xswiftc -sanitize=fuzzer -Xswiftc -enable-testing >&2
BIN="$SCRATCH/$CONF"
OBJS=$(find "$BIN/MLStoreCore.build" "$BIN/MLStoreBasics.build" "$BIN/Yams.build" "$BIN/CYaml.build" -name '*.o')
YAMS="$SCRATCH/checkouts/Yams/Sources/CYaml/include"
EXE="$SCRATCH/fuzz-$TARGET"
swiftc -sanitize=fuzzer -parse-as-library -g -Onone -I "$BIN/Modules" \
    -Xcc -fmodule-map-file="$ROOT/Sources/CMLStoreZlib/module.modulemap" \
    -Xcc -fmodule-map-file="$ROOT/Sources/CMLStoreCrypto/module.modulemap" \
    -Xcc -fmodule-map-file="$ROOT/Sources/CMLStoreSys/module.modulemap" \
    -Xcc -fmodule-map-file="$ROOT/Sources/CMLStoreSQLite/module.modulemap" \
    -Xcc -fmodule-map-file="$YAMS/module.modulemap" -Xcc -I -Xcc "$YAMS" \
    "$ROOT/fuzz/Targets/${TARGET}Fuzz.swift" $OBJS -lz -lcrypto -lsqlite3 -o "$EXE"
lower=$(echo "$TARGET" | tr 'A-Z' 'a-z')
mkdir -p "$SCRATCH/corpus/$lower" "$SCRATCH/crashes/$lower"
SEEDS="$ROOT/fixtures/fuzz-corpus/$lower"
[ -d "$SEEDS" ] || SEEDS=""
SWIFT_BACKTRACE=enable=no exec "$EXE" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$SCRATCH/crashes/$lower/" "$SCRATCH/corpus/$lower" $SEEDS
