#!/usr/bin/env bash
# Resident memory of wasp per filter chain: the proxy with one worker pinned
# to CPU 0 is started with a chain (bench/chains.sh: noop-N, rewrite-N,
# mesh-1), answers --requests 1 KiB GETs (50 connections), and then its
# VmRSS, anonymous and file-backed resident memory (/proc/PID/status) and
# the Wasm VMs' linear memory (/filters) are read.
#
# Each chain runs twice per round: "cold", compiling its modules at start,
# and "warm", loading them from a --compiled-cache-dir that an earlier start
# filled (what a restart, or a proxy fed by the control plane, does).
# Figures are the median (min–max) over --rounds rounds.
#
# Usage: bench/memory.sh [--chains noop-0,noop-5,mesh-1] [--requests N] [--rounds N] [--out FILE]
# WASP_BIN=PATH uses that wasp binary instead of building one;
# BASE_WASP_BIN=PATH adds the same runs with that binary (rows `base`),
# rounds alternating, for a before/after comparison within one run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

chains="noop-0,noop-1,noop-5,mesh-1"
requests=2000
rounds=3
out=""
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "chains requests rounds out" "$@"

install_tools
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wasp_binary
if [[ ! -e "$root/target/filters/bench_noop.wasm" || ! -e "$root/target/filters/jwt_authn.wasm" ]]; then
    log "building the filters"
    scripts/build-filters.sh >&2
fi
modules="$root/target/filters"

make_work membench
start_upstream

# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"
mesh_token_for "$chains"

binaries=(wasp)
declare -A bin_of=([wasp]="$WASP_BIN")
if [[ -n "${BASE_WASP_BIN:-}" ]]; then
    binaries=(base wasp)
    bin_of[base]="$BASE_WASP_BIN"
fi

# status_kib PID FIELD: a field of /proc/PID/status in KiB.
status_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# measure NAME CHAIN MODE: one JSON line with the resident memory of a wasp
# started with CHAIN, cold (compiling) or warm (compiled cache filled).
measure() {
    local name="$1" chain="$2" mode="$3" bin="${bin_of[$1]}" cache=()
    proxy_port=$(free_port)
    admin_port=$(free_port)
    local config="$work/$name-$chain.yaml"
    render_chain wasp "$chain" "$config"
    if [[ "$mode" == warm ]]; then
        cache=(--compiled-cache-dir "$work/compiled-$name")
        if [[ ! -d "$work/compiled-$name/.filled-$chain" ]]; then
            start_pinned "$PROXY_CPU" "$name-$chain-fill" "$bin" run --config "$config" --workers 1 "${cache[@]}"
            wait_ready "http://127.0.0.1:$proxy_port/1k" "$LAST_PID" || { log "$name $chain did not start"; exit 1; }
            stop_pid "$LAST_PID"
            mkdir -p "$work/compiled-$name/.filled-$chain"
        fi
    fi
    local started
    started=$(date +%s%N)
    start_pinned "$PROXY_CPU" "$name-$chain-$mode" "$bin" run --config "$config" --workers 1 "${cache[@]}"
    local pid=$LAST_PID url="http://127.0.0.1:$proxy_port/1k"
    wait_ready "$url" "$pid" || { log "$name $chain $mode did not start"; tail -n 5 "$work/$name-$chain-$mode.log" >&2; exit 1; }
    local startup_ms=$((($(date +%s%N) - started) / 1000000))
    oha_run -n "$requests" -c 50 "$url" > /dev/null
    sleep 0.5
    local linear
    linear=$(curl -fsS "http://127.0.0.1:$admin_port/filters" | python3 -c '
import json, sys
plugins = [p for c in json.load(sys.stdin).get("filter_chains", []) for p in c.get("plugins", [])]
print(sum(p.get("memory_bytes", 0) for p in plugins) // 1024)')
    printf '{"binary": "%s", "chain": "%s", "mode": "%s", "rss": %s, "anon": %s, "file": %s, "linear": %s, "startup_ms": %s}\n' \
        "$name" "$chain" "$mode" "$(status_kib "$pid" VmRSS)" "$(status_kib "$pid" RssAnon)" \
        "$(status_kib "$pid" RssFile)" "$linear" "$startup_ms"
    if [[ -n "${SMAPS_DIR:-}" ]]; then
        mkdir -p "$SMAPS_DIR"
        cp "/proc/$pid/smaps" "$SMAPS_DIR/$name-$chain-$mode.smaps"
    fi
    stop_pid "$pid"
}

IFS=, read -r -a chain_list <<< "$chains"
results="$work/results.jsonl"
: > "$results"
for ((round = 1; round <= rounds; round++)); do
    for chain in "${chain_list[@]}"; do
        for mode in cold warm; do
            if [[ "$chain" == *-0 && "$mode" == warm ]]; then continue; fi
            for name in "${binaries[@]}"; do
                log "round $round: $name $chain $mode"
                measure "$name" "$chain" "$mode" >> "$results"
            done
        done
    done
done

python3 - "$results" "$requests" "$rounds" "$load_before" "$WASP_BIN_SOURCE" "${BASE_WASP_BIN:-}" > "$work/table.md" <<'EOF'
import json, statistics, sys
path, requests, rounds, load, source, base = sys.argv[1:]
rows = {}
for line in open(path):
    r = json.loads(line)
    rows.setdefault((r["chain"], r["mode"], r["binary"]), []).append(r)
def cell(rs, key, scale=1024):
    values = [r[key] / scale for r in rs]
    med = statistics.median(values)
    if min(values) == max(values):
        return f"{med:.1f}"
    return f"{med:.1f} ({min(values):.1f}–{max(values):.1f})"
print("| chain | modules | binary | RSS MiB | anon MiB | file MiB | linear memory MiB | start-up ms |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for (chain, mode, binary), rs in rows.items():
    print(f"| {chain} | {mode if not chain.endswith('-0') else '–'} | {binary} | {cell(rs, 'rss')} | {cell(rs, 'anon')} "
          f"| {cell(rs, 'file')} | {cell(rs, 'linear')} | {cell(rs, 'startup_ms', 1)} |")
print()
print(f"Median (min–max) of {rounds} rounds; RSS after {requests} requests (50 connections), one worker "
      f"pinned to CPU 0; cold: modules compiled at start, warm: loaded from a filled --compiled-cache-dir. "
      f"wasp {source}" + (f", base {base}" if base else "") + f"; load average before: {load}.")
EOF
cat "$work/table.md"
if [[ -n "$out" ]]; then cp "$work/table.md" "$out"; fi
