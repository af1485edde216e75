#!/usr/bin/env bash
# Quickstart: builds meshd and meshctl, starts a node with the mock engine in a temporary
# directory, deploys examples/hello-pod.yaml and examples/shop-compose.yaml, shows what the
# CLI shows, then deletes the workloads and stops the node.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

cargo build -q --bin meshd --bin meshctl
bin=target/debug
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

"$bin/meshd" --data-dir "$dir" --engines mock --log warn &
pid=$!
export MESH_NODE="$dir/meshd.sock"
for _ in $(seq 1 300); do "$bin/meshctl" engines >/dev/null 2>&1 && break; sleep 0.1; done

run() { printf '\n$ meshctl %s\n' "$*"; "$bin/meshctl" "$@"; }
run engines
run apply -f examples/hello-pod.yaml
run apply -f examples/shop-compose.yaml
run apply -f examples/hello-pod.yaml
run get
run describe hello
run logs hello --tail 5
run get hello -o json
run delete hello
run delete shop
