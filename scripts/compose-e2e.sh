#!/usr/bin/env bash
# End-to-end test of the compose lab, for CI. Brings everything up under a unique project
# name, then asserts from exit codes, health states and mounts (not only log text):
#   - pki finished with 0; postgres, both ledgers, payments and auditor are running and healthy;
#   - payments and auditor told their story with every step as expected;
#   - the attack catalogue (zt-lab attack, the same tool CI runs against any service) exited 0:
#     every attack blocked, its summary PASS with no case NOT BLOCKED, INCONCLUSIVE or SKIPPED;
#     the ledgers are still healthy after;
#   - a forced renewal of every workload certificate mid-demo is reloaded by the ledgers,
#     payments, auditor and postgres, and their next rounds still succeed (no [BAD] step anywhere);
#   - each workload mounts only its own volume, read-only, and nobody but pki mounts the CA;
#   - PostgreSQL (scripts/compose-postgres-check.sh): TLS 1.3 only, non-root, its key 0600;
#     plaintext, no client certificate, a password (even the right one), TLS 1.2 and another
#     workload's genuine certificate refused; the ledger's certificate logs in as role ledger;
#   - a rolling restart of ledger-1, then ledger-2, while payments transfers and the auditor
#     reads without pause: 0 failed RPCs, every transfer in the database exactly once, the
#     total of all balances unchanged, and calls served by both replicas;
#   - `compose stop` (the first half of `down`) stops every long-running service on SIGTERM
#     with exit 0 well before the 10 s SIGKILL (exit 137).
# Always tears down (containers, network, volumes), also on failure. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compose.sh

project="zte2e$(date +%s)$$"
dc() { "${COMPOSE[@]}" --project-name "$project" --profile attacks "$@"; }
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "== FAILED; logs follow"
    dc logs --no-color 2>&1 | tail -n 150 || true
  fi
  # The rolling restart's call drivers, if a failure left them running.
  [ -z "${drivers:-}" ] || { touch "$drivers/stop" 2>/dev/null || true; wait; rm -rf "$drivers"; }
  dc down --volumes --remove-orphans >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
cid() { dc ps -q "$1"; }
state() { docker inspect -f "$2" "$(cid "$1")"; }

# Wait until `cond` (a command) succeeds, at most $1 seconds.
wait_for() {
  local limit=$1; shift
  local start=$SECONDS
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 2
  done
}

./scripts/build-image.sh && ./scripts/build-postgres-image.sh

attacks=(attack)

echo "== compose up (project $project)"
dc up --detach

healthy() { [ "$(state "$1" '{{.State.Health.Status}}')" = healthy ]; }
exited() { [ "$(state "$1" '{{.State.Status}}')" = exited ]; }
all_exited() { for a in "${attacks[@]}"; do exited "$a" || return 1; done; }
# `logged SVC PATTERN`: SVC's logs contain PATTERN. grep reads to the end (no -q): a grep that
# exits at the first match makes `dc logs` die of SIGPIPE, and pipefail turns that into "no".
logged() { dc logs --no-color "$1" 2>/dev/null | grep -e "$2" >/dev/null; }
told_story() { logged "$1" "steps behaved as Zero Trust requires"; }

[ "$(state pki '{{.State.ExitCode}}')" = 0 ] || fail "pki exited non-zero"
wait_for 90 healthy postgres || fail "postgres never became healthy"
for svc in ledger-1 ledger-2; do
  wait_for 90 healthy "$svc" || fail "$svc never became healthy"
done
wait_for 180 all_exited || fail "the attack catalogue still running after 180 s"
for svc in payments auditor; do
  wait_for 60 told_story "$svc" || fail "$svc never finished its story"
  wait_for 60 healthy "$svc" || fail "$svc is not healthy (a failed story exits non-zero)"
done

echo "== verdicts (zt-lab attack)"
code=$(state attack '{{.State.ExitCode}}')
docker logs "$(cid attack)" 2>&1
summary=$(docker logs "$(cid attack)" 2>&1 | tail -n 1)
case "$code" in
  0) ;;
  1) fail "an attack was NOT BLOCKED" ;;
  3) fail "the catalogue was inconclusive (the control call failed or a case got no verdict)" ;;
  *) fail "zt-lab attack exited $code" ;;
esac
grep -q ': PASS$' <<<"$summary" || fail "the catalogue's summary is not PASS: $summary"
# Every case ran: none was skipped for want of material (the lab gives it all).
grep -q ' 0 NOT BLOCKED, 0 INCONCLUSIVE, 0 SKIPPED ' <<<"$summary" || fail "not every case ran: $summary"

echo "== rotation: renew every workload certificate now, while the demo runs"
[ "$(state renewer '{{.State.Running}}')" = true ] || fail "the renewer daemon is not running"
logged renewer "next renewal at" || fail "the renewer reported no schedule"
oks() { dc logs --no-color "$1" 2>/dev/null | grep -c '\[ok \]' || true; }
declare -A before
for svc in payments auditor; do before[$svc]=$(oks "$svc"); done
renewal=$(dc run --rm --no-deps -T renewer zt-ca renew --force --lifetime=1h \
  --ca=/pki/ca/ca.pem --ca-key=/pki/ca/ca.key \
  --target=/pki/ledger/ledger --target=/pki/payments/payments --target=/pki/auditor/auditor \
  --target=/pki/postgres/postgres \
  2>/dev/null) || fail "the forced renewal failed"
echo "$renewal"
[ "$(grep -c "renewed (serial" <<<"$renewal")" = 4 ] || fail "the forced renewal did not renew all four"
reloaded() { logged "$1" "reloaded; new connections use the new material"; }
advanced() { [ "$(oks "$1")" -gt "${before[$1]}" ]; }
for svc in ledger-1 ledger-2 payments auditor; do
  wait_for 30 reloaded "$svc" || fail "$svc did not reload its renewed certificate"
done
wait_for 30 logged postgres "TLS files changed: configuration reloaded" ||
  fail "postgres did not reload its renewed certificate"
for svc in payments auditor; do
  wait_for 40 advanced "$svc" || fail "$svc made no successful round after the rotation"
done
echo "ledger-1, ledger-2, payments, auditor and postgres reloaded; payments and auditor kept succeeding"

./scripts/compose-postgres-check.sh "$project" || fail "a PostgreSQL check failed"

echo "== rolling restart: ledger-1, then ledger-2, while payments and the auditor keep calling"
# Drivers: one transfer (1 cent, a unique idempotency key) after another from the payments
# container and one balance read after another from the auditor's, each a fresh `payments`
# process holding both ledger addresses (the first address alternates, so that both replicas
# take calls), for as long as the restarts take.
sql() { docker exec "$(cid postgres)" psql -X -q -t -A -h /run/postgresql -d ledger -c "$1"; }
total_before=$(sql 'SELECT sum(balance_cents) FROM accounts')
run="rolling-$project"
drivers=$(mktemp -d)
servers() { if [ $(($1 % 2)) = 0 ]; then echo https://ledger-1:8443,https://ledger-2:8443; else echo https://ledger-2:8443,https://ledger-1:8443; fi; }
drive() { # NAME CONTAINER ARGS...: runs ARGS until $drivers/stop exists (at most 300 s)
  local name=$1 container=$2 i=0 until=$((SECONDS + 300)); shift 2
  while [ ! -e "$drivers/stop" ] && [ "$SECONDS" -lt "$until" ]; do
    i=$((i + 1))
    if docker exec "$container" payments --server "$(servers "$i")" "${@//@I@/$i}" \
      >>"$drivers/$name.out" 2>&1; then echo "ok $i"; else echo "FAILED $i"; fi
  done >"$drivers/$name.log"
}
drive transfers "$(cid payments)" transfer --from alice --to bob --amount 0.01 \
  --memo "$run" --idempotency-key "$run-@I@" &
drive reads "$(cid auditor)" balance alice &
sleep 3
ledger_since=$(date +%s)
for svc in ledger-1 ledger-2; do
  took_from=$SECONDS
  # SIGTERM: the replica drains (NOT_SERVING, GOAWAY, calls in flight finish), exits 0.
  docker restart --time 10 "$(cid "$svc")" >/dev/null
  wait_for 60 healthy "$svc" || fail "$svc not healthy again after its restart"
  echo "$svc restarted, healthy again after $((SECONDS - took_from)) s"
  sleep 3
done
touch "$drivers/stop"
wait
count() { grep -c "^$1 " "$drivers/$2.log" || true; }
transfers_ok=$(count ok transfers); transfers_failed=$(count FAILED transfers)
reads_ok=$(count ok reads); reads_failed=$(count FAILED reads)
echo "payments: $transfers_ok transfers, $transfers_failed failed; auditor: $reads_ok reads, $reads_failed failed"
if [ "$transfers_failed" != 0 ] || [ "$reads_failed" != 0 ]; then
  # Every line that is not an answer: the failures' own words.
  grep -v -e '^tx-' -e '^alice: ' "$drivers/transfers.out" "$drivers/reads.out" >&2 || true
  fail "RPCs failed during the rolling restart"
fi
[ "$transfers_ok" -ge 10 ] && [ "$reads_ok" -ge 10 ] || fail "too few calls during the rolling restart to mean anything"
applied=$(sql "SELECT count(*) || ' ' || count(DISTINCT idempotency_key) || ' ' || coalesce(sum(amount_cents), 0) FROM transfers WHERE memo = '$run'")
[ "$applied" = "$transfers_ok $transfers_ok $transfers_ok" ] ||
  fail "transfers in the database (rows, keys, cents) '$applied', expected each $transfers_ok: not every transfer applied exactly once"
total_after=$(sql 'SELECT sum(balance_cents) FROM accounts')
[ "$total_after" = "$total_before" ] || fail "the total of all balances moved from $total_before to $total_after"
echo "database: $transfers_ok transfers applied exactly once ($applied: rows, keys, cents); total of all balances $total_after cents, unchanged"
# Both replicas took calls: each logged allowed decisions since the restarts began.
for svc in ledger-1 ledger-2; do
  served=$(docker logs --since "$ledger_since" "$(cid "$svc")" 2>&1 |
    grep 'Ledger/Transfer' | grep -c 'sa/payments' || true)
  echo "$svc: $served decisions on payments' transfers since the rolling restart began"
  [ "$served" -gt 0 ] || fail "$svc served no transfer: the calls were not balanced"
done
rm -rf "$drivers"
drivers=""

echo "== story"
for svc in payments auditor; do
  dc logs --no-color "$svc" | grep -E '^\S+\s+\| (\[ok \]|\[BAD\]|demo:)' | head -n 8 || true
  if logged "$svc" '\[BAD\]'; then fail "$svc reported a step that was not as expected"; fi
done
for svc in ledger-1 ledger-2 postgres; do
  healthy "$svc" || fail "$svc unhealthy after the attacks and the restarts"
done

echo "== isolation"
mounts() { state "$1" '{{range .Mounts}}{{.Name}}:{{.RW}} {{end}}' | xargs -n1 | sed "s/^${project}_//" | sort | xargs; }
expect_mounts() {
  local got; got=$(mounts "$1")
  [ "$got" = "$2" ] || fail "$1 mounts '$got', expected '$2'"
  echo "$1: $got"
}
expect_mounts ledger-1 "ledger-keys:false"
expect_mounts ledger-2 "ledger-keys:false"
expect_mounts postgres "postgres-data:true postgres-keys:false"
expect_mounts payments "payments-keys:false"
expect_mounts auditor "auditor-keys:false"
expect_mounts renewer "auditor-keys:true ca:false ledger-keys:true payments-keys:true postgres-keys:true"
[ "$(state renewer '{{.HostConfig.NetworkMode}}')" = none ] || fail "the renewer is on a network"
for svc in renewer ledger-1 ledger-2 postgres payments auditor "${attacks[@]}"; do
  [ "$svc" = renewer ] || ! mounts "$svc" | grep -w "ca:.*" >/dev/null || fail "$svc mounts the CA volume"
  [ "$(state "$svc" '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "$svc root filesystem is writable"
  [ "$(state "$svc" '{{.Config.User}}')" = "65532:65532" ] || fail "$svc runs as root"
done
echo "renewer, ledgers, postgres, payments, auditor and the attack catalogue: read-only root, non-root; only the renewer (offline) holds the CA key"

echo "== shutdown: compose stop (SIGTERM, SIGKILL after 10 s), then each exit code"
long_running=(payments auditor renewer ledger-1 ledger-2 postgres)
since() { awk -v now="$(date +%s.%N)" -v then="$1" 'BEGIN { printf "%.2f", now - then }'; }
stop_sent=$(date +%s.%N)
dc stop >/dev/null 2>&1
stop_took=$(since "$stop_sent")
for svc in "${long_running[@]}"; do
  code=$(state "$svc" '{{.State.ExitCode}}')
  finished=$(date -d "$(state "$svc" '{{.State.FinishedAt}}')" +%s.%N)
  stopped=$(awk -v a="$finished" -v b="$stop_sent" 'BEGIN { printf "%.2f", a - b }')
  printf '%-9s exit %s, stopped %s s after the stop began\n' "$svc" "$code" "$stopped"
  [ "$code" = 0 ] || fail "$svc exited $code on SIGTERM (137: killed after the stop timeout)"
done
echo "compose stop took $stop_took s"
awk -v t="$stop_took" 'BEGIN { exit !(t < 8) }' || fail "stopping took $stop_took s: something waited for SIGKILL"

echo "e2e: 1 passed, 0 failed"
