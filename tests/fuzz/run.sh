#!/bin/sh
# Runs one libFuzzer target: tests/fuzz/run.sh BINARY SECONDS WORKDIR [libFuzzer flags...]
#
# New inputs go to WORKDIR/corpus/<target> (kept between runs), the hand-written
# seeds of tests/fuzz/corpus/<target> are read too, and a crash, leak or timeout is
# written to WORKDIR/artifacts/<target>-crash-<sha1> (replay it: BINARY that-file).
# Used by make fuzz, and by the ctest entries labelled fuzz.
set -eu
bin=$1 secs=$2 work=$3
shift 3
name=$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
case $name in
fuzz_request_framer | fuzz_reply_framer) dict=$here/resp.dict ;;
*) dict=$here/${name#fuzz_}.dict ;;
esac
mkdir -p "$work/corpus/$name" "$work/artifacts"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$name-" "$@"
[ -f "$dict" ] && set -- -dict="$dict" "$@"
echo "fuzzing $name for ${secs}s; new inputs in $work/corpus/$name, crashes in $work/artifacts"
exec "$bin" "$@" "$work/corpus/$name" "$here/corpus/$name"
