#!/usr/bin/env bash
# Benchmark: a fixed 1 KiB GET on loopback, straight to the upstream (the
# limit) and through wasp, wasp with its resilience policies on, Envoy, nginx,
# HAProxy and Pingora (bench/peers/pingora) — each proxy pinned to one CPU
# with one worker thread, the load generator and the upstream pinned to the
# other CPU. The scaling rows wasp-2w and nginx-2w run two workers on both
# CPUs, which they share with the load generator: compare their ratios only.
#
# Per target: a closed-loop run (max throughput, CPU seconds per 1,000
# requests, RSS) and a fixed-rate run with latency correction (no coordinated
# omission) for p50/p99, repeated --rounds times with the targets taking
# turns: the table gives each target's median p99 and its range, and the
# share of CPU time the hypervisor stole during its runs (on a VM, the
# tail follows steal time more than the proxy). Figures go to stdout and
# bench/results/latest.md.
#
# Usage: bench/run.sh [--duration SECS] [--connections N] [--rate RPS] [--rounds N] [--only a,b]
# WASP_BIN=PATH uses that wasp binary instead of building one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=10
connections=50
rate=""
rounds=1
only=""
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "duration connections rate rounds only" "$@"

install_tools
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wasp_binary

make_work bench
mkdir -p "$root/bench/results"
start_upstream

targets=(direct wasp wasp-resilience envoy nginx haproxy pingora wasp-2w nginx-2w)
if [[ -z "$only" || ",$only," == *",pingora,"* ]]; then pingora_binary; fi
declare -A url_of pid_of
for target in "${targets[@]}"; do
    if [[ -n "$only" && ",$only," != *",$target,"* ]]; then continue; fi
    proxy_port=$(free_port)
    admin_port=$(free_port)
    case "$target" in
        direct)
            proxy_port=$upstream_port
            LAST_PID=$UPSTREAM_PID ;;
        wasp|wasp-resilience)
            render "bench/configs/$target.yaml" "$work/$target.yaml"
            start_pinned "$PROXY_CPU" "$target" "$WASP_BIN" run --config "$work/$target.yaml" --workers 1 ;;
        envoy)
            render bench/configs/envoy.yaml "$work/envoy.yaml"
            start_pinned "$PROXY_CPU" envoy "$ENVOY_BIN" -c "$work/envoy.yaml" --concurrency 1 -l error ;;
        nginx)
            render bench/configs/nginx-proxy.conf "$work/nginx-proxy.conf"
            start_pinned "$PROXY_CPU" nginx nginx -c "$work/nginx-proxy.conf" ;;
        haproxy)
            render bench/configs/haproxy.cfg "$work/haproxy.cfg"
            start_pinned "$PROXY_CPU" haproxy haproxy -db -f "$work/haproxy.cfg" ;;
        pingora)
            start_pinned "$PROXY_CPU" pingora "$PINGORA_BIN" "127.0.0.1:$proxy_port" \
                "127.0.0.1:$upstream_port" -c bench/configs/pingora.yaml ;;
        wasp-2w)
            render bench/configs/wasp.yaml "$work/wasp-2w.yaml"
            start_pinned "$PROXY_CPU,$LOADGEN_CPU" wasp-2w "$WASP_BIN" run --config "$work/wasp-2w.yaml" --workers 2 ;;
        nginx-2w)
            render bench/configs/nginx-proxy.conf "$work/nginx-2w.tmp"
            sed -e 's/^worker_processes 1;/worker_processes 2;/' -e 's/^master_process off;/master_process on;/' \
                -e 's/nginx-proxy\.pid/nginx-2w.pid/' "$work/nginx-2w.tmp" > "$work/nginx-2w.conf"
            start_pinned "$PROXY_CPU,$LOADGEN_CPU" nginx-2w nginx -c "$work/nginx-2w.conf" ;;
    esac
    url_of[$target]="http://127.0.0.1:$proxy_port/1k"
    pid_of[$target]=$LAST_PID
    wait_http "${url_of[$target]}"
done

results="$work/results.jsonl"
: > "$results"
# Closed loop first: it gives each target's capacity and the common rate.
for target in "${targets[@]}"; do
    [[ -n "${url_of[$target]:-}" ]] || continue
    closed_loop "$target" "${url_of[$target]}" "${pid_of[$target]}" >> "$results"
done
if [[ -z "$rate" ]]; then
    rate=$(python3 bench/summarize.py --common-rate "$results")
fi
echo "fixed-rate runs at $rate requests/s, $rounds round(s)" >&2
for ((round = 1; round <= rounds; round++)); do
    for target in "${targets[@]}"; do
        [[ -n "${url_of[$target]:-}" ]] || continue
        fixed_rate "$target" "${url_of[$target]}" "$rate" >> "$results"
    done
done

{
    python3 bench/summarize.py "$results"
    echo
    echo "Run of $(date -u +%Y-%m-%dT%H:%MZ): wasp $WASP_BIN_SOURCE; $(nproc) CPUs, load average before the run: $load_before."
} | tee "$root/bench/results/latest.md"
