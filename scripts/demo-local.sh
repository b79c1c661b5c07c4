#!/usr/bin/env bash
# The Zero Trust demo on this machine, without Docker:
#   1. build the CA tool and both services,
#   2. write a fresh development PKI into certs/ (CA + ledger, payments, auditor),
#   3. start the ledger (mTLS only) on 127.0.0.1:8443,
#   4. run the payments demo story against it, then stop the ledger.
# Exits with the demo's status: 0 only if every step behaved as Zero Trust requires.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p zt-pki -p ledger -p payments
bin=target/debug
listen=${LEDGER_LISTEN:-127.0.0.1:8443}

echo "== Writing a development PKI into certs/ (private keys mode 0600)"
"$bin/zt-ca" dev --dir certs --force

echo "== Starting the ledger on $listen (its decision log follows, interleaved)"
LEDGER_LISTEN=$listen "$bin/ledger" &
ledger_pid=$!
trap 'kill -TERM "$ledger_pid" 2>/dev/null || true; wait "$ledger_pid" 2>/dev/null || true' EXIT

echo "== Running the payments demo"
# payments retries with backoff while the ledger starts up.
"$bin/payments" --server "https://localhost:${listen##*:}" demo
