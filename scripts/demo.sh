#!/usr/bin/env bash
# Quickstart: builds meshd, meshctl and the WASM runner (cargo shows its progress), starts a
# local mesh of 3 nodes and deploys workloads that really run:
#   - a WASM Function (wasmtime, in its runner process),
#   - a service of native processes (the process engine, on for your key in a testnet),
#   - a Pod on Podman and a Compose project on Docker when their daemons answer; when they do
#     not, the demo says so and shows the engine fallback and its reason instead.
# It shows discovery by engine from another node, `logs -f`, and self-healing (a node killed
# with SIGKILL, its replica running again elsewhere), then deletes everything and stops.
#
# MESH_DEMO_BIN=DIR uses meshd, meshctl and mesh-wasm-runner from DIR instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ -n "${MESH_DEMO_BIN:-}" ]; then
    bin="$MESH_DEMO_BIN"
else
    echo "Building meshd, meshctl and mesh-wasm-runner (a first build takes several minutes)"
    cargo build -p mesh-node
    # Where cargo put them: its target directory may be elsewhere (CARGO_TARGET_DIR).
    bin="${CARGO_TARGET_DIR:-target}/debug"
fi
ctl="$bin/meshctl"
dir=$(mktemp -d "${TMPDIR:-/tmp}/mesh-demo.XXXXXX")
workloads="ticker hello-wasm web cache"
revived=""
cleanup() {
    # Deleted first: a testnet's nodes leave their workloads running when they stop.
    for w in $workloads; do "$ctl" delete "$w" >/dev/null 2>&1 || true; done
    "$ctl" testnet down --dir "$dir" >/dev/null 2>&1 || true
    # The node started again by hand is not the testnet's to stop.
    if [ -n "$revived" ]; then
        kill "$revived" 2>/dev/null || true
        wait "$revived" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); else bold=; plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ meshctl %s\n' "$*"; "$ctl" "$@"; }
# Polls (every 0.2 s, at most $1 seconds) until the command after it succeeds.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq 1 $((seconds * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out after ${seconds}s waiting for: $*" >&2
    return 1
}
# The value of a top-level field of meshctl's JSON ("phase": "Running" -> Running).
field() { grep -m1 "^  \"$1\"" | sed 's/^[^:]*: *"\{0,1\}\([^",]*\)"\{0,1\},\{0,1\}$/\1/'; }
phase_is() { [ "$("$ctl" get "$1" -o json | field phase)" = "$2" ]; }
nodes_with() { "$ctl" nodes --engine "$1" -o json | grep -c '"peer_id"' || true; }
image_present() {
    case $1 in
        podman) command -v podman >/dev/null && podman image exists localhost/mesh-test:latest ;;
        docker) command -v docker >/dev/null && docker image inspect localhost/mesh-test:latest >/dev/null 2>&1 ;;
    esac
}

# Short rounds, so that the demo's nodes are ready to heal within seconds of starting: a node
# heals once it has heard a full round of announcements (a third of the provider TTL).
rounds=(--meshd-arg=--provider-ttl=15s --meshd-arg=--heartbeat-interval=1s)

say "A mesh of 3 meshd nodes on loopback: the engines they detect, plus native processes"
run testnet up --nodes 3 --dir "$dir" --engines auto,process "${rounds[@]}"
export MESH_NODE="$dir/node-0/meshd.sock"
other="$dir/node-2/meshd.sock"
all_heard() { [ "$("$ctl" nodes -o json | grep -c '"peer_id"')" -ge 3 ]; }
wait_for 30 all_heard
run nodes
run engines

say "A WASM Function: applied through node 0, run to completion, its output read through node 2"
run apply -f examples/hello-function.yaml
wait_for 30 phase_is hello-wasm Succeeded
run --node "$other" get hello-wasm
run --node "$other" logs hello-wasm

say "A service of native processes: 2 replicas placed on 2 nodes"
run apply -f examples/ticker.yaml
run --node "$other" get ticker -o wide
run --node "$other" discover ticker --engine process
printf '$ meshctl logs -f ticker   (3 seconds of it: every replica, prefixed by its node)\n'
timeout 3 "$ctl" --node "$other" logs -f ticker --tail 2 || true

# A container workload: FILE NAME, the engine its format implies and the other one. Applied
# where an engine answers (the fallback says why); else the refusal shows every node's reason.
container_workload() {
    local file=$1 name=$2 implied=$3 other_engine=$4
    if [ "$(nodes_with "$implied")" -gt 0 ] && image_present "$implied"; then
        run apply -f "$file"
        run --node "$other" discover "$name" --engine "$implied"
    elif [ "$(nodes_with "$other_engine")" -gt 0 ] && image_present "$other_engine"; then
        echo "$implied does not answer here; $other_engine does: it falls back to $other_engine, and says why."
        run apply -f "$file"
        run --node "$other" discover "$name" --engine "$other_engine"
    else
        echo "No Podman or Docker daemon answers here (or no local image localhost/mesh-test:latest:"
        echo "sudo scripts/setup-engines.sh installs both and builds it). Nothing else can run a"
        echo "container image, and the apply says so with the reason of every node (it exits 1):"
        run apply -f "$file" || true
    fi
}

say "A Kubernetes Pod: Podman by the manifest's format"
container_workload examples/web-pod.yaml web podman docker

say "A Compose project: Docker by the file's format"
container_workload examples/cache-compose.yaml cache docker podman
run get

say "Self-healing: SIGKILL a node that runs a ticker replica; another node starts it again"
me=$(grep -m1 '"peer_id"' "$dir/node-0/node.json" | sed 's/.*: *"\(.*\)".*/\1/')
victim=""
for n in 1 2; do
    peer=$(grep -m1 '"peer_id"' "$dir/node-$n/node.json" | sed 's/.*: *"\(.*\)".*/\1/')
    if "$ctl" get ticker -o json | grep -q "\"node\": \"$peer\""; then victim=$n; break; fi
done
if [ -z "$victim" ]; then
    echo "both ticker replicas run on node 0 (the one we ask): nothing to kill"
else
    pid=$(grep -m1 '"pid"' "$dir/node-$victim/node.json" | sed 's/[^0-9]//g')
    echo "\$ kill -9 $pid    # node-$victim"
    killed_at=$(date +%s%N)
    kill -9 "$pid"
    healed() {
        local json
        json=$("$ctl" get ticker -o json)
        [ "$(printf '%s' "$json" | grep -c '"phase": "Running"')" -ge 3 ] &&
            ! printf '%s' "$json" | grep -q "\"node\": \"$peer\""
    }
    wait_for 60 healed
    echo "replacement Running, seen $(( ($(date +%s%N) - killed_at) / 1000000 )) ms after the kill (asking every 200 ms)"
    run get ticker -o wide

    say "node-$victim comes back with its store: its slot is filled elsewhere, so exactly 2 remain"
    boot=$(grep -m1 '/p2p/' "$dir/node-0/node.json" | sed 's/.*"\(\/ip4[^"]*\)".*/\1/')
    "$bin/meshd" --data-dir "$dir/node-$victim" --listen /ip4/127.0.0.1/tcp/0 \
        --engines auto,process --trust-file "$dir/trust.yaml" --bootstrap "$boot" \
        --provider-ttl=15s --heartbeat-interval=1s \
        >>"$dir/node-$victim/meshd.log" 2>&1 &
    revived=$!
    back() { "$ctl" --node "$dir/node-$victim/meshd.sock" nodes >/dev/null && all_heard; }
    wait_for 30 back
    two() {
        [ "$("$ctl" get ticker -o json | grep -c '"phase": "Running"')" -eq 3 ] &&
            [ "$("$ctl" --node "$dir/node-$victim/meshd.sock" get ticker -o json | grep -c '"slot"')" -eq 2 ]
    }
    wait_for 60 two
    run --node "$dir/node-$victim/meshd.sock" get ticker -o wide
fi

say "Clean up"
for w in $workloads; do "$ctl" delete "$w" >/dev/null 2>&1 || true; done
run get
echo "(node 0 is $me; the mesh stops now)"
