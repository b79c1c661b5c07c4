#!/usr/bin/env bash
# Checks the compose lab's PostgreSQL from the outside and the inside, asserting from exit
# codes and the server's own answers (one line per check: expected, observed, PASS/FAIL):
#   - running as the non-root postgres user (uid 65532), read-only root filesystem, its key
#     0600 and its own; ssl on, TLS 1.3 minimum;
#   - refused: plaintext TCP, TLS without a client certificate, a password (even the right
#     one: the role is given one for the test, then it is removed), TLS 1.2, and another
#     workload's genuine certificate asking for the ledger's role;
#   - accepted: the ledger's certificate from the lab's pki, verify-full on both sides,
#     logged in as role `ledger` over TLS 1.3.
#
#   scripts/compose-postgres-check.sh PROJECT   check a running lab (compose project PROJECT)
#   scripts/compose-postgres-check.sh           start pki and postgres alone under a fresh
#                                               project, check, tear everything down
# Exits 0 only if every check passed. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compose.sh

own=false
if [ "$#" -ge 1 ]; then
  project=$1
else
  own=true
  project="ztpg$(date +%s)$$"
fi
dc() { "${COMPOSE[@]}" --project-name "$project" "$@"; }

if $own; then
  cleanup() {
    local status=$?
    [ "$status" = 0 ] || dc logs --no-color pki postgres 2>&1 | tail -n 60 || true
    dc down --volumes --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
  }
  trap cleanup EXIT
  docker image inspect zt-grpc:dev >/dev/null 2>&1 || ./scripts/build-image.sh
  ./scripts/build-postgres-image.sh
  echo "== compose up pki postgres (project $project)"
  dc up --detach postgres >/dev/null 2>&1
  start=$SECONDS
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$(dc ps -q postgres)")" = healthy ]; do
    [ $((SECONDS - start)) -lt 90 ] || { echo "FAIL: postgres never became healthy" >&2; exit 1; }
    sleep 2
  done
fi

pg=$(dc ps -q postgres)
[ -n "$pg" ] || { echo "FAIL: no postgres container in project $project" >&2; exit 1; }
network="${project}_zt"
failed=0
check() { # NAME EXPECTED OBSERVED: PASS when OBSERVED is EXPECTED or begins with it
  local verdict=PASS
  case "$3" in "$2"*) ;; *) verdict=FAIL; failed=1 ;; esac
  printf '%-38s expected=%-30s observed=%-.60s  %s\n' "$1" "\"$2\"" "\"$3\"" "$verdict"
}
# Inside the container, over its Unix socket as the postgres OS user (peer).
admin() { docker exec "$pg" psql -X -q -t -A -h /run/postgresql -d postgres -c "$1"; }
# A TCP login attempt from inside the container (to its network name, not loopback):
# "accepted" or the first FATAL reason.
attempt() {
  local out
  if out=$(docker exec -e PGCONNECT_TIMEOUT=5 "${@:2}" "$pg" \
    psql -X -q -t -A "host=postgres port=5432 dbname=ledger user=ledger $1" \
    -c 'SELECT current_user' 2>&1 </dev/null); then
    echo "accepted as $out"
  else
    sed -n 's/.*FATAL: *//p' <<<"$out" | head -n 1
  fi
}
# A login from a throwaway container holding one workload's keystore (its volume, read-only).
as_workload() { # WORKLOAD ROLE
  docker run --rm --network "$network" --user 65532:65532 --read-only --cap-drop ALL \
    --security-opt no-new-privileges:true \
    -v "${project}_$1-keys:/pki/$1:ro" -e PGCONNECT_TIMEOUT=5 zt-postgres:dev \
    psql -X -q -t -A -F ' ' \
    "host=postgres port=5432 dbname=$2 user=$2 sslmode=verify-full sslrootcert=/pki/$1/ca.pem sslcert=/pki/$1/$1.pem sslkey=/pki/$1/$1.key" \
    -c 'SELECT current_user, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>&1 || true
}

echo "== PostgreSQL: the server"
check "runs as" "postgres 65532" "$(docker exec "$pg" sh -c 'echo "$(id -un) $(id -u)"')"
check "root filesystem read-only" "true" "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$pg")"
check "server key mode, owner" "600 postgres" "$(docker exec "$pg" stat -L -c '%a %U' /pki/postgres/postgres.key)"
check "ssl" "on" "$(admin 'SHOW ssl')"
check "ssl_min_protocol_version" "TLSv1.3" "$(admin 'SHOW ssl_min_protocol_version')"
check "pg_hba.conf: methods in force" "cert cert peer" \
  "$(admin "SELECT string_agg(auth_method, ' ' ORDER BY auth_method) FROM pg_hba_file_rules")"
check "pg_hba.conf: connection types" "hostssl hostssl local" \
  "$(admin "SELECT string_agg(type, ' ' ORDER BY type) FROM pg_hba_file_rules")"

echo "== PostgreSQL: refused"
check "plaintext TCP" "no pg_hba.conf entry for host" "$(attempt 'sslmode=disable')"
check "TLS, no client certificate" "connection requires a valid" "$(attempt 'sslmode=require')"
# The role gets a password for these two attempts only: the right password is still refused.
admin "ALTER ROLE ledger PASSWORD 'correct-horse'" >/dev/null
check "password (right one), TLS" "connection requires a valid" \
  "$(attempt 'sslmode=require' -e PGPASSWORD=correct-horse)"
check "password (right one), plaintext" "no pg_hba.conf entry for host" \
  "$(attempt 'sslmode=disable' -e PGPASSWORD=correct-horse)"
admin "ALTER ROLE ledger PASSWORD NULL" >/dev/null
check "the role's password removed again" "t" "$(admin "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'ledger'")"
tls12=$(attempt 'sslmode=require ssl_max_protocol_version=TLSv1.2')
case "$tls12" in
  accepted*) check "TLS 1.2" "refused" "$tls12" ;;
  *) check "TLS 1.2" "refused" "refused" ;;
esac
stolen=$(as_workload payments ledger)
case "$stolen" in
  *"certificate authentication failed"*) observed="cert auth failed" ;;
  *) observed=$(head -n 1 <<<"$stolen") ;;
esac
# payments' certificate is genuine (our CA) but its subject does not map to role ledger.
check "payments' certificate as role ledger" "cert auth failed" "$observed"

echo "== PostgreSQL: accepted"
check "ledger's certificate (verify-full)" "ledger TLSv1.3" "$(as_workload ledger ledger | head -n 1)"

if [ "$failed" = 0 ]; then
  echo "postgres: every check passed"
else
  echo "FAIL: a PostgreSQL check failed" >&2
  exit 1
fi
