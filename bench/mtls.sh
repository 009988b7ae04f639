#!/usr/bin/env bash
# Cost of mutual TLS between two wasp sidecars: a 1 KiB GET from oha to
# sidecar A (plain HTTP, keep-alive), A to sidecar B, B to an nginx upstream.
# A reaches B four ways (routes of A, one cluster each):
#   /mtls/   ISTIO_MUTUAL, pooled connections (warm mTLS)
#   /plain/  plain text, pooled connections
#   /mtlsn/  ISTIO_MUTUAL, a new connection per request (max_idle_per_endpoint 0):
#            one mTLS handshake per request (A originates, B verifies)
#   /plainn/ plain text, a new TCP connection per request
# Both sidecars run one worker pinned to CPU 0; oha and nginx to CPU 1.
# Certificates (ECDSA P-256, SPIFFE URI SANs) are made with openssl.
# Prints requests/s and p99 per case, and the ratios.
#
# Usage: bench/mtls.sh [--duration SECS] [--connections N]
# WASP_BIN=PATH uses that wasp binary instead of building one (release).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=10
connections=50
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
PIDS=()
wasp_binary
work="$(mktemp -d /tmp/wasp-bench-mtls.XXXXXX)"
trap 'stop_all; rm -rf "$work"' EXIT

# Certificates: a root, and one workload certificate per sidecar.
cert() {
    local name="$1" id="$2"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/$name.key" -out "$work/$name.csr" -subj "/CN=$name" 2>/dev/null
    printf 'subjectAltName=URI:%s\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$id" > "$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 2 -extfile "$work/$name.ext" -out "$work/$name.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=bench root" 2>/dev/null
cert a spiffe://cluster.local/ns/bench/sa/a
cert b spiffe://cluster.local/ns/bench/sa/b

upstream_port=$(free_port)
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k"
render bench/configs/upstream-nginx.conf "$work/upstream.conf"
start_pinned "$LOADGEN_CPU" upstream nginx -c "$work/upstream.conf"
wait_http "http://127.0.0.1:$upstream_port/1k"

b_mtls=$(free_port); b_plain=$(free_port); a_port=$(free_port)
a_admin=$(free_port); b_admin=$(free_port)
mesh() { echo "mesh: {cert_file: $work/$1.pem, key_file: $work/$1.key, trust_bundle: $work/ca.pem}"; }
cat > "$work/b.yaml" <<YAML
$(mesh b)
admin: {address: "127.0.0.1:$b_admin"}
listeners:
  - {name: mtls, address: "127.0.0.1:$b_mtls", mtls: {mode: STRICT}, routes: [{match: {prefix: /}, route: {cluster: app}}]}
  - {name: plain, address: "127.0.0.1:$b_plain", routes: [{match: {prefix: /}, route: {cluster: app}}]}
clusters:
  - {name: app, endpoints: ["127.0.0.1:$upstream_port"], max_idle_per_endpoint: 1024}
YAML
tls='{mode: ISTIO_MUTUAL, expected_identities: ["spiffe://cluster.local/ns/bench/sa/b"]}'
cat > "$work/a.yaml" <<YAML
$(mesh a)
admin: {address: "127.0.0.1:$a_admin"}
listeners:
  - name: outbound
    address: "127.0.0.1:$a_port"
    routes:
      - {match: {prefix: /mtlsn/}, route: {cluster: mtls-new, prefix_rewrite: /}}
      - {match: {prefix: /plainn/}, route: {cluster: plain-new, prefix_rewrite: /}}
      - {match: {prefix: /mtls/}, route: {cluster: mtls, prefix_rewrite: /}}
      - {match: {prefix: /plain/}, route: {cluster: plain, prefix_rewrite: /}}
clusters:
  - {name: mtls, endpoints: ["127.0.0.1:$b_mtls"], max_idle_per_endpoint: 1024, tls: $tls}
  - {name: plain, endpoints: ["127.0.0.1:$b_plain"], max_idle_per_endpoint: 1024}
  - {name: mtls-new, endpoints: ["127.0.0.1:$b_mtls"], max_idle_per_endpoint: 0, tls: $tls}
  - {name: plain-new, endpoints: ["127.0.0.1:$b_plain"], max_idle_per_endpoint: 0}
YAML
start_pinned "$PROXY_CPU" wasp-b "$WASP_BIN" run --config "$work/b.yaml" --workers 1
start_pinned "$PROXY_CPU" wasp-a "$WASP_BIN" run --config "$work/a.yaml" --workers 1
for case in mtls plain mtlsn plainn; do
    wait_http "http://127.0.0.1:$a_port/$case/1k"
done

declare -A rps p99
for case in plain mtls plainn mtlsn; do
    url="http://127.0.0.1:$a_port/$case/1k"
    log "$case: ${duration}s, $connections connections"
    oha_run -z 2s -c "$connections" "$url" > /dev/null
    oha_run -z "${duration}s" -c "$connections" "$url" > "$work/$case.json"
    read -r rps["$case"] p99["$case"] < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
codes = s.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200")
if bad:
    sys.exit(f"{bad} non-200 answers: {codes}")
print(round(s["summary"]["requestsPerSec"]), round(s["latencyPercentiles"]["p99"] * 1000, 2))
' "$work/$case.json")
done

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) on $(nproc) CPUs; wasp $WASP_BIN_SOURCE"
printf '%-34s %12s %10s\n' "case" "requests/s" "p99 ms"
printf '%-34s %12s %10s\n' "warm, plain text" "${rps[plain]}" "${p99[plain]}"
printf '%-34s %12s %10s\n' "warm, mutual TLS" "${rps[mtls]}" "${p99[mtls]}"
printf '%-34s %12s %10s\n' "new connection each, plain text" "${rps[plainn]}" "${p99[plainn]}"
printf '%-34s %12s %10s\n' "new connection each, mutual TLS" "${rps[mtlsn]}" "${p99[mtlsn]}"
python3 -c '
import sys
p, m, pn, mn = map(float, sys.argv[1:])
print(f"warm mTLS costs {100 * (1 - m / p):.1f}% of plain-text requests/s")
print(f"mTLS handshakes/s (A originates + B verifies, one CPU): {mn:.0f}; plain-text connections/s: {pn:.0f}")
' "${rps[plain]}" "${rps[mtls]}" "${rps[plainn]}" "${rps[mtlsn]}"
