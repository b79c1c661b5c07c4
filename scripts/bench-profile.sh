#!/usr/bin/env bash
# Instructions per RPC of the echo server, per variant, counted by callgrind: stable on a
# shared machine where timings are not. For each variant: the server runs under callgrind
# (core 0) with collection off; the load generator (core 1) connects, warms up, and switches
# collection on for exactly its measured window of DURATION; the profile is dumped, and the
# instructions are divided by the RPCs the load generator completed in that window. Prints one line per variant and the top functions of each
# (inclusive and exclusive), with the files kept in OUT for callgrind_annotate.
#
#   scripts/bench-profile.sh [OUT]        (DURATION=15s PAYLOAD=64 VARIANTS="plain mtls mtls-authz"
#                                          CONNECTIONS=4 CONCURRENCY=16)
#
# CHURN=full or CHURN=resumed profiles connections instead of RPCs: 8 workers each looping
# connect, handshake, one RPC, close (full handshakes, or each resuming the previous session),
# so the figure is instructions per connection.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/bench-profile}
duration=${DURATION:-15s}
payload=${PAYLOAD:-64}
variants=${VARIANTS:-plain mtls mtls-authz}
churn=${CHURN:-}
shape=(--connections "${CONNECTIONS:-4}" --concurrency "${CONCURRENCY:-16}")
[ -z "$churn" ] || shape=(--connections 8 --concurrency 1 --churn "$churn")
bench=${ZT_BENCH:-target/release/zt-bench}

command -v valgrind >/dev/null || { echo "error: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ -x "$bench" ] || cargo build --release -p zt-bench
rm -rf "$out"
mkdir -p "$out"
"$bench" pki --dir "$out/pki"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

for variant in $variants; do
  log="$out/$variant.serve"
  taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/callgrind.$variant" \
    "$bench" serve --variant "$variant" --pki "$out/pki" >"$log" 2>"$out/$variant.valgrind" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    grep -q '^listening ' "$log" 2>/dev/null && break
    sleep 0.1
  done
  addr=$(sed -n 's/^listening //p' "$log")
  [ -n "$addr" ] || { echo "error: $variant did not start" >&2; cat "$out/$variant.valgrind" >&2; exit 1; }
  taskset -c 1 "$bench" load --variant "$variant" --target "$addr" --pki "$out/pki" \
    "${shape[@]}" --payload "$payload" --warmup 2s --duration "$duration" --server-pid "$pid" \
    --callgrind "$pid" >"$out/$variant.json"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  requests=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' "$out/$variant.json")
  dump="$out/callgrind.$variant.1" # the dump taken above; the file without .1 is the exit's
  total=$(sed -n "s/^totals: *//p" "$dump")
  echo "$variant${churn:+ (churn: $churn)}: $requests RPCs, $total instructions, $((total / requests)) per RPC ($dump)"
  callgrind_annotate --inclusive=yes --threshold=99.9 "$dump" >"$out/$variant.inclusive.txt" 2>/dev/null || true
  callgrind_annotate --threshold=99.9 "$dump" >"$out/$variant.exclusive.txt" 2>/dev/null || true
done
echo "function tables: $out/*.inclusive.txt, $out/*.exclusive.txt"
