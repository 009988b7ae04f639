#!/usr/bin/env bash
# Hardening figures (issue 14), printed to stdout:
#
# 1. The CPU cost of the per-request timer of `stream_idle_timeout` (on by
#    default, 5m): the same closed-loop GET through wasp with the listener's
#    defaults and with `stream_idle_timeout: 0s` (and `request_timeout: 0s`,
#    so no timer at all), alternating runs. Reported per request as CPU time
#    of the wasp process (user + system, from /proc) and, where `perf` can
#    count them, instructions of the wasp process (`perf stat -e instructions
#    -p PID`). Both are per-process counts, so other load on the machine
#    does not enter them, but the scheduler's and caches' do: compare the
#    two columns of one run, not runs on different days.
# 2. Memory: peak resident set of the real binary under a filter's header
#    flood, a shared-data flood, and 300 reloads with kept-alive clients
#    (the end-to-end tests tests/tests/filter_limits.rs and
#    tests/tests/reload_connections.rs, run against the same binary).
#
# Usage: bench/hardening.sh [--requests N] [--rounds N] [--skip-memory]
# WASP_BIN=PATH uses that wasp binary instead of building one (release).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

requests=20000
rounds=3
memory=1
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --requests) requests="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --skip-memory) memory=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

command -v oha >/dev/null || cargo install oha --locked
command -v nginx >/dev/null || PATH="$PATH:/usr/sbin"
wasp_binary
make_work hardening

echo "# wasp hardening figures ($WASP_BIN_SOURCE; load average before: $(cut -d' ' -f1-3 /proc/loadavg))"

upstream_port=$(free_port)
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/index.html"
render "$root/bench/configs/upstream-nginx.conf" "$work/upstream.conf"
start_pinned "$LOADGEN_CPU" upstream nginx -c "$work/upstream.conf"
wait_http "http://127.0.0.1:$upstream_port/"

# run_variant NAME EXTRA_LISTENER_YAML: starts wasp, prints
# "NAME us_cpu_per_request instructions_per_request" for one run.
run_variant() {
    local name="$1" extra="$2"
    proxy_port=$(free_port)
    admin_port=$(free_port)
    render "$root/bench/configs/wasp.yaml" "$work/$name.yaml"
    if [[ -n "$extra" ]]; then
        sed -i "s|^    address: 127.0.0.1:$proxy_port|&\n$extra|" "$work/$name.yaml"
    fi
    start_pinned "$PROXY_CPU" "wasp-$name" "$WASP_BIN" run --config "$work/$name.yaml" --workers 1
    local pid=$LAST_PID url="http://127.0.0.1:$proxy_port/"
    wait_http "$url"
    oha_run -n 2000 -c 8 "$url" > /dev/null
    local before after instructions=""
    before=$(cpu_ticks "$pid")
    if perf stat -e instructions -x, -o "$work/perf-$name.txt" -p "$pid" -- \
        taskset -c "$LOADGEN_CPU" oha --no-tui --output-format json -n "$requests" -c 8 "$url" \
        > "$work/$name.json" 2>/dev/null; then
        instructions=$(awk -F, '/instructions/ {print $1}' "$work/perf-$name.txt")
    else
        oha_run -n "$requests" -c 8 "$url" > "$work/$name.json"
    fi
    after=$(cpu_ticks "$pid")
    stop_pid "$pid"
    python3 - "$name" "$((after - before))" "$(getconf CLK_TCK)" "$requests" "${instructions:-}" "$work/$name.json" <<'PY'
import json, sys
name, ticks, hz, n, instr, path = sys.argv[1:]
ok = json.load(open(path))["statusCodeDistribution"].get("200", 0)
us = int(ticks) / int(hz) * 1e6 / int(n)
per = f"{int(instr) / int(n):,.0f}" if instr and instr.isdigit() else "n/a"
print(f"{name:<12} {us:8.1f} us CPU/request  {per:>10} instructions/request  ({ok} x 200)")
PY
}

echo
echo "## stream_idle_timeout timer: $requests GETs per run, 8 connections, wasp on CPU $PROXY_CPU with one worker"
for _ in $(seq 1 "$rounds"); do
    run_variant default ""
    run_variant no-timer "    stream_idle_timeout: 0s\n    request_timeout: 0s"
done

if [[ "$memory" == 1 ]]; then
    echo
    echo "## memory (peak RSS of the real binary, from the end-to-end tests)"
    WASP_BIN="$WASP_BIN" cargo test -p wasp-e2e --test filter_limits --test reload_connections \
        -- --nocapture --test-threads 1 2>&1 \
        | grep -E "header flood:|shared-data flood:|module reloads:|reloads, .* kept-alive" \
        | sed -E 's/; \/filters: .*//'
fi
