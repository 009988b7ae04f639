#!/usr/bin/env bash
# Instructions per request inside a filter chain, by function, the filters'
# own (Wasm) functions named: the chain runs in wasp's filter host alone
# (the `chain` example of wasp-filter-host, as bench/chain-host.sh runs it)
# under valgrind's callgrind, with the chain's modules built with their
# name section and wasmtime writing a perf map of the code it compiled;
# callgrind's addresses in that code are named through the map.
#
# The chain runs twice, with --requests and with 6 × --requests, and the
# difference is divided by the requests between the two: start-up
# (compiling the modules) cancels out. Prints the guest's and the host's
# totals and the top functions of each.
#
# Chains as in bench/chains.sh (the mesh chains get their token); the
# modules are built under target/named (the `wasm` profile, not stripped,
# not passed through wasm-opt, so a little slower than the shipped ones).
# Needs valgrind (installed when missing).
#
# Usage: bench/guest-profile.sh [--chains mesh-1,meshpart-1] [--requests N] [--top N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
chains="mesh-1" requests=2000 top=25
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "chains requests top" "$@"

need_valgrind
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
target="${CARGO_TARGET_DIR:-$root/target}"
named="$target/named"
packages=()
for manifest in filters/*/Cargo.toml tests/filters/bench-*/Cargo.toml; do
    packages+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -1)")
done
log "building the filters with their names"
CARGO_PROFILE_WASM_STRIP=none CARGO_TARGET_DIR="$named" \
    cargo build --quiet --profile wasm --target wasm32-wasip1 "${packages[@]}"
chain_example
modules="$named/wasm32-wasip1/wasm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/chains.sh
source bench/chains.sh

IFS=, read -ra names <<<"$chains"
for name in "${names[@]}"; do
    chain_modules "$name" >"$work/$name.tsv"
    chain_headers "$name"
    runs=()
    for n in "$requests" $((requests * 6)); do
        out="$work/$name-$n.callgrind"
        WASP_PERF_MAP=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$CHAIN_BIN" "$work/$name.tsv" "$n" ${CHAIN_HEADERS[@]+"${CHAIN_HEADERS[@]}"} >/dev/null 2>"$out.log" &
        pid=$!
        wait "$pid"
        # The perf map is named after the process: valgrind runs the
        # program in its own process.
        mv "/tmp/perf-$pid.map" "$out.map"
        runs+=("$out")
    done
    echo
    echo "## $name"
    python3 - "${runs[0]}" "${runs[1]}" "$((requests * 5))" "$top" <<'PY'
import bisect, collections, re, subprocess, sys

def profile(path):
    """Instructions by function; Wasm code named through the perf map."""
    symbols = []
    for line in open(path + ".map"):
        start, size, name = line.rstrip("\n").split(" ", 2)
        symbols.append((int(start, 16), int(size, 16), re.sub(r"17h[0-9a-f]{16}E$", "", name)))
    symbols.sort()
    starts = [s[0] for s in symbols]
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--tree=none", "--auto=no", path],
        capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m or "PROGRAM TOTALS" in m.group(2):
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(2)
        jit = re.match(r"\?\?\?:0x([0-9a-f]+)", name)
        if jit:
            at = int(jit.group(1), 16)
            i = bisect.bisect_right(starts, at) - 1
            known = i >= 0 and at < symbols[i][0] + symbols[i][1]
            counts[("guest", symbols[i][2] if known else "(unnamed Wasm code)")] += ir
        else:
            counts[("host", re.sub(r" \[.*\]$", "", name.split(":", 1)[-1]))] += ir
    return counts

short, long_, requests, top = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
a, b = profile(short), profile(long_)
per = {k: (b[k] - a.get(k, 0)) / requests for k in b}
for side in ("guest", "host"):
    rows = sorted(((v, k[1]) for k, v in per.items() if k[0] == side), reverse=True)
    print(f"\n{side}: {sum(v for v, _ in rows):,.0f} instructions per request; the top functions (self):")
    for v, name in rows[:top]:
        print(f"  {v:10,.0f}  {name[:140]}")
PY
done
echo
echo "Instructions per request: the difference of $requests and $((requests * 6)) requests through the filter host alone (callgrind $(valgrind --version | sed 's/valgrind-//'))."
