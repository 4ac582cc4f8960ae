#!/usr/bin/env bash
# Runs one fuzz target the way the README's figures were taken:
#   fuzz/run.sh TARGET [SECONDS] [more libFuzzer flags]
# Stable Rust (no sanitizer), overflow checks on, one worker at nice 10.
# New inputs go to fuzz/work/TARGET (not committed); the committed seeds in
# fuzz/corpus/TARGET are read. Crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
secs=${2:-900}
shift $(( $# < 2 ? $# : 2 ))
case $target in
    g729_frames) max_len=65536 ;;   # decoding costs ~µs a frame: 6,553 frames at most
    api_query) max_len=8192 ;;      # a request line; hyper refuses far longer ones
    *) max_len=1048576 ;;           # max_body_bytes
esac
mkdir -p "work/$target"
# push_pipeline's archive: tmpfs when there is one (every push is fsynced).
[ -d /dev/shm ] && export CALLVAULT_FUZZ_DIR=${CALLVAULT_FUZZ_DIR:-/dev/shm}
exec nice -n 10 cargo fuzz run --sanitizer none -a "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$secs" -runs=10000000 -jobs=1 -workers=1 \
    -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" -print_final_stats=1 "$@"
