#!/usr/bin/env bash
# Runs every test of the workspace: builds the Wasm filters first (the
# end-to-end tests load them), then `cargo test` over the whole workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -x scripts/build-filters.sh ]]; then
    scripts/build-filters.sh
fi
cargo test --workspace --all-targets "$@"
