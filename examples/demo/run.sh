#!/usr/bin/env bash
# The wasp demo: two versions of a demo service behind wasp, with a health
# check route, a redirect, a header-selected canary and a 90/10 weighted split,
# with a Wasm filter (the filter template) on the API routes.
#
#   examples/demo/run.sh            start everything, show sample requests, serve until Ctrl-C
#   examples/demo/run.sh --once     the same, but exit after the sample requests
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
once=false
[[ "${1:-}" == "--once" ]] && once=true

echo "==> building the Wasm filters (scripts/build-filters.sh)"
scripts/build-filters.sh
echo "==> building wasp and the demo service"
cargo build --quiet -p wasp-proxy -p wasp-demo-app
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/wasp-demo-app" --name app-v1 --listen 127.0.0.1:8081 & pids+=($!)
"$bin/wasp-demo-app" --name app-v2 --listen 127.0.0.1:8082 & pids+=($!)
mkdir -p "$root/target/demo"
log="$root/target/demo/wasp.log"
"$bin/wasp" run --config examples/demo/wasp.yaml 2>"$log" & pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS http://127.0.0.1:9901/ready >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS http://127.0.0.1:9901/ready >/dev/null

show() {
    echo
    echo "\$ $*"
    "$@" || true
}

echo
echo "==> wasp is listening on http://127.0.0.1:8080 (admin on http://127.0.0.1:9901; log: $log)"
show curl -sS http://127.0.0.1:8080/healthz
show curl -sS -o /dev/null -w '%{http_code} -> %{redirect_url}\n' http://127.0.0.1:8080/docs/intro
show curl -sS -D - http://127.0.0.1:8080/api/orders?id=7
show curl -sS -H 'x-canary: 1' --http2-prior-knowledge http://127.0.0.1:8080/api/orders
echo
echo "\$ for i in \$(seq 100); do curl -s http://127.0.0.1:8080/api/ | grep service; done | sort | uniq -c"
for _ in $(seq 100); do curl -s http://127.0.0.1:8080/api/ | grep '"service"'; done | sort | uniq -c
show curl -sS -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/unknown
echo
echo "\$ curl -s http://127.0.0.1:9901/metrics | grep '^wasp_requests_total'"
curl -s http://127.0.0.1:9901/metrics | grep '^wasp_requests_total' || true
show curl -sS http://127.0.0.1:9901/filters

if $once; then exit 0; fi
echo
echo "==> send your own requests to http://127.0.0.1:8080 (config: examples/demo/wasp.yaml,"
echo "    edit it and wasp reloads it); admin: http://127.0.0.1:9901/{ready,metrics,config_dump}"
echo "    Ctrl-C to stop."
wait
