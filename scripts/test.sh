#!/usr/bin/env bash
# The project's test command: installs what the tests use beyond cargo, when it is missing,
# then runs every test. Extra arguments go to cargo nextest (e.g. -p ledger, -E 'test(x)').
#
#   ./scripts/test.sh
#
# The tests use tools nobody here wrote, on purpose: openssl (certificates and probes),
# libfaketime (the clock-skew test), a JDK's keytool (PKCS#12 stores), Python `cryptography`
# (the foreign-PKI suites' certificates), Go (grpc-go's subject text, compared with ours) and
# PostgreSQL (the ledger's store of record, over mutual TLS).
# Installing needs root (apt) and network access to Debian's and PyPI's mirrors.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root apt-get install -y -qq "$@"
}

command -v openssl >/dev/null 2>&1 || apt_install openssl
command -v faketime >/dev/null 2>&1 || apt_install faketime
command -v keytool >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless
command -v go >/dev/null 2>&1 || apt_install golang-go
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
  python3 -m pip install --quiet cryptography || apt_install python3-cryptography
fi
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked

# With Go installed, the subject comparison with Go must run, not skip.
export ZT_REQUIRE_GO=1
# The ledger's PostgreSQL tests run against a throwaway mutual-TLS-only cluster, which
# scripts/postgres-test.sh installs (Debian's packages) if missing, starts on a loopback port
# for the whole run and removes afterwards; with it there, they must run, not skip.
export ZT_REQUIRE_POSTGRES=1
exec ./scripts/postgres-test.sh cargo nextest run --workspace "$@"
