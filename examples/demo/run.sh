#!/usr/bin/env bash
# The wasp demo: two versions of a demo service behind wasp, with a health
# check route, a redirect, a header-selected canary and a 90/10 weighted split,
# with a Wasm filter (the filter template) on the API routes; the shipped
# filters (a JWT checked at the ingress and authorization on its claims, a
# fault, a mirror); and the control plane: waspctl pushing a filter to a
# second, running proxy.
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
# One package per build: each gets the features the tests build it with, so
# neither rebuilds the other's dependencies.
for package in wasp-proxy wasp-demo-app wasp-controlplane; do
    cargo build --quiet -p "$package"
done
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/wasp-demo-app" --name app-v1 --listen 127.0.0.1:8081 & pids+=($!)
"$bin/wasp-demo-app" --name app-v2 --listen 127.0.0.1:8082 & pids+=($!)
"$bin/wasp-demo-app" --name app-shadow --listen 127.0.0.1:8083 & pids+=($!)
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
echo
echo "==> shipped filters: jwt-authn + authz on /secure (tokens from demo-token, HS256 demo secret)"
alice=$("$bin/demo-token" alice admins)
bob=$("$bin/demo-token" bob)
echo "\$ alice=\$(demo-token alice admins); bob=\$(demo-token bob)"
# as_shown TEXT CMD...: prints TEXT as the command, runs CMD.
as_shown() {
    echo
    echo "\$ $1"
    shift
    "$@" || true
}
as_shown "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/secure/orders    # no token" \
    curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/secure/orders
as_shown "curl -s -H \"authorization: Bearer \${bob}x\" http://127.0.0.1:8080/secure/orders    # a forged signature" \
    curl -s -w ' (%{http_code})\n' -H "authorization: Bearer ${bob}x" http://127.0.0.1:8080/secure/orders
echo
echo "\$ curl -s -H \"authorization: Bearer \$bob\" http://127.0.0.1:8080/secure/orders | grep -E 'x-user|authorization'    # the verified subject; the token stripped"
curl -s -H "authorization: Bearer $bob" http://127.0.0.1:8080/secure/orders | grep -E '"(x-user|authorization)"' || true
as_shown "curl -s -H \"authorization: Bearer \$bob\" http://127.0.0.1:8080/secure/admin    # bob is no admin" \
    curl -s -w ' (%{http_code})\n' -H "authorization: Bearer $bob" http://127.0.0.1:8080/secure/admin
as_shown "curl -s -o /dev/null -w '%{http_code}' -H \"authorization: Bearer \$alice\" http://127.0.0.1:8080/secure/admin" \
    curl -s -o /dev/null -w '%{http_code}\n' -H "authorization: Bearer $alice" http://127.0.0.1:8080/secure/admin

echo
echo "==> fault injection on /flaky: 50% aborted with 503, and a delay asked for by the request"
echo "\$ for i in \$(seq 20); do curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8080/flaky; done | sort | uniq -c"
for _ in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/flaky; done | sort | uniq -c
show curl -sS -o /dev/null -w '%{http_code} after %{time_total}s\n' -H 'x-wasp-fault-delay-request: 300' http://127.0.0.1:8080/flaky

echo
echo "==> mirroring on /shop: every request is copied to app-shadow, fire-and-forget"
for _ in $(seq 5); do curl -s -o /dev/null http://127.0.0.1:8080/shop/cart; done
sleep 0.5
echo "\$ curl -s http://127.0.0.1:9901/metrics | grep -E '^(jwt_authn|authz|fault|mirror)_' | grep -v ' 0\$'"
curl -s http://127.0.0.1:9901/metrics | grep -E '^(jwt_authn|authz|fault|mirror)_' | grep -v ' 0$' || true

echo
echo "==> the control plane: wasp-cp, and waspctl pushing a filter to a second, running proxy"
export WASP_TOKEN=demo-token
cp_data="$root/target/demo/cp"
rm -rf "$cp_data"
"$bin/wasp-cp" --data-dir "$cp_data" 2>"$root/target/demo/wasp-cp.log" & pids+=($!)
for _ in $(seq 1 100); do
    if curl -fsS http://127.0.0.1:7071/modules >/dev/null 2>&1; then break; fi
    sleep 0.1
done
"$bin/wasp" run --control-plane http://127.0.0.1:7070 --node-id demo-2 --node-labels app=demo \
    --cache-dir "$root/target/demo/proxy-cache" --admin-address 127.0.0.1:9902 \
    --listener-address ingress=127.0.0.1:8090 2>"$root/target/demo/wasp-2.log" & pids+=($!)
show "$bin/waspctl" module push target/filters/wasp_filter_template.wasm --name served-by --tag v1
show "$bin/waspctl" apply -f controlplane/examples/mesh.yaml -m "served-by on the demo mesh"
for _ in $(seq 1 100); do
    if curl -fsS http://127.0.0.1:8090/ >/dev/null 2>&1; then break; fi
    sleep 0.1
done
show curl -sS -i http://127.0.0.1:8090/
# The proxy serves the new version a moment before its ACK reaches wasp-cp.
for _ in $(seq 1 100); do
    if "$bin/waspctl" proxies 2>/dev/null | grep -q "ACK v1"; then break; fi
    sleep 0.1
done
show "$bin/waspctl" proxies

if $once; then exit 0; fi
echo
echo "==> send your own requests to http://127.0.0.1:8080 (config: examples/demo/wasp.yaml,"
echo "    edit it and wasp reloads it); admin: http://127.0.0.1:9901/{ready,metrics,config_dump}"
echo "    Ctrl-C to stop."
wait
