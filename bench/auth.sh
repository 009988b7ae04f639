#!/usr/bin/env bash
# Benchmark of the shipped authentication chain: the same 1 KiB GET as
# bench/run.sh, each request carrying a valid bearer token of subject alice,
# through
#   wasp-none / envoy-v8-none          no filters (the token is ignored)
#   wasp-auth / envoy-v8-auth          jwt-authn → authz, the same .wasm files
#   wasp-auth-nocache                  the same with jwt_cache_size: 0
#   envoy-native-auth(-cache)          Envoy's native jwt_authn + rbac (without
#                                      and with its jwt_cache_config)
# Each proxy is pinned to CPU 0 with one worker, the upstream and oha to
# CPU 1 (bench/lib.sh). Per target: max requests/s, CPU per request and RSS
# from closed-loop runs, best of --rounds rounds taken in turn; the summary
# gives the chain's extra CPU per request against the same proxy without
# filters and its share of that proxy's requests/s. Figures go to stdout and
# bench/results/auth-latest.md.
#
# Usage: bench/auth.sh [--duration SECS] [--connections N] [--rounds N] [--alg RS256|ES256|EdDSA]
# WASP_BIN=PATH uses that wasp binary instead of building one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=10
connections=50
rounds=2
alg=RS256
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "duration connections rounds alg" "$@"

install_tools
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wasp_binary build
log "building the filters and the token fixture"
scripts/build-filters.sh >&2
make_work authbench
cargo run -q -p wasp-e2e --bin jwt-fixture > "$work/fixture.json"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"][sys.argv[2]])' "$work/fixture.json" "$alg")
OHA_EXTRA=(-H "authorization: Bearer $token")

mkdir -p "$root/bench/results"
start_upstream
python3 bench/auth/configs.py "$work/fixture.json" "$root/target/filters" "$work" "$upstream_port"

targets=(wasp-none wasp-auth wasp-auth-nocache envoy-v8-none envoy-v8-auth envoy-native-auth envoy-native-auth-cache)
declare -A url_of pid_of
results="$work/results.jsonl"
: > "$results"
for target in "${targets[@]}"; do
    proxy_port=$(free_port)
    admin_port=$(free_port)
    render "$work/$target.yaml" "$work/$target.run.yaml"
    case "$target" in
        wasp-*) start_pinned "$PROXY_CPU" "$target" "$WASP_BIN" run --config "$work/$target.run.yaml" --workers 1 ;;
        envoy-*) start_pinned "$PROXY_CPU" "$target" "$ENVOY_BIN" -c "$work/$target.run.yaml" --concurrency 1 -l error --disable-hot-restart ;;
    esac
    url="http://127.0.0.1:$proxy_port/1k"
    ok=""
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null -H "authorization: Bearer $token" "$url" 2>/dev/null; then ok=1; break; fi
        kill -0 "$LAST_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z "$ok" ]]; then
        log "$target did not answer 200: $(grep -v '^\s*$' "$work/$target.log" | tail -n 1 | cut -c1-200)"
        exit 1
    fi
    # A request without a token is let through by jwt-authn and refused by authz.
    if [[ "$target" != *-none ]]; then
        status=$(curl -s -o /dev/null -w '%{http_code}' "$url")
        [[ "$status" == 403 ]] || { log "$target answered $status, not 403, to a request without a token"; exit 1; }
    fi
    url_of[$target]="$url"
    pid_of[$target]=$LAST_PID
done

for ((round = 1; round <= rounds; round++)); do
    for target in "${targets[@]}"; do
        closed_loop "$target" "${url_of[$target]}" "${pid_of[$target]}" >> "$results"
    done
done

python3 - "$results" "$alg" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "${WASP_BIN_SOURCE}" <<'PY' | tee "$root/bench/results/auth-latest.md"
import json, sys
path, alg, load_before, load_after, source = sys.argv[1:6]
best = {}
for line in open(path):
    r = json.loads(line)
    if r["errors"]:
        print(f"warning: {r['name']} had {r['errors']} errors", file=sys.stderr)
    if r["name"] not in best or r["rps"] > best[r["name"]]["rps"]:
        best[r["name"]] = r
print(f"# jwt-authn → authz ({alg} tokens)\n")
print(f"wasp {source}; load average before {load_before}, after {load_after}.\n")
print("| target | req/s | CPU µs/req | RSS MiB | extra CPU µs/req | req/s vs no filters |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in best.items():
    cpu = r.get("cpu_s_per_1k", 0) * 1000
    base = best.get(("wasp" if name.startswith("wasp") else "envoy-v8") + "-none")
    extra = ratio = ""
    if base and not name.endswith("-none"):
        extra = f"{cpu - base['cpu_s_per_1k'] * 1000:.1f}"
        ratio = f"{r['rps'] / base['rps']:.0%}"
    print(f"| {name} | {r['rps']:.0f} | {cpu:.1f} | {r.get('rss_mib', 0):.1f} | {extra} | {ratio} |")
PY
