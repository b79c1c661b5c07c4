#!/bin/sh
# The lab's PostgreSQL entrypoint, run as the postgres user (uid 65532).
#
#   zt-postgres             first start: initdb into $PGDATA (a volume) and create each role
#                           of $ZT_PG_ROLES with a database of its own name; then serve with
#                           /etc/zt-postgres/postgresql.conf (TLS only, certificate logins
#                           only), reloading when the key or certificate is renewed.
#   zt-postgres CMD ARGS    run CMD instead (psql, pg_isready, ...).
#
# Refuses to start when its TLS files are missing or the key is readable by anyone else: a
# server that would fall back to something weaker must not start at all.
set -eu

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

conf=/etc/zt-postgres/postgresql.conf
setting() { sed -n "s/^$1 *= *'\(.*\)'.*/\1/p" "$conf"; }
cert=$(setting ssl_cert_file)
key=$(setting ssl_key_file)
ca=$(setting ssl_ca_file)
roles=${ZT_PG_ROLES:-}

say() { echo "zt-postgres: $*" >&2; }
die() { say "error: $*"; exit 1; }

for f in "$cert" "$key" "$ca"; do
  [ -r "$f" ] || die "$f is missing or unreadable: no TLS, no server"
done
mode=$(stat -L -c '%a %u' "$key")
[ "$mode" = "600 $(id -u)" ] || die "$key has mode/owner '$mode'; it must be 0600 and ours (uid $(id -u))"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  say "initialising $PGDATA"
  # Local socket: peer (the postgres OS user); TCP: refused unless pg_hba.conf (ours) says so.
  initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=reject \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  for role in $roles; do
    case "$role" in
      *[!a-z0-9_]*) die "role name '$role': lower-case letters, digits and _ only" ;;
    esac
    say "role $role (certificate login only: no password) owning database $role"
    # Single-user mode: one statement per line, no network, no TLS needed yet.
    printf 'CREATE ROLE %s LOGIN;\nCREATE DATABASE %s OWNER %s;\nREVOKE ALL ON DATABASE %s FROM PUBLIC;\n' \
      "$role" "$role" "$role" "$role" |
      postgres --single -D "$PGDATA" -c ssl=off postgres >/dev/null
  done
fi

# The renewer rewrites the key and certificate before they expire; PostgreSQL reads them
# again on SIGHUP (and keeps the old ones if the new pair does not load). A watcher outside
# the server's process tree (the container's init adopts it) sends that signal.
stamp() { stat -c '%Y %s' "$cert" "$key" "$ca" 2>/dev/null | tr '\n' ' '; }
(
  last=$(stamp)
  while sleep 5; do
    now=$(stamp)
    [ "$now" != "$last" ] || continue
    sleep 2 # let the renewer finish writing the pair
    last=$(stamp)
    if pg_ctl reload -D "$PGDATA" >/dev/null 2>&1; then
      say "TLS files changed: configuration reloaded (new connections use the new certificate)"
    fi
  done
) &

say "serving (TLS 1.3 only, certificate logins only)"
exec postgres -D "$PGDATA" -c config_file="$conf"
