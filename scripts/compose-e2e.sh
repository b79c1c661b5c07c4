#!/usr/bin/env bash
# End-to-end test of the compose lab, for CI. Brings everything up under a unique project
# name, then asserts from exit codes, health states and mounts (not only log text):
#   - pki finished with 0; ledger, payments and auditor are running and healthy;
#   - payments and auditor told their story with every step as expected;
#   - the attack catalogue (zt-lab attack, the same tool CI runs against any service) exited 0:
#     every attack blocked; its JUnit report has no failure; the ledger is still healthy after;
#   - a forced renewal of every workload certificate mid-demo is reloaded by ledger, payments
#     and auditor, and their next rounds still succeed (no [BAD] step anywhere);
#   - each workload mounts only its own volume, read-only, and nobody but pki mounts the CA;
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

./scripts/build-image.sh

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
wait_for 90 healthy ledger || fail "ledger never became healthy"
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
  2>/dev/null) || fail "the forced renewal failed"
echo "$renewal"
[ "$(grep -c "renewed (serial" <<<"$renewal")" = 3 ] || fail "the forced renewal did not renew all three"
reloaded() { logged "$1" "reloaded; new connections use the new material"; }
advanced() { [ "$(oks "$1")" -gt "${before[$1]}" ]; }
for svc in ledger payments auditor; do
  wait_for 30 reloaded "$svc" || fail "$svc did not reload its renewed certificate"
done
for svc in payments auditor; do
  wait_for 40 advanced "$svc" || fail "$svc made no successful round after the rotation"
done
echo "ledger, payments and auditor reloaded; payments and auditor kept succeeding"

echo "== story"
for svc in payments auditor; do
  dc logs --no-color "$svc" | grep -E '^\S+\s+\| (\[ok \]|\[BAD\]|demo:)' | head -n 8 || true
  if logged "$svc" '\[BAD\]'; then fail "$svc reported a step that was not as expected"; fi
done
healthy ledger || fail "ledger unhealthy after the attacks"
[ "$(state ledger '{{.State.Running}}')" = true ] || fail "ledger stopped"

echo "== isolation"
mounts() { state "$1" '{{range .Mounts}}{{.Name}}:{{.RW}} {{end}}' | xargs -n1 | sed "s/^${project}_//" | sort | xargs; }
expect_mounts() {
  local got; got=$(mounts "$1")
  [ "$got" = "$2" ] || fail "$1 mounts '$got', expected '$2'"
  echo "$1: $got"
}
expect_mounts ledger "ledger-keys:false"
expect_mounts payments "payments-keys:false"
expect_mounts auditor "auditor-keys:false"
expect_mounts renewer "auditor-keys:true ca:false ledger-keys:true payments-keys:true"
[ "$(state renewer '{{.HostConfig.NetworkMode}}')" = none ] || fail "the renewer is on a network"
for svc in renewer ledger payments auditor "${attacks[@]}"; do
  [ "$svc" = renewer ] || ! mounts "$svc" | grep -w "ca:.*" >/dev/null || fail "$svc mounts the CA volume"
  [ "$(state "$svc" '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "$svc root filesystem is writable"
  [ "$(state "$svc" '{{.Config.User}}')" = "65532:65532" ] || fail "$svc runs as root"
done
echo "renewer, ledger, payments, auditor and the attack catalogue: read-only root, non-root; only the renewer (offline) holds the CA key"

echo "== shutdown: compose stop (SIGTERM, SIGKILL after 10 s), then each exit code"
long_running=(payments auditor renewer ledger)
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
