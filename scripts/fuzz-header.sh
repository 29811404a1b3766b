#!/usr/bin/env bash
# Fuzz the safetensors header parser for a bounded time (default 60 s),
# seeded with the hostile corpus. Not part of CI: run it by hand, like a
# benchmark, and keep any crash it finds under fuzz/artifacts/.
#   scripts/fuzz-header.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || { echo "installing cargo-fuzz"; cargo install cargo-fuzz; }
mkdir -p fuzz/corpus/header
find tests/hostile -type f -exec cp {} fuzz/corpus/header/ \;
# cargo fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
RUSTC_BOOTSTRAP=1 cargo fuzz run header fuzz/corpus/header -- -max_total_time="$seconds" -rss_limit_mb=512
