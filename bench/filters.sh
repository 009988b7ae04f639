#!/usr/bin/env bash
# Benchmark of Wasm filter chains: the same 1 KiB GET as bench/run.sh through
# wasp and through Envoy (V8 runtime, and wasmtime when this Envoy build has
# it) with chains of 0, 1, 5 and 10 bench-noop filters and with one
# bench-rewrite filter — the same .wasm files (tests/filters/bench-*) in both.
# Each proxy is pinned to CPU 0 with one worker thread, the upstream and the
# load generator to CPU 1, as in bench/run.sh.
#
# Per proxy and chain: start-up time and idle RSS, the number of Wasm VMs
# (wasp: /filters; Envoy: its wasm.*.active gauge), a closed-loop run
# (max requests/s, CPU per request, RSS) and a latency-corrected fixed-rate
# run (p50/p99). The summary adds per-filter overhead (median latency and CPU
# per request), start-up time and memory per VM. Figures go to stdout and
# bench/results/filters-latest.md.
#
# Every measurement is repeated in --rounds rounds (default 2), each round
# going over all targets in turn; the summary keeps each target's best run,
# which filters out bursts of other load on a shared machine.
#
# Usage: bench/filters.sh [--duration SECS] [--connections N] [--rate RPS] [--rounds N]
#                         [--only wasp,envoy-v8,envoy-wasmtime] [--chains noop-0,noop-1,...,mesh-1]
# WASP_BIN=PATH uses that wasp binary instead of building one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=10
connections=50
rate=""
only=""
rounds=2
chains="noop-0,noop-1,noop-5,noop-10,rewrite-1,mesh-1"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "duration connections rate only chains rounds" "$@"

install_tools
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -z "$only" || ",$only," == *",wasp,"* ]]; then wasp_binary build; else wasp_binary skip; fi
log "building the filters"
scripts/build-filters.sh >&2
modules="$root/target/filters"

make_work filterbench
mkdir -p "$root/bench/results"
start_upstream

# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"
mesh_token_for "$chains"

# vm_info PROXY ADMIN_PORT: JSON fields with the number of Wasm VMs (and, for
# wasp, their linear memory) as the proxy's admin server reports them.
vm_info() {
    local proxy="$1" admin="$2"
    case "$proxy" in
        wasp)
            curl -fsS "http://127.0.0.1:$admin/filters" 2>/dev/null | python3 -c '
import json, sys
try:
    plugins = [p for c in json.load(sys.stdin).get("filter_chains", []) for p in c.get("plugins", [])]
except ValueError:
    plugins = []
print(json.dumps({"vms": sum(p.get("vms", 0) for p in plugins),
                  "vm_linear_memory_bytes": sum(p.get("memory_bytes", 0) for p in plugins)}))' ;;
        envoy-*)
            curl -fsS "http://127.0.0.1:$admin/stats?filter=^wasm\\..*\\.active$" 2>/dev/null | python3 -c '
import json, sys
vms = sum(int(line.rsplit(":", 1)[1]) for line in sys.stdin if ":" in line)
print(json.dumps({"vms": vms}))' ;;
    esac
}

proxies=(wasp envoy-v8 envoy-wasmtime)
IFS=, read -r -a chain_list <<< "$chains"
targets=()
declare -A url_of pid_of
results="$work/results.jsonl"
: > "$results"
for proxy in "${proxies[@]}"; do
    if [[ -n "$only" && ",$only," != *",$proxy,"* ]]; then continue; fi
    for chain in "${chain_list[@]}"; do
        name="$proxy/$chain"
        proxy_port=$(free_port)
        admin_port=$(free_port)
        config="$work/${name//\//-}.yaml"
        render_chain "$proxy" "$chain" "$config"
        started=$(date +%s%N)
        case "$proxy" in
            wasp)
                start_pinned "$PROXY_CPU" "${name//\//-}" "$WASP_BIN" run --config "$config" --workers 1 ;;
            envoy-*)
                start_pinned "$PROXY_CPU" "${name//\//-}" "$ENVOY_BIN" -c "$config" --concurrency 1 -l error \
                    --disable-hot-restart ;;
        esac
        url="http://127.0.0.1:$proxy_port/1k"
        if ! wait_ready "$url" "$LAST_PID"; then
            reason=$(grep -v '^\s*$' "$work/${name//\//-}.log" | tail -n 1 | cut -c1-200)
            log "$name did not start: $reason"
            stop_pid "$LAST_PID"
            python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "kind": "failed", "reason": sys.argv[2]}))' \
                "$name" "$reason" >> "$results"
            continue
        fi
        startup_ms=$((($(date +%s%N) - started) / 1000000))
        python3 -c 'import json,sys; r={"name": sys.argv[1], "kind": "start", "startup_ms": int(sys.argv[2]), "rss_idle_mib": int(sys.argv[3]) / 1024}; r.update(json.loads(sys.argv[4])); print(json.dumps(r))' \
            "$name" "$startup_ms" "$(rss_kib "$LAST_PID")" "$(vm_info "$proxy" "$admin_port")" >> "$results"
        targets+=("$name")
        url_of[$name]="$url"
        pid_of[$name]=$LAST_PID
    done
done

# named NAME: renames the JSON record on stdin.
named() { python3 -c 'import json,sys; r=json.load(sys.stdin); r["name"]=sys.argv[1]; print(json.dumps(r))' "$1"; }

# Closed loops first: they give each target's capacity and the common rate.
for ((round = 1; round <= rounds; round++)); do
    for target in "${targets[@]}"; do
        closed_loop "${target//\//-}" "${url_of[$target]}" "${pid_of[$target]}" | named "$target" >> "$results"
    done
done
if [[ -z "$rate" ]]; then
    rate=$(python3 bench/summarize_filters.py --common-rate "$results")
fi
log "fixed-rate runs at $rate requests/s"
for ((round = 1; round <= rounds; round++)); do
    for target in "${targets[@]}"; do
        fixed_rate "${target//\//-}" "${url_of[$target]}" "$rate" | named "$target" >> "$results"
    done
done

cp "$results" "$root/bench/results/filters-latest.jsonl"
{
    python3 bench/summarize_filters.py "$results"
    echo
    echo "Run of $(date -u +%Y-%m-%dT%H:%MZ): wasp ${WASP_BIN_SOURCE}; Envoy $("$ENVOY_BIN" --version | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p');"
    echo "$(nproc) CPUs, load average before the run: $load_before."
} | tee "$root/bench/results/filters-latest.md"
