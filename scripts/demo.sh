#!/usr/bin/env bash
# Quickstart: builds meshd, meshctl and the WASM runner, starts a local mesh of 3 nodes with
# the mock and wasm engines, deploys examples/hello-pod.yaml with 2 replicas,
# examples/shop-compose.yaml and the WASM function examples/hello-function.yaml, shows what
# the CLI shows from different nodes, then deletes the workloads and stops the mesh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

cargo build -q -p mesh-node   # meshd, meshctl, mesh-wasm-runner
ctl=target/debug/meshctl
dir=$(mktemp -d)
trap '"$ctl" testnet down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

run() { printf '\n$ meshctl %s\n' "$*"; "$ctl" "$@"; }
run testnet up --nodes 3 --dir "$dir" --engines mock,wasm
export MESH_NODE="$dir/node-0/meshd.sock"
other="$dir/node-2/meshd.sock"
# Wait until the first node hears both others (heartbeats), bounded.
for _ in $(seq 1 100); do
  [ "$("$ctl" nodes -o json | grep -c '"peer_id"')" -ge 3 ] && break
  sleep 0.1
done

run nodes
run apply -f examples/hello-pod.yaml --replicas 2
run apply -f examples/shop-compose.yaml
run apply -f examples/hello-pod.yaml --replicas 2
run --node "$other" get
run --node "$other" discover hello --engine mock
run describe hello
run --node "$other" logs hello --tail 4
run apply -f examples/hello-function.yaml
# A run-to-completion function: wait (bounded) until it has exited.
for _ in $(seq 1 100); do
  "$ctl" get hello-wasm -o json | grep -q '"phase": "Succeeded"' && break
  sleep 0.1
done
run --node "$other" get hello-wasm
run --node "$other" logs hello-wasm
run --node "$other" delete hello
run delete hello-wasm
run delete shop
run --node "$other" discover hello
