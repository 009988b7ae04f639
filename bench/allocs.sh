#!/usr/bin/env bash
# Heap allocations (calls to the C library's malloc) and system calls per
# request in wasp, per filter chain: counted with a perf uprobe on malloc
# and the raw_syscalls tracepoint over a fixed number of 1 KiB GETs, so the
# figures do not move with the machine's load as timings do. A request
# path change that allocates less shows here exactly.
#
# Needs perf (Debian `linux-perf`, installed when missing) and root (the
# uprobe). Chains as in bench/chains.sh; the mesh chain gets its token.
#
# Usage: bench/allocs.sh [--chains noop-0,noop-1,noop-5,mesh-1] [--requests N]
# WASP_BIN=PATH uses that wasp binary instead of building one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
chains="noop-0,noop-1,noop-5,mesh-1" requests=20000
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "chains requests" "$@"

install_tools
if ! command -v perf >/dev/null; then
    log "installing perf"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf
fi
libc=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ { print $NF; exit }')
probe=probe_libc:malloc
if ! perf probe -l 2>/dev/null | grep -q "^ *$probe "; then
    perf probe -q -x "$libc" malloc >/dev/null
fi
wasp_binary build
scripts/build-filters.sh >&2
modules="$root/target/filters"
make_work allocs
start_upstream
# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"

echo "| chain | mallocs / request | syscalls / request |"
echo "|---|---:|---:|"
IFS=, read -r -a chain_list <<< "$chains"
for chain in "${chain_list[@]}"; do
    wasp_chain_config "$chain"
    start_pinned "$PROXY_CPU" "$chain" "$WASP_BIN" run --config "$work/$chain.yaml" --workers 1
    pid=$LAST_PID
    url="http://127.0.0.1:$proxy_port/1k"
    wait_ready "$url" "$pid"
    oha_run -n 2000 -c 10 "$url" > /dev/null
    # Count while oha runs `requests` requests on 10 connections (kept
    # open: connection set-up is not per request).
    perf stat -x, -e "$probe,raw_syscalls:sys_enter" -p "$pid" -o "$work/$chain.stat" &
    counter=$!
    sleep 0.5
    oha_run -n "$requests" -c 10 "$url" > /dev/null
    sleep 0.5
    kill -INT "$counter"
    wait "$counter" 2>/dev/null || true
    stop_pid "$pid"
    python3 - "$chain" "$requests" "$work/$chain.stat" <<'PY'
import sys
chain, requests, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
counts = {}
for line in open(path):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0].isdigit():
        counts[fields[2]] = int(fields[0])
mallocs = counts.get("probe_libc:malloc", 0) / requests
syscalls = counts.get("raw_syscalls:sys_enter", 0) / requests
print(f"| {chain} | {mallocs:.1f} | {syscalls:.1f} |")
PY
done
echo
echo "wasp ${WASP_BIN_SOURCE}; $requests requests per chain on 10 kept-alive connections."
