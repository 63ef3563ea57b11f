#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s) and prints libFuzzer's totals.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the one stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
# The server targets' stores sync every write: on a tmpfs that costs no disk time.
[ -d /dev/shm ] && export TMPDIR=/dev/shm
for target in frame_decoder session tls_stream; do
    echo "=== $target for ${seconds}s"
    # The server targets keep one server in a static for the whole run, on purpose;
    # LeakSanitizer would report it when the process exits.
    leaks=1
    [ "$target" != frame_decoder ] && leaks=0
    cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -detect_leaks="$leaks" 2>&1 |
        grep -E "^(#[0-9]+ +DONE|Done|INFO: .*exec|==[0-9]+==ERROR|SUMMARY)" || true
done
