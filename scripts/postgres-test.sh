#!/usr/bin/env bash
# A throwaway PostgreSQL for the ledger's PostgreSQL tests, mutual TLS only:
#   1. installs PostgreSQL from Debian's packages if no /usr/lib/postgresql/*/bin is there,
#   2. makes a CA with zt-ca and, from it, the server's certificate (localhost),
#   3. creates a cluster in a temporary directory, owned by an unprivileged user (the
#      invoking user, or `postgres` / `nobody` when run as root), listening on a free
#      loopback port. pg_hba.conf has one way in over the network: `hostssl ... cert
#      clientcert=verify-full map=zt`, the certificate's CN mapped to the role (pg_ident.conf:
#      CN `ledger` -> role `ledger`); no `host` (plaintext) line and no password method. The
#      administrator's only way in is peer authentication on a private Unix socket,
#   4. runs the command given (default: the ledger's PostgreSQL tests, with
#      ZT_REQUIRE_POSTGRES=1 so that a missing server fails them) with these exported:
#        ZT_TEST_POSTGRES           postgres://ledger@localhost:PORT/ledger
#        ZT_TEST_POSTGRES_PKI       directory with ca.pem and ca.key (to issue client certs)
#        ZT_TEST_POSTGRES_PASSWORD  the role's password, which pg_hba.conf must refuse
#   5. stops the cluster and deletes everything, whatever happened; exits with the
#      command's status.
# Usage: scripts/postgres-test.sh [COMMAND [ARGS...]]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
  echo "== Installing PostgreSQL (Debian packages)"
  as_root apt-get update -qq
  # The package's own cluster is not used; policy-rc.d-less containers may fail to start
  # it, which does not matter here.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

cargo build --quiet -p zt-pki --bin zt-ca
zt_ca=$(realpath "${CARGO_TARGET_DIR:-target}")/debug/zt-ca

# The cluster's owner: never root (PostgreSQL refuses to run as root anyway).
if [ "$(id -u)" = 0 ]; then
  if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

dir=$(mktemp -d -t zt-postgres.XXXXXX)
chmod 755 "$dir"
cleanup() {
  as_owner "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

echo "== Minting a CA and the server's certificate ($dir/pki)"
"$zt_ca" init --trust-domain zt.example --dir "$dir/pki" --lifetime 1d >/dev/null
"$zt_ca" issue --ca "$dir/pki/ca.pem" --ca-key "$dir/pki/ca.key" --lifetime 2h \
  --spiffe-id spiffe://zt.example/ns/prod/sa/postgres --dns localhost \
  --out "$dir/pki/postgres" >/dev/null
chmod 755 "$dir/pki"
chmod 644 "$dir/pki/ca.pem" "$dir/pki/postgres.pem"
# The server's key: readable by the cluster's owner only (PostgreSQL checks).
chown "$owner" "$dir/pki/postgres.key" 2>/dev/null || true
chmod 600 "$dir/pki/postgres.key"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password="refused-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

echo "== Creating a cluster owned by $owner, TLS only, on 127.0.0.1:$port"
mkdir -p "$dir/data" "$dir/socket" "$dir/log"
chown "$owner" "$dir/data" "$dir/socket" "$dir/log" 2>/dev/null || true
chmod 700 "$dir/socket"
as_owner "$pg_bin/initdb" --pgdata "$dir/data" --username "$owner" --auth-local peer \
  --auth-host reject --encoding UTF8 --no-instructions >/dev/null
as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<EOF
# TYPE   DATABASE USER     ADDRESS       METHOD
local    all      $owner                 peer
hostssl  all      all      127.0.0.1/32  cert clientcert=verify-full map=zt
hostssl  all      all      ::1/128       cert clientcert=verify-full map=zt
EOF
as_owner tee "$dir/data/pg_ident.conf" >/dev/null <<EOF
# MAPNAME  CERTIFICATE-CN  ROLE
zt         ledger          ledger
EOF
as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/socket'
ssl = on
ssl_cert_file = '$dir/pki/postgres.pem'
ssl_key_file = '$dir/pki/postgres.key'
ssl_ca_file = '$dir/pki/ca.pem'
ssl_min_protocol_version = 'TLSv1.3'
password_encryption = 'scram-sha-256'
log_connections = on
EOF
as_owner "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t 30 start >/dev/null
psql_admin() {
  as_owner "$pg_bin/psql" -h "$dir/socket" -p "$port" -U "$owner" -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}
# A password the role has, so that the test of pg_hba.conf refusing it means something.
psql_admin -c "CREATE ROLE ledger LOGIN CREATEDB PASSWORD '$password'"
psql_admin -c "CREATE DATABASE ledger OWNER ledger"

export ZT_TEST_POSTGRES="postgres://ledger@localhost:$port/ledger"
export ZT_TEST_POSTGRES_PKI="$dir/pki"
export ZT_TEST_POSTGRES_PASSWORD="$password"
echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') ready: $ZT_TEST_POSTGRES"

if [ "$#" -eq 0 ]; then
  set -- env ZT_REQUIRE_POSTGRES=1 cargo nextest run -p ledger --test postgres
fi
status=0
"$@" || status=$?
if [ "$status" != 0 ]; then
  echo "== PostgreSQL's log (last 40 lines)"
  tail -n 40 "$dir/log/postgres.log" || true
fi
exit "$status"
