#!/usr/bin/env bash
# Runs every test of the workspace: installs the test peers that come from
# Debian (Emscripten's emcc, for the C filter tests; Prometheus, which the
# telemetry test starts to scrape wasp) when missing and this runs as root, builds the Wasm filters (the end-to-end tests load them),
# then `cargo test` over the whole workspace. Envoy, for the differential
# tests, is installed by those tests themselves.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v emcc >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing emscripten (emcc)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends emscripten >&2
fi
if ! command -v prometheus >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing prometheus" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
fi
# The telemetry test skips without Prometheus unless this is set: here it
# must run (installed above, or the test fails saying so).
export WASP_REQUIRE_PROMETHEUS=1

if [[ -x scripts/build-filters.sh ]]; then
    scripts/build-filters.sh
fi
cargo test --workspace --all-targets --no-fail-fast "$@"
