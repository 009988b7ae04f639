#!/usr/bin/env bash
# What a filter module costs to load in wasp: size, compile time (cold and
# cached), time to create a VM, and memory per VM — for the filter template
# and the benchmark filters, built by scripts/build-filters.sh.
#
# Usage: bench/instantiate.sh [VMS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
vms="${1:-100}"

scripts/build-filters.sh
cargo build --release --quiet -p wasp-filter-host --example instantiate
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/instantiate"
"$bin" target/filters/wasp_filter_template.wasm '{"header": "x-served-by", "value": "wasp"}' "$vms"
echo
"$bin" target/filters/bench_noop.wasm '' "$vms"
echo
"$bin" target/filters/sdk_features.wasm '' "$vms"
