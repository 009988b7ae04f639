#!/usr/bin/env bash
# Builds every Wasm filter crate of the workspace (examples/filter-template,
# tests/filters/*, filters/*), plus any filter crate directories given as
# arguments, to wasm32-wasip1 with the size-optimised `wasm` profile, and puts
# each module at target/filters/<lib name>.wasm.
#
# AssemblyScript filters (tests/filters/*/ with a package.json and
# assembly/index.ts, e.g. tests/filters/as-features) are built with their
# pinned `asc` to target/filters/<directory name, - as _>.wasm; `npm ci`
# installs their packages (package-lock.json) when node_modules is missing.
# Without node and npm they are skipped with a message.
#
#   scripts/build-filters.sh                      # the workspace's filters
#   scripts/build-filters.sh ../my-filter         # plus your own crate
#   WASP_WASM_TOOLCHAIN=debian scripts/build-filters.sh   # force the -Zbuild-std way
#   scripts/build-filters.sh --clippy             # lint instead of build (see below)
#
# --clippy runs `cargo clippy -D warnings` for wasm32-wasip1 over the SDK
# (wasp-filter-sdk, wasp-abi) and the same filter crates instead of building
# them; it lints the code that only exists on wasm32 (the ABI imports, the
# exports). It needs the rustup target (the Debian toolchain has no clippy).
#
# Toolchain: `rustup target add wasm32-wasip1` when that works; otherwise
# Debian's rustc-web with its std sources (-Zbuild-std), installing the
# packages when they are missing and this runs as root. Wasm builds use their
# own target dir (target/wasm) so they never invalidate native builds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=wasm32-wasip1
wasm_dir="$root/target/wasm"
out_dir="$root/target/filters"
debian_packages=(rustc-web rust-web-src rust-web-llvm lld-22 wasi-libc)

log() { echo "build-filters: $*" >&2; }

clippy=false
if [[ ${1:-} == --clippy ]]; then
    clippy=true
    shift
fi

# Filter crates: directories whose Cargo.toml declares a cdylib.
crates=()
for manifest in examples/filter-template/Cargo.toml tests/filters/*/Cargo.toml filters/*/Cargo.toml; do
    [[ -f $manifest ]] && grep -q cdylib "$manifest" && crates+=("$root/$(dirname "$manifest")")
done
for arg in "$@"; do
    dir="$(cd "$arg" && pwd)" || { log "no such crate directory: $arg"; exit 2; }
    [[ -f $dir/Cargo.toml ]] || { log "$arg has no Cargo.toml"; exit 2; }
    grep -q cdylib "$dir/Cargo.toml" || { log "$arg/Cargo.toml does not declare crate-type cdylib"; exit 2; }
    crates+=("$dir")
done
# AssemblyScript filters: directories with a package.json and assembly/index.ts.
as_filters=()
if ! $clippy; then
    for manifest in tests/filters/*/package.json; do
        [[ -f $manifest && -f $(dirname "$manifest")/assembly/index.ts ]] && as_filters+=("$root/$(dirname "$manifest")")
    done
fi

# Builds each AssemblyScript filter with its pinned compiler (see its package.json).
build_assemblyscript() {
    [[ ${#as_filters[@]} -gt 0 ]] || return 0
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "node and npm not found: skipping the AssemblyScript filters (${as_filters[*]#"$root"/})"
        return 0
    fi
    mkdir -p "$out_dir" "$wasm_dir/as"
    for dir in "${as_filters[@]}"; do
        local lib
        lib="$(basename "$dir")"
        lib="${lib//-/_}"
        if [[ ! -d $dir/node_modules ]]; then
            log "installing the packages of ${dir#"$root"/} (npm ci)"
            (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        fi
        log "building ${dir#"$root"/} (AssemblyScript)"
        # --use abort=abort_proc_exit: an abort logs and calls proc_exit, as
        # @solo-io/proxy-runtime asks; the module has no other host imports.
        (cd "$dir" && npx --no-install asc assembly/index.ts -b "$wasm_dir/as/$lib.wasm" \
            --use abort=abort_proc_exit --optimize >&2)
        if ! cmp -s "$wasm_dir/as/$lib.wasm" "$out_dir/$lib.wasm"; then
            cp "$wasm_dir/as/$lib.wasm" "$out_dir/$lib.wasm"
        fi
        log "$out_dir/$lib.wasm ($(wc -c <"$out_dir/$lib.wasm") bytes)"
    done
}

if [[ ${#crates[@]} -eq 0 ]]; then
    log "no filter crates found"
    build_assemblyscript
    exit 0
fi

# The size-optimised profile, also for crates outside this workspace (same
# values as [profile.wasm] in the root Cargo.toml).
export CARGO_PROFILE_WASM_INHERITS=release CARGO_PROFILE_WASM_OPT_LEVEL=z \
    CARGO_PROFILE_WASM_LTO=true CARGO_PROFILE_WASM_CODEGEN_UNITS=1 \
    CARGO_PROFILE_WASM_PANIC=abort CARGO_PROFILE_WASM_STRIP=true CARGO_PROFILE_WASM_DEBUG=false

cargo_args=(--target "$target" --profile wasm --target-dir "$wasm_dir")
# WASP_WASM_TOOLCHAIN=rustup|debian forces one of the two ways.
toolchain="${WASP_WASM_TOOLCHAIN:-auto}"
if [[ $toolchain == rustup ]] || { [[ $toolchain == auto ]] && {
    rustup target list --installed 2>/dev/null | grep -qx "$target" \
        || timeout 120 rustup target add "$target" >/dev/null 2>&1
}; }; then
    log "toolchain: rustup target $target"
elif $clippy; then
    log "--clippy needs the rustup target $target (WASP_WASM_TOOLCHAIN=$toolchain; 'rustup target add $target')"
    exit 1
else
    missing=()
    for pkg in "${debian_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing ${missing[*]}"
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
        else
            log "cannot build for $target: 'rustup target add $target' failed and the Debian packages"
            log "${missing[*]} are missing (install them as root; see the filter-sdk README)"
            exit 1
        fi
    fi
    log "toolchain: Debian rustc-web with -Zbuild-std"
    export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-L/usr/lib/wasm32-wasi -C link-self-contained=no"
    cargo_args+=(-Zbuild-std=std,panic_abort)
fi

if $clippy; then
    # The SDK first (it has the wasm32-only code), then each filter crate. The
    # dev profile and its own target dir: checks never touch the modules' builds.
    lint_dirs=("$root/filter-sdk/abi" "$root/filter-sdk" "${crates[@]}")
    for dir in "${lint_dirs[@]}"; do
        log "clippy ${dir#"$root"/}"
        cargo clippy --quiet --target "$target" --target-dir "$wasm_dir" \
            --manifest-path "$dir/Cargo.toml" --lib -- -D warnings
    done
    exit 0
fi

# wasm-opt (Debian's binaryen) shrinks modules by another ~15%; optional.
if ! command -v wasm-opt >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing binaryen (wasm-opt)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binaryen; } >&2 \
        || log "binaryen not installed; modules stay unoptimised by wasm-opt"
fi
# The features rustc's wasm32-wasip1 output uses; nothing newer, so modules
# stay loadable by every proxy-wasm host.
wasm_opt_features=(--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals)

mkdir -p "$out_dir"
for dir in "${crates[@]}"; do
    name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)"
    lib="${name//-/_}"
    log "building $name"
    cargo build --quiet "${cargo_args[@]}" --manifest-path "$dir/Cargo.toml" --lib
    built="$wasm_dir/$target/wasm/$lib.wasm"
    [[ -f $built ]] || { log "cargo did not produce $built"; exit 1; }
    final="$built"
    if command -v wasm-opt >/dev/null; then
        if wasm-opt -Oz "${wasm_opt_features[@]}" --strip-debug --strip-producers \
            "$built" -o "$built.opt" 2>"$wasm_dir/wasm-opt.log"; then
            final="$built.opt"
        else
            log "wasm-opt failed on $lib.wasm (see $wasm_dir/wasm-opt.log); using it unoptimised"
        fi
    fi
    if ! cmp -s "$final" "$out_dir/$lib.wasm"; then
        cp "$final" "$out_dir/$lib.wasm"
    fi
    log "$out_dir/$lib.wasm ($(wc -c <"$out_dir/$lib.wasm") bytes)"
done

build_assemblyscript
