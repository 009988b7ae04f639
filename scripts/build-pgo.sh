#!/usr/bin/env bash
# Builds the wasp binary with profile-guided optimisation (PGO): an
# instrumented release build serves a training load, LLVM merges the
# profiles it writes, and the release build is made again with them, so
# the compiler lays the hot request path out together and keeps cold code
# out of the instruction cache. The request path's code is larger than a
# CPU's 32 KiB first-level instruction cache (without PGO about one
# instruction in twenty misses it: bench/results/pgo-2026-12-04.md), so
# the layout is worth more here than in most programs.
#
# The training load is the benchmarks' 1 KiB GET through wasp with no
# filters, with the resilience policies on, with five no-op filters and
# with the full mesh chain (jwt-authn → authz → fault → mirror →
# telemetry), over HTTP/1.1 and HTTP/2: the paths every request takes.
# The profile only steers optimisation; behaviour is the same as the plain
# release build's (the test suite runs the debug build).
#
# Needs what bench/run.sh needs (nginx as the upstream, oha; installed
# when missing) and rustup's llvm-tools component (added when missing).
# Prints the optimised binary's path; benchmarks take it as WASP_BIN.
#
# Usage: scripts/build-pgo.sh [--requests N]   (per training run; default 20000)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
requests=20000
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
parse_options "requests" "$@"

install_tools
rustup component add llvm-tools >/dev/null 2>&1 || true
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[[ -x "$profdata" ]] || { log "llvm-profdata not found at $profdata (rustup component add llvm-tools)"; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
pgo="$target_dir/pgo"
raw="$pgo/raw"

# --target keeps build scripts and proc macros uninstrumented; each phase
# has its own target dir, so neither invalidates the other or the plain
# release build.
build() {
    local flags="$1" dir="$2"
    RUSTFLAGS="$flags" cargo build --release -p wasp-proxy --bin wasp \
        --target "$host" --target-dir "$dir" >&2
    echo "$dir/$host/release/wasp"
}

log "building the instrumented wasp (release, -Cprofile-generate)"
instrumented=$(build "-Cprofile-generate=$raw" "$pgo/gen")
rm -rf "$raw"
mkdir -p "$raw"
scripts/build-filters.sh >&2
modules="$root/target/filters"

make_work pgo
start_upstream
# shellcheck source=bench/chains.sh
source "$root/bench/chains.sh"

# train NAME CONFIG: serves the training load through the instrumented
# wasp with CONFIG, then stops it so that it writes its profile. The
# profile covers the start too, Cranelift compiling the chain's modules:
# left out, the compiler's code counts as cold and a start that compiles
# the full chain takes about 10% longer than with the plain build; kept
# in, about 10% less, and the request path gains as much either way
# (bench/results/pgo-2026-12-04.md).
train() {
    local name="$1" config="$2" url pid
    LLVM_PROFILE_FILE="$raw/$name-%p.profraw" start_pinned "$PROXY_CPU" "$name" \
        "$instrumented" run --config "$config" --workers 1
    pid=$LAST_PID
    url="http://127.0.0.1:$proxy_port/1k"
    wait_ready "$url" "$pid" 600 || { log "$name: wasp did not start"; tail -n 20 "$work/$name.log" >&2; exit 1; }
    log "training: $name"
    oha_run -n "$requests" -c 50 "$url" > "$work/$name.h1.json"
    oha_run -n $((requests / 4)) -c 50 --http2 "$url" > "$work/$name.h2.json"
    stop_pid "$pid"
    python3 - "$name" "$work/$name.h1.json" "$work/$name.h2.json" <<'PY'
import json, sys
name, *runs = sys.argv[1:]
for run in runs:
    codes = json.load(open(run)).get("statusCodeDistribution", {})
    if set(codes) != {"200"}:
        sys.exit(f"{name}: the training load did not get 200s only: {codes}")
PY
}

for chain in noop-0 noop-5 mesh-1; do
    wasp_chain_config "$chain"
    train "$chain" "$work/$chain.yaml"
done
OHA_EXTRA=() CURL_EXTRA=()
proxy_port=$(free_port) admin_port=$(free_port)
render bench/configs/wasp-resilience.yaml "$work/resilience.yaml"
train resilience "$work/resilience.yaml"
stop_all

compgen -G "$raw/*.profraw" >/dev/null || { log "the training runs wrote no profile"; exit 1; }
"$profdata" merge -o "$pgo/merged.profdata" "$raw"/*.profraw
# Named by its content: cargo sees RUSTFLAGS change (and rebuilds) exactly
# when the profile did, never reusing a build made with an older one.
merged="$pgo/wasp-$(sha256sum "$pgo/merged.profdata" | cut -c1-16).profdata"
mv "$pgo/merged.profdata" "$merged"
log "merged $(find "$raw" -name '*.profraw' | wc -l) profiles into $merged"

# The profile marks functions hot or unlikely (`.text.hot.*`,
# `.text.unlikely.*`); the linker keeps those prefixes so that the hot
# functions lie together and the cold ones out of their way.
log "building the optimised wasp (release, -Cprofile-use)"
build "-Cprofile-use=$merged -Clink-arg=-Wl,-z,keep-text-section-prefix" "$pgo/use"
