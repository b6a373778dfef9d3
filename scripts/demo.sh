#!/usr/bin/env bash
# The main job: start a local cluster (one requester and two compute nodes, each its own OS
# process, talking mutual-TLS gRPC), run a Docker job and a WASM job (a C program compiled to
# WASI), a job reading data by CID, a verified job run on both nodes and compared by results
# CID, print their output, download their results, and stop the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/_python_env.sh

API_PORT="${BACALHAU_DEMO_API_PORT:-1234}"
if python3 - "$API_PORT" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)  # taken
sys.exit(1)
PY
then
  echo "demo: port $API_PORT is taken; using a free one" >&2
  API_PORT=0
fi

WORK="$(mktemp -d -t bacalhau-demo-XXXXXX)"
DEVSTACK_PID=""
cleanup() {
  if [ -n "$DEVSTACK_PID" ] && kill -0 "$DEVSTACK_PID" 2>/dev/null; then
    echo "== stopping the devstack"
    kill -TERM "$DEVSTACK_PID"
    wait "$DEVSTACK_PID" || true
  fi
}
trap cleanup EXIT

echo "== starting a devstack (data in $WORK)"
bacalhau devstack --compute-nodes 2 --api-port "$API_PORT" --data-dir "$WORK/devstack" \
  >"$WORK/devstack.log" 2>&1 &
DEVSTACK_PID=$!
for _ in $(seq 1 600); do
  [ -f "$WORK/devstack/devstack.json" ] && break
  if ! kill -0 "$DEVSTACK_PID" 2>/dev/null; then
    echo "the devstack failed to start:" >&2
    cat "$WORK/devstack.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -f "$WORK/devstack/devstack.json" ] || { echo "devstack not ready after 60 s" >&2; exit 1; }
API="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["APIAddress"])' \
  "$WORK/devstack/devstack.json")"
export BACALHAU_API_HOST="${API%:*}" BACALHAU_API_PORT="${API##*:}"
bacalhau node list

echo
echo "== a Docker job"
DOCKER_JOB="$(bacalhau docker run --id-only -o out:/outputs local/busybox:1.37 -- \
  sh -c 'echo "hello from docker on $(uname -m)"; echo 42 > /outputs/answer.txt')"
bacalhau job describe "$DOCKER_JOB" | sed -n '1,12p'
bacalhau job get "$DOCKER_JOB" --output-dir "$WORK/results/docker" >/dev/null
echo "-- stdout:            $(cat "$WORK/results/docker/stdout")"
echo "-- exitCode:          $(cat "$WORK/results/docker/exitCode")"
echo "-- out/answer.txt:    $(cat "$WORK/results/docker/out/answer.txt")"

echo
echo "== a WASM job (scripts/wasm/wordcount.c compiled to WASI)"
WASM_JOB="$(bacalhau wasm run --id-only -o outputs:/outputs .build/wasm/wordcount.wasm -- \
  /outputs "compute over data" "runs next to the data")"
bacalhau job get "$WASM_JOB" --output-dir "$WORK/results/wasm" >/dev/null
echo "-- stdout:            $(cat "$WORK/results/wasm/stdout")"
echo "-- exitCode:          $(cat "$WORK/results/wasm/exitCode")"
echo "-- outputs/counts.txt:"
sed 's/^/     /' "$WORK/results/wasm/outputs/counts.txt"

echo
echo "== compute over data: a file stored by CID, read by a job (its node fetches the blocks)"
printf 'the quick brown fox\njumps over the lazy dog\n' >"$WORK/words.txt"
CID="$(bacalhau data add "$WORK/words.txt")"
echo "-- data add:          $CID"
DATA_JOB="$(bacalhau docker run --id-only -i "ipfs://$CID:/inputs/words.txt" local/busybox:1.37 -- \
  wc -w /inputs/words.txt)"
echo "-- job logs:          $(bacalhau job logs "$DATA_JOB")"

echo
echo "== verified results: the same WASM job on both compute nodes, deterministic, compared by CID"
VERIFIED_JOB="$(bacalhau wasm run --verify --id-only -o outputs:/outputs .build/wasm/wordcount.wasm -- \
  /outputs "the same code with the same data" "gives the same result")"
bacalhau job describe "$VERIFIED_JOB" | sed -n '/^Verification$/,/^$/p'

echo
echo "== hello.wasm, with its arguments and environment"
bacalhau wasm run -e GREETING=hola .build/wasm/hello.wasm -- from the demo

echo
bacalhau job list
echo
echo "Results are in $WORK/results"
