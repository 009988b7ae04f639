#!/usr/bin/env bash
# Load-insensitive cost per request: the same 1 KiB GET as bench/run.sh, but
# instead of requests/s it reports what each proxy spends per request — CPU
# time (perf's task-clock of the proxy process, user + kernel; and the
# user and kernel parts from /proc) and retired instructions (user and
# kernel separately, where the CPU exposes counters) — over a fixed number of
# requests. These figures barely move when other processes share the
# machine, unlike throughput and latency.
#
# Each proxy runs with one worker pinned to CPU 0; the upstream (nginx) and
# the load generator (oha, fixed request count, 50 connections) share CPU 1.
# Every target is measured --rounds times (default 3), the rounds going over
# all targets in turn, and the table gives the median and the spread
# (min–max) per target, plus the RSS after the runs.
#
# Targets: wasp, wasp-resilience, wasp-noop-1, wasp-noop-5, wasp-noop-10,
# wasp-mesh (the full chain of bench/chains.sh's mesh-1: jwt-authn → authz →
# fault → mirror → telemetry; every target is then sent its token), nginx,
# haproxy, pingora (bench/peers/pingora), envoy, envoy-v8-noop-1,
# envoy-v8-noop-5.
#
# With --rate R every target gets the same R requests/s (oha -q) instead of
# a closed loop: CPU per request falls as the rate rises (more requests per
# wake-up), so targets compare best at one rate.
#
# Usage: bench/cpu.sh [--requests N] [--rounds N] [--rate R] [--only a,b,...] [--out FILE]
# WASP_BIN=PATH uses that wasp binary instead of building one;
# NOOP_WASM=PATH the no-op filter module instead of target/filters/bench_noop.wasm.
# BASE_WASP_BIN=PATH (and BASE_NOOP_WASM=PATH) add targets base-wasp,
# base-wasp-noop-N, ... run with that binary (and module), for a
# before/after comparison within one run, rounds alternating.
# PROFILE=DIR also records `perf record -g` of each wasp target's (and nginx's) first round
# into DIR/<target>.perf.data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

requests=100000
rounds=3
connections=50
only="wasp,wasp-resilience,wasp-noop-1,wasp-noop-5,nginx,haproxy,pingora,envoy"
out=""
rate=""
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "requests rounds only out rate" "$@"

install_tools
if ! command -v perf >/dev/null; then
    log "perf is needed (apt-get install linux-perf)"; exit 1
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wasp_binary
if [[ ",$only," == *"wasp-mesh,"* || ( -z "${NOOP_WASM:-}" && ( ",$only," == *"wasp-noop-"* || ",$only," == *",envoy-v8-noop-"* ) ) ]]; then
    log "building the filters"
    scripts/build-filters.sh >&2
fi
noop_wasm="${NOOP_WASM:-$root/target/filters/bench_noop.wasm}"
if [[ ",$only," == *",pingora,"* ]]; then pingora_binary; fi

make_work cpubench
start_upstream
modules="$root/target/filters"
# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"
if [[ ",$only," == *"wasp-mesh,"* ]]; then mesh_token_for mesh-1; fi

# plugins KIND COUNT: the plugin lines of a chain for wasp or Envoy.
plugins() {
    local kind="$1" count="$2" i
    for ((i = 1; i <= count; i++)); do
        case "$kind" in
            wasp) echo "      - { name: p$i, module: \"$noop_wasm\", failure_policy: fail_closed }" ;;
            envoy) echo "                  - { name: envoy.filters.http.wasm, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, config: { name: p$i, root_id: \"\", vm_config: { vm_id: p$i, runtime: envoy.wasm.runtime.v8, code: { local: { filename: \"$noop_wasm\" } } } } } }" ;;
        esac
    done
}

# with_plugins TEMPLATE KIND COUNT OUT
with_plugins() {
    plugins "$2" "$3" > "$4.plugins"
    render "$1" "$4.tmp"
    sed -e "/@PLUGINS@/{r $4.plugins" -e 'd}' "$4.tmp" > "$4"
}

IFS=, read -r -a targets <<< "$only"
declare -A url_of pid_of
started=()
for target in "${targets[@]}"; do
    [[ -n "$target" ]] || continue
    proxy_port=$(free_port)
    admin_port=$(free_port)
    bin="$WASP_BIN" wasm="$noop_wasm" kind="$target"
    if [[ "$target" == base-* ]]; then
        bin="${BASE_WASP_BIN:?BASE_WASP_BIN is needed for $target}"
        wasm="${BASE_NOOP_WASM:-$noop_wasm}"
        kind="${target#base-}"
    fi
    case "$kind" in
        wasp|wasp-resilience)
            render "bench/configs/$kind.yaml" "$work/$target.yaml"
            start_pinned "$PROXY_CPU" "$target" "$bin" run --config "$work/$target.yaml" --workers 1 ;;
        wasp-mesh)
            render_chain wasp mesh-1 "$work/$target.yaml"
            start_pinned "$PROXY_CPU" "$target" "$bin" run --config "$work/$target.yaml" --workers 1 ;;
        wasp-noop-*)
            noop_wasm="$wasm" with_plugins bench/configs/wasp-filters.yaml wasp "${target##*-}" "$work/$target.yaml"
            start_pinned "$PROXY_CPU" "$target" "$bin" run --config "$work/$target.yaml" --workers 1 ;;
        envoy)
            render bench/configs/envoy.yaml "$work/envoy.yaml"
            start_pinned "$PROXY_CPU" envoy "$ENVOY_BIN" -c "$work/envoy.yaml" --concurrency 1 -l error --disable-hot-restart ;;
        envoy-v8-noop-*)
            with_plugins bench/configs/envoy-filters.yaml envoy "${target##*-}" "$work/$target.yaml"
            start_pinned "$PROXY_CPU" "$target" "$ENVOY_BIN" -c "$work/$target.yaml" --concurrency 1 -l error --disable-hot-restart ;;
        nginx)
            render bench/configs/nginx-proxy.conf "$work/nginx-proxy.conf"
            start_pinned "$PROXY_CPU" nginx nginx -c "$work/nginx-proxy.conf" ;;
        haproxy)
            render bench/configs/haproxy.cfg "$work/haproxy.cfg"
            start_pinned "$PROXY_CPU" haproxy haproxy -db -f "$work/haproxy.cfg" ;;
        pingora)
            start_pinned "$PROXY_CPU" pingora "$PINGORA_BIN" "127.0.0.1:$proxy_port" \
                "127.0.0.1:$upstream_port" -c bench/configs/pingora.yaml ;;
        *) log "unknown target $target"; exit 2 ;;
    esac
    url_of[$target]="http://127.0.0.1:$proxy_port/1k"
    pid_of[$target]=$LAST_PID
    wait_http "${url_of[$target]}"
    started+=("$target")
done

# measure TARGET: one JSON line with task-clock and instructions per request.
measure() {
    local target="$1" pid="${pid_of[$1]}" url="${url_of[$1]}"
    oha_run -n 5000 -c "$connections" "$url" > /dev/null
    perf stat -x, -e task-clock,instructions:u,instructions:k -p "$pid" -o "$work/perf.csv" &
    local perf_pid=$! record_pid=""
    if [[ -n "${PROFILE:-}" && ( "$target" == *wasp* || "$target" == nginx ) && ! -e "$PROFILE/$target.perf.data" ]]; then
        mkdir -p "$PROFILE"
        perf record -q -g -F 2000 -p "$pid" -o "$PROFILE/$target.perf.data" 2>/dev/null &
        record_pid=$!
    fi
    sleep 0.2
    local split_before split_after
    split_before=$(cpu_split "$pid")
    oha_run -n "$requests" -c "$connections" ${rate:+-q "$rate"} "$url" > "$work/oha.json"
    split_after=$(cpu_split "$pid")
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    if [[ -n "$record_pid" ]]; then kill -INT "$record_pid"; wait "$record_pid" || true; fi
    python3 - "$target" "$requests" "$work/perf.csv" "$work/oha.json" "$(rss_kib "$pid")" \
        "$split_before" "$split_after" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
target, requests, csv, oha, rss, before, after, hz = sys.argv[1:]
(user0, sys0), (user1, sys1) = (map(int, x.split()) for x in (before, after))
values = {}
for line in open(csv):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0] and not line.startswith("#"):
        try:
            values[parts[2]] = float(parts[0])
        except ValueError:
            pass
summary = json.load(open(oha))["summary"]
n = int(requests)
ok = summary.get("successRate", 1.0)
print(json.dumps({
    "target": target,
    "cpu_us": values.get("task-clock", 0) * 1000 / n,  # task-clock is in ms
    # /proc's user and system ticks over the same requests
    "user_us": (user1 - user0) * 1e6 / int(hz) / n,
    "sys_us": (sys1 - sys0) * 1e6 / int(hz) / n,
    "kinstr_u": values.get("instructions:u", 0) / n / 1000,
    "kinstr_k": values.get("instructions:k", 0) / n / 1000,
    "rps": summary.get("requestsPerSec", 0),
    "success": ok,
    "rss_mib": int(rss) / 1024,
}))
EOF
}

results="$work/results.jsonl"
: > "$results"
for ((round = 1; round <= rounds; round++)); do
    for target in "${started[@]}"; do
        log "round $round: $target"
        measure "$target" >> "$results"
    done
done

python3 - "$results" "$requests" "$rounds" "$load_before" "$WASP_BIN_SOURCE" "$rate" > "$work/table.md" <<'EOF'
import json, statistics, sys
path, requests, rounds, load, source, rate = sys.argv[1:]
rows = {}
for line in open(path):
    r = json.loads(line)
    rows.setdefault(r["target"], []).append(r)
def cell(values, fmt):
    if not any(values):
        return "n/a"  # no hardware counters (e.g. in a VM)
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"
print("| target | CPU µs / req | user µs / req | kernel µs / req | k instr user / req | k instr kernel / req | req/s (noisy) | RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for target, rs in rows.items():
    print(f"| {target} | {cell([r['cpu_us'] for r in rs], '.1f')} | {cell([r['user_us'] for r in rs], '.1f')} "
          f"| {cell([r['sys_us'] for r in rs], '.1f')} | {cell([r['kinstr_u'] for r in rs], '.1f')} "
          f"| {cell([r['kinstr_k'] for r in rs], '.1f')} | {statistics.median([r['rps'] for r in rs]):.0f} "
          f"| {max(r['rss_mib'] for r in rs):.1f} |")
print()
print(f"Median (min–max) of {rounds} rounds of {requests} requests, 50 connections, "
      + (f"at {rate} requests/s, " if rate else "closed loop, ") + "rounds alternating "
      f"over targets; proxy pinned to CPU 0, upstream and oha on CPU 1. wasp {source}; "
      f"load average before: {load}.")
EOF
cat "$work/table.md"
if [[ -n "$out" ]]; then cp "$work/table.md" "$out"; fi
