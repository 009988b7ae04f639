# Chains of Wasm filters for the benchmarks (bench/filters.sh,
# bench/memory.sh): what each chain is made of and how it is written into
# wasp's and Envoy's configuration. Sourced after bench/lib.sh, with
# $modules (the built .wasm files) and $work set.

# The mesh chain authenticates every request: an HS256 token of issuer
# `bench` (expiring in 2100) signed with this inline key, sent by oha to
# every target alike.
mesh_key="bench-secret-bench-secret-bench!"
read -r mesh_jwks mesh_token < <(python3 - "$mesh_key" <<'PY'
import base64, hashlib, hmac, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = sys.argv[1].encode()
jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "k": b64(key)}]}, separators=(",", ":"))
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"iss": "bench", "sub": "load", "exp": 4102444800}).encode())
sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(json.dumps(jwks), f"{head}.{body}.{sig}")
PY
)

# mesh_token_for CHAINS: sends the mesh chain's token with every oha and
# curl request when CHAINS (comma-separated) has a mesh chain.
CURL_EXTRA=()
mesh_token_for() {
    if [[ ",$1," == *",mesh-"* || ",$1," == *",meshpart-"* ]]; then
        OHA_EXTRA=(-H "authorization: Bearer $mesh_token")
        CURL_EXTRA=(-H "authorization: Bearer $mesh_token")
    fi
}

# chain_headers CHAIN: the request headers the `chain` example of
# wasp-filter-host (bench/chain-host.sh, bench/guest-profile.sh) sends
# with CHAIN, in CHAIN_HEADERS: the mesh chains' token.
chain_headers() {
    CHAIN_HEADERS=()
    if [[ $1 == mesh-* || $1 == meshpart-* ]]; then
        CHAIN_HEADERS=("authorization: Bearer $mesh_token")
    fi
}

# chain_modules CHAIN: one line per plugin of a chain (noop-N, rewrite-N,
# mesh-1, meshpart-K): its module, a tab, and its JSON configuration (may
# be empty). mesh-1 is the full chain jwt-authn → authz → fault (0%) →
# mirror (0%) → telemetry (with its defaults); meshpart-K is its first K
# filters (1–5), so that the differences between K and K−1 give each
# filter's own cost.
chain_modules() {
    local kind="${1%-*}" count="${1##*-}"
    case "$kind" in
        noop) for ((i = 0; i < count; i++)); do printf '%s\t\n' "$modules/bench_noop.wasm"; done ;;
        rewrite) for ((i = 0; i < count; i++)); do printf '%s\t\n' "$modules/bench_rewrite.wasm"; done ;;
        mesh)
            [[ "$count" == 1 ]] || { log "mesh chains have one of each filter: mesh-1"; exit 2; }
            printf '%s\t%s\n' \
                "$modules/jwt_authn.wasm" "{\"require\": true, \"providers\": [{\"issuer\": \"bench\", \"jwks\": $mesh_jwks}]}" \
                "$modules/wasp_authz.wasm" '{"policies": [{"name": "bench", "action": "ALLOW", "rules": [{"from": [{"source": {"request_principals": ["bench/*"]}}]}]}]}' \
                "$modules/wasp_filter_fault.wasm" '{"abort": {"http_status": 503, "percentage": {"value": 0}}, "delay": {"fixed_delay": "1s", "percentage": {"value": 0}}}' \
                "$modules/wasp_filter_mirror.wasm" '{"cluster": "shadow", "percentage": {"value": 0}}' \
                "$modules/wasp_filter_telemetry.wasm" '{}' ;;
        meshpart)
            ((count >= 1 && count <= 5)) || { log "meshpart-K has the first K (1–5) filters of mesh-1"; exit 2; }
            chain_modules mesh-1 | head -n "$count" ;;
        *) log "unknown chain $1 (noop-N, rewrite-N, mesh-1 or meshpart-K)"; exit 2 ;;
    esac
}

# plugin_lines PROXY CHAIN: one config line per plugin, indented for the templates.
plugin_lines() {
    local proxy="$1" chain="$2" i=0 module configuration runtime wasp_conf envoy_conf
    while IFS=$'\t' read -r module configuration; do
        [[ -n "$module" ]] || continue
        i=$((i + 1))
        wasp_conf="" envoy_conf=""
        if [[ -n "$configuration" ]]; then
            # JSON is YAML; Envoy takes it as a StringValue (single-quoted: no ' in it).
            wasp_conf=", configuration: $configuration"
            envoy_conf=", configuration: { \"@type\": type.googleapis.com/google.protobuf.StringValue, value: '$configuration' }"
        fi
        case "$proxy" in
            wasp)
                echo "      - { name: p$i, module: \"$module\", failure_policy: fail_closed$wasp_conf }" ;;
            envoy-*)
                runtime="envoy.wasm.runtime.${proxy#envoy-}"
                # One VM id per plugin: one VM per plugin per worker, as in wasp.
                echo "                  - { name: envoy.filters.http.wasm, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, config: { name: p$i, root_id: \"\"$envoy_conf, vm_config: { vm_id: p$i, runtime: $runtime, code: { local: { filename: \"$module\" } } } } } }" ;;
        esac
    done < <(chain_modules "$chain")
}

# render_chain PROXY CHAIN OUT: the proxy's configuration with the chain.
render_chain() {
    local proxy="$1" chain="$2" out="$3" template
    case "$proxy" in
        wasp)
            template=bench/configs/wasp-filters.yaml
            # An empty chain is the plain configuration.
            if [[ "$chain" == *-0 ]]; then template=bench/configs/wasp.yaml; fi ;;
        envoy-*) template=bench/configs/envoy-filters.yaml ;;
    esac
    plugin_lines "$proxy" "$chain" > "$out.plugins"
    render "$template" "$out.tmp"
    sed -e "/@PLUGINS@/{r $out.plugins" -e 'd}' "$out.tmp" > "$out"
}

# wasp_chain_config CHAIN: for one wasp run of CHAIN, its token (or none)
# on every oha and curl request, free proxy and admin ports, and its
# configuration in $work/CHAIN.yaml.
wasp_chain_config() {
    OHA_EXTRA=() CURL_EXTRA=()
    mesh_token_for "$1"
    proxy_port=$(free_port) admin_port=$(free_port)
    render_chain wasp "$1" "$work/$1.yaml"
}

# wait_ready URL PID [SECONDS]: polls every 10 ms until URL answers 200,
# PID exits, or SECONDS (default 60) have passed.
wait_ready() {
    local url="$1" pid="$2" deadline=$((SECONDS + ${3:-60}))
    while ((SECONDS < deadline)); do
        if curl -fsS -o /dev/null "${CURL_EXTRA[@]}" "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}
