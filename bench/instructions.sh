#!/usr/bin/env bash
# Instructions per request in wasp, per filter chain, counted by
# valgrind's callgrind over a fixed number of 1 KiB GETs after a warm-up:
# the figure does not move with the machine's load (as timings do) and
# needs no hardware counters (which VMs often lack), so a change to the
# request path shows here exactly, with the functions that cost most.
#
# Under valgrind the VM pool cannot reserve its address space, so wasp
# runs with VMs allocated one by one (bounds-checked memories): the Wasm
# guests' own figures are then a little higher than in a pooled run; the
# host's and the proxy's are the same.
#
# Needs valgrind (Debian `valgrind`, installed when missing). Chains as in
# bench/chains.sh; the mesh chain gets its token. The chain `resilience` is
# no filters with the traffic-management policies on
# (bench/configs/wasp-resilience.yaml), to compare with noop-0.
#
# With --cache-sim yes callgrind also simulates 32 KiB, 8-way first-level
# instruction and data caches (the size of most x86 cores' L1i and L1d)
# and the summary adds their misses per request: the request path's code
# is larger than an L1i, and its misses cost more time than the count of
# instructions shows.
#
# Usage: bench/instructions.sh [--chains noop-0,noop-1,mesh-1] [--requests N] [--top N] [--cache-sim yes]
# WASP_BIN=PATH uses that wasp binary instead of building one;
# PROFILES=DIR keeps each chain's callgrind profile in DIR/<chain>.callgrind.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
chains="noop-0,noop-1,mesh-1" requests=3000 top=12 cache_sim=no
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "chains requests top cache-sim" "$@"
cache_args=()
if [[ "$cache_sim" == yes ]]; then
    cache_args=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64)
fi

install_tools
need_valgrind
wasp_binary build
scripts/build-filters.sh >&2
modules="$root/target/filters"
make_work instructions
start_upstream
# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"

summary="$work/summary.md"
if [[ "$cache_sim" == yes ]]; then
    echo "| chain | instructions / request | of which memcpy/memmove | of which malloc/free | L1i misses / request | L1d misses / request |" > "$summary"
    echo "|---|---:|---:|---:|---:|---:|" >> "$summary"
else
    echo "| chain | instructions / request | of which memcpy/memmove | of which malloc/free |" > "$summary"
    echo "|---|---:|---:|---:|" >> "$summary"
fi
IFS=, read -r -a chain_list <<< "$chains"
for chain in "${chain_list[@]}"; do
    if [[ "$chain" == resilience ]]; then
        OHA_EXTRA=() CURL_EXTRA=()
        proxy_port=$(free_port) admin_port=$(free_port)
        render bench/configs/wasp-resilience.yaml "$work/$chain.yaml"
    else
        wasp_chain_config "$chain"
    fi
    out="$work/$chain.callgrind"
    # Counting starts after the warm-up, when instrumentation is switched
    # on (`callgrind_control -i on`).
    start_pinned "$PROXY_CPU" "$chain" valgrind --tool=callgrind --instr-atstart=no ${cache_args[@]+"${cache_args[@]}"} \
        --callgrind-out-file="$out" "$WASP_BIN" run --config "$work/$chain.yaml" --workers 1
    pid=$LAST_PID
    url="http://127.0.0.1:$proxy_port/1k"
    # Slow under valgrind: the chain's modules compile first.
    wait_ready "$url" "$pid" 600 || { log "$chain: wasp did not start"; tail -n 20 "$work/$chain.log" >&2; exit 1; }
    oha_run -n 1000 -c 10 "$url" > /dev/null
    callgrind_control -i on "$pid" > /dev/null 2>&1
    oha_run -n "$requests" -c 10 "$url" > "$work/$chain.oha.json"
    callgrind_control -i off "$pid" > /dev/null 2>&1
    callgrind_control -d "$pid" > /dev/null 2>&1
    stop_pid "$pid"
    if [[ -n "${PROFILES:-}" ]]; then mkdir -p "$PROFILES"; cp "$out"* "$PROFILES/" 2>/dev/null || true; fi
    # The counted requests are in the one dump, `$out.1` (`$out` is what
    # came after, with instrumentation off: nothing).
    callgrind_annotate --inclusive=no --threshold=100 --show=Ir "$out.1" 2>/dev/null > "$work/$chain.annotate"
    misses=""
    if [[ "$cache_sim" == yes ]]; then
        misses=$(callgrind_annotate --show=I1mr,D1mr,D1mw "$out.1" 2>/dev/null | grep "PROGRAM TOTALS" || true)
    fi
    python3 - "$chain" "$requests" "$work/$chain.annotate" "$work/$chain.oha.json" "$top" "$summary" "$misses" <<'PY'
import json, re, sys
chain, requests, path, oha, top, summary, misses = sys.argv[1:]
requests, top = int(requests), int(top)
codes = json.load(open(oha)).get("statusCodeDistribution", {})
if codes.get("200", 0) != requests:
    sys.exit(f"{chain}: not every request answered 200: {codes}")
total, rows = None, []
for line in open(path):
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
    if not m:
        m = re.match(r"\s*([\d,]+)\s+\(100.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
        continue
    ir, name = int(m.group(1).replace(",", "")), m.group(2)
    if "PROGRAM TOTALS" in name:
        total = ir
    else:
        rows.append((ir, name))
if total is None:
    total = sum(ir for ir, _ in rows)
def share(pattern):
    return sum(ir for ir, name in rows if re.search(pattern, name)) / requests
memcpy = share(r"mem(cpy|move)")
# glibc's malloc, or jemalloc (the `jemalloc` feature: its sources' path).
malloc = share(r"/malloc/|\b(malloc|free|cfree|realloc|calloc)\b|jemalloc|_rjem_")
cache = ""
if misses:
    i1, d1r, d1w = (int(x.replace(",", "")) for x in re.findall(r"([\d,]+) \(", misses)[:3])
    cache = f" {i1 / requests:,.0f} | {(d1r + d1w) / requests:,.0f} |"
with open(summary, "a") as out:
    out.write(f"| {chain} | {total / requests:,.0f} | {memcpy:,.0f} | {malloc:,.0f} |{cache}\n")
print(f"\n{chain}: {total / requests:,.0f} instructions per request; the top functions (self):")
for ir, name in rows[:top]:
    print(f"  {ir / requests:10,.0f}  {name[:150]}")
PY
done
echo
cat "$summary"
echo
echo "wasp ${WASP_BIN_SOURCE}; $requests requests per chain on 10 kept-alive connections, after 1,000 not counted; callgrind (valgrind $(valgrind --version | sed 's/valgrind-//'))."
