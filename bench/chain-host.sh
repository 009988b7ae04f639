#!/usr/bin/env bash
# What a chain of Wasm filters costs per request in wasp's filter host
# alone, without sockets or HTTP (the `chain` example of wasp-filter-host):
# for each chain, the mean time to start a stream, pass request and
# response headers through it and end it, on one thread. Chains as in
# bench/chains.sh; the mesh chain gets its token. Steadier than the
# end-to-end benches, so small host changes can be compared.
#
# Usage: bench/chain-host.sh [--chains none,noop-1,noop-5,mesh-1] [--requests N] [--rounds N]
#   WASP_PERF_MAP=1 makes wasmtime write /tmp/perf-PID.map for perf report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib.sh
chains="none,noop-1,noop-5,mesh-1" requests=200000 rounds=3
parse_options "chains requests rounds" "$@"

scripts/build-filters.sh >&2
chain_example
modules="$root/target/filters"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source bench/chains.sh

echo "| chain | ns per request, each round | best |"
echo "|---|---|---:|"
IFS=, read -ra names <<<"$chains"
for name in "${names[@]}"; do
    if [[ $name == none ]]; then : >"$work/$name.tsv"; else chain_modules "$name" >"$work/$name.tsv"; fi
    chain_headers "$name"
    figures=()
    for ((r = 0; r < rounds; r++)); do
        figures+=("$(taskset -c "$PROXY_CPU" "$CHAIN_BIN" "$work/$name.tsv" "$requests" ${CHAIN_HEADERS[@]+"${CHAIN_HEADERS[@]}"} \
            | awk '/^per request/ { print $3 }')")
    done
    best=$(printf '%s\n' "${figures[@]}" | sort -n | head -1)
    echo "| $name | ${figures[*]} | $best |"
done
