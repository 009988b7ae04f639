#!/usr/bin/env bash
# Cost of mutual TLS between two sidecars: a 1 KiB GET from oha to sidecar A
# (plain HTTP, keep-alive), A to sidecar B, B to an nginx upstream. A reaches
# B four ways (routes of A, one cluster each):
#   /mtls/   mutual TLS, pooled connections (warm mTLS)
#   /plain/  plain text, pooled connections
#   /mtlsn/  mutual TLS, a new connection per request: one mTLS handshake
#            per request (A originates, B verifies)
#   /plainn/ plain text, a new TCP connection per request
# The same A -> B pair runs as two wasp sidecars (ISTIO_MUTUAL clusters,
# STRICT listener; max_idle_per_endpoint 0 for a new connection each) and as
# two Envoy sidecars set up as Istio sets up ISTIO_MUTUAL (upstream TLS
# context with the client certificate and a validation context with the
# root and an exact URI SAN match; downstream TLS context requiring client
# certificates; max_requests_per_connection 1 for a new connection each),
# with the same certificates (ECDSA P-256, SPIFFE URI SANs, made with
# openssl). Each sidecar runs one worker pinned to CPU 0; oha and nginx to
# CPU 1. Prints requests/s, p99 and CPU time per request (A and B
# together, user + kernel: the figure least moved by other load on the
# machine) per case and proxy side by side, the wasp/Envoy ratios, and
# each proxy's cost of mTLS; for each proxy also A's upstream TLS
# handshakes and how many resumed a TLS session (a resumed
# handshake skips the certificate signatures and chain verification).
#
# Usage: bench/mtls.sh [--duration SECS] [--connections N] [--only wasp,envoy]
# WASP_BIN=PATH uses that wasp binary instead of building one (release).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=10
connections=50
only=""
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "duration connections only" "$@"

PIDS=()
proxies=()
for proxy in wasp envoy; do
    if [[ -z "$only" || ",$only," == *",$proxy,"* ]]; then proxies+=("$proxy"); fi
done
if [[ ${#proxies[@]} -eq 0 ]]; then echo "--only: wasp, envoy or both" >&2; exit 2; fi
install_tools
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ ",${proxies[*]}," == *wasp* ]]; then wasp_binary build; else wasp_binary skip; fi
make_work bench-mtls

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

start_upstream

# wasp: B serves STRICT mTLS and plain text, A has one cluster per case.
start_wasp() {
    local b_mtls b_plain tls
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
    b_pid=$LAST_PID
    start_pinned "$PROXY_CPU" wasp-a "$WASP_BIN" run --config "$work/a.yaml" --workers 1
    a_pid=$LAST_PID
}

# Envoy: the same pair. HTTP/1.1 to B, as wasp's clusters speak.
envoy_cluster() {
    # per_connection: `pooled`, or 1 for a new connection per request.
    local name="$1" port="$2" tls="$3" per_connection="$4"
    cat <<YAML
    - name: $name
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: $name
        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $port}}}}]}]
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {http_protocol_options: {}}
YAML
    if [[ "$per_connection" == 1 ]]; then
        echo "          common_http_protocol_options: {max_requests_per_connection: 1}"
    fi
    if [[ "$tls" == mtls ]]; then
        cat <<YAML
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            alpn_protocols: ["http/1.1"]
            tls_certificates: [{certificate_chain: {filename: $work/a.pem}, private_key: {filename: $work/a.key}}]
            validation_context:
              trusted_ca: {filename: $work/ca.pem}
              match_typed_subject_alt_names:
                - {san_type: URI, matcher: {exact: "spiffe://cluster.local/ns/bench/sa/b"}}
YAML
    fi
}

envoy_listener() {
    local name="$1" port="$2" tls="$3" routes="$4"
    cat <<YAML
    - name: $name
      address: {socket_address: {address: 127.0.0.1, port_value: $port}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: $name
                route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: $routes}]}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
YAML
    if [[ "$tls" == mtls ]]; then
        cat <<YAML
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                alpn_protocols: ["http/1.1"]
                tls_certificates: [{certificate_chain: {filename: $work/b.pem}, private_key: {filename: $work/b.key}}]
                validation_context: {trusted_ca: {filename: $work/ca.pem}}
YAML
    fi
}

start_envoy() {
    local b_mtls b_plain b_admin to_app routes
    b_mtls=$(free_port); b_plain=$(free_port); a_port=$(free_port)
    a_admin=$(free_port); b_admin=$(free_port)
    to_app='[{match: {prefix: /}, route: {cluster: app}}]'
    {
        echo "admin: {address: {socket_address: {address: 127.0.0.1, port_value: $b_admin}}}"
        echo "static_resources:"
        echo "  listeners:"
        envoy_listener mtls "$b_mtls" mtls "$to_app"
        envoy_listener plain "$b_plain" plain "$to_app"
        echo "  clusters:"
        envoy_cluster app "$upstream_port" plain pooled
    } > "$work/envoy-b.yaml"
    routes='[{match: {prefix: /mtlsn/}, route: {cluster: mtls-new, prefix_rewrite: /}},
             {match: {prefix: /plainn/}, route: {cluster: plain-new, prefix_rewrite: /}},
             {match: {prefix: /mtls/}, route: {cluster: mtls, prefix_rewrite: /}},
             {match: {prefix: /plain/}, route: {cluster: plain, prefix_rewrite: /}}]'
    {
        echo "admin: {address: {socket_address: {address: 127.0.0.1, port_value: $a_admin}}}"
        echo "static_resources:"
        echo "  listeners:"
        envoy_listener outbound "$a_port" plain "$routes"
        echo "  clusters:"
        envoy_cluster mtls "$b_mtls" mtls pooled
        envoy_cluster plain "$b_plain" plain pooled
        envoy_cluster mtls-new "$b_mtls" mtls 1
        envoy_cluster plain-new "$b_plain" plain 1
    } > "$work/envoy-a.yaml"
    start_pinned "$PROXY_CPU" envoy-b "$ENVOY_BIN" -c "$work/envoy-b.yaml" --concurrency 1 -l error \
        --disable-hot-restart
    b_pid=$LAST_PID
    start_pinned "$PROXY_CPU" envoy-a "$ENVOY_BIN" -c "$work/envoy-a.yaml" --concurrency 1 -l error \
        --disable-hot-restart
    a_pid=$LAST_PID
}

declare -A rps p99 cpu
cases=(plain mtls plainn mtlsn)
for proxy in "${proxies[@]}"; do
    pair_start=${#PIDS[@]}
    "start_$proxy"
    for case in "${cases[@]}"; do
        wait_http "http://127.0.0.1:$a_port/$case/1k"
    done
    for case in "${cases[@]}"; do
        url="http://127.0.0.1:$a_port/$case/1k"
        log "$proxy $case: ${duration}s, $connections connections"
        oha_run -z 2s -c "$connections" "$url" > /dev/null
        ticks=$(( $(cpu_ticks "$a_pid") + $(cpu_ticks "$b_pid") ))
        oha_run -z "${duration}s" -c "$connections" "$url" > "$work/$proxy-$case.json"
        ticks=$(( $(cpu_ticks "$a_pid") + $(cpu_ticks "$b_pid") - ticks ))
        read -r rps["$proxy-$case"] p99["$proxy-$case"] cpu["$proxy-$case"] < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
codes = s.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200")
if bad:
    sys.exit(f"{bad} non-200 answers: {codes}")
requests = max(sum(codes.values()), 1)
cpu_us = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / requests
print(round(s["summary"]["requestsPerSec"]), round(s["latencyPercentiles"]["p99"] * 1000, 2), round(cpu_us))
' "$work/$proxy-$case.json" "$ticks" "$(getconf CLK_TCK)")
    done
    if [[ "$proxy" == wasp ]]; then
        # Upstream TLS handshakes of A's mTLS clusters, and how many resumed.
        curl -fsS "http://127.0.0.1:$a_admin/metrics" | python3 -c '
import re, sys
counts = {}
for line in sys.stdin:
    m = re.match(r"wasp_upstream_tls_handshakes_total\{cluster=\"([^\"]+)\",resumed=\"(true|false)\"\} (\S+)", line)
    if m:
        counts[(m[1], m[2])] = int(float(m[3]))
count = lambda cluster, resumed: counts.get((cluster, resumed), 0)
total = lambda cluster: count(cluster, "true") + count(cluster, "false")
if not counts:
    sys.exit(print("bench: wasp TLS handshakes: not counted by this binary", file=sys.stderr))
if total("mtls") == 0 or total("mtls-new") == 0:
    sys.exit(f"wasp: no upstream TLS handshakes: {counts}")
print("bench: wasp TLS handshakes (of which resumed sessions): pooled cluster %d (%d), new-connection cluster %d (%d)"
      % (total("mtls"), count("mtls", "true"), total("mtls-new"), count("mtls-new", "true")), file=sys.stderr)
'
    fi
    if [[ "$proxy" == envoy ]]; then
        # The mTLS clusters did handshake (a SAN mismatch would have failed
        # the requests); the new-connection one about once per request.
        curl -fsS "http://127.0.0.1:$a_admin/stats?filter=^cluster\\.mtls.*\\.ssl\\.(handshake|session_reused)$" | python3 -c '
import sys
counts = dict(line.split(": ") for line in sys.stdin.read().split("\n") if ": " in line)
count = lambda cluster, stat: int(counts.get(f"cluster.{cluster}.ssl.{stat}", 0))
if count("mtls", "handshake") == 0 or count("mtls-new", "handshake") == 0:
    sys.exit(f"envoy: no upstream TLS handshakes: {counts}")
print("bench: envoy TLS handshakes (of which resumed sessions): pooled cluster %d (%d), new-connection cluster %d (%d)"
      % (count("mtls", "handshake"), count("mtls", "session_reused"),
         count("mtls-new", "handshake"), count("mtls-new", "session_reused")), file=sys.stderr)
'
    fi
    # The pair's two processes stop before the next pair starts.
    for pid in "${PIDS[@]:$pair_start}"; do stop_pid "$pid"; done
done

envoy_version=""
if [[ ",${proxies[*]}," == *envoy* ]]; then
    envoy_version=$("$ENVOY_BIN" --version | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p')
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; before the run: $load_before) on $(nproc) CPUs;" \
    "wasp $WASP_BIN_SOURCE${envoy_version:+; Envoy $envoy_version}"
{
    for proxy in "${proxies[@]}"; do
        for case in "${cases[@]}"; do
            echo "$proxy $case ${rps[$proxy-$case]} ${p99[$proxy-$case]} ${cpu[$proxy-$case]}"
        done
    done
} | python3 -c '
import sys
rows = {}
proxies = []
for line in sys.stdin:
    proxy, case, rps, p99, cpu = line.split()
    rows[(proxy, case)] = (float(rps), float(p99), float(cpu))
    if proxy not in proxies:
        proxies.append(proxy)
names = [("plain", "warm, plain text"), ("mtls", "warm, mutual TLS"),
         ("plainn", "new connection each, plain text"), ("mtlsn", "new connection each, mutual TLS")]
both = len(proxies) == 2
head = "%-34s" % "case"
for p in proxies:
    head += " %12s %13s %11s" % (p + " req/s", p + " p99 ms", p + " CPU us")
if both:
    head += " %17s" % "wasp/envoy req/s"
print(head)
for case, title in names:
    line = "%-34s" % title
    for p in proxies:
        line += " %12.0f %13.2f %11.0f" % rows[(p, case)]
    if both:
        line += " %17.2f" % (rows[("wasp", case)][0] / rows[("envoy", case)][0])
    print(line)
for p in proxies:
    plain, mtls = rows[(p, "plain")][0], rows[(p, "mtls")][0]
    plainn, mtlsn = rows[(p, "plainn")][0], rows[(p, "mtlsn")][0]
    print(f"{p}: warm mTLS costs {100 * (1 - mtls / plain):.1f}% of plain-text requests/s; "
          f"mTLS handshakes/s (A originates + B verifies, one CPU): {mtlsn:.0f}, "
          f"{mtlsn / plainn:.2f} of plain-text connections/s ({plainn:.0f})")
'
