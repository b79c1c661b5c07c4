#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers hostile input reaches (cargo-fuzz, libFuzzer, ASan):
#   spiffe_id      the SPIFFE ID parser
#   policy         the A43 policy compiler, evaluator, explain, check and coverage
#   leaf_identity  DER bytes -> X.509 -> X509-SVID rules -> SPIFFE ID -> trust domain
#
#   ./scripts/fuzz.sh            60 s per target (CI runs 30: FUZZ_SECONDS=30)
#   ./scripts/fuzz.sh 3600       the documented long run: an hour per target
#
# The seed corpus is made fresh each time (the project's CA issues real certificates; the
# shipped policy; valid and invalid IDs) and kept in fuzz/corpus/ (git-ignored) so runs
# build on each other. A crash leaves its input in fuzz/artifacts/TARGET/ and fails the run.
#
# cargo-fuzz wants a nightly compiler for -Zsanitizer; this machine can only have stable, so
# RUSTC_BOOTSTRAP=1 lets stable rustc take the flags (its ASan runtime ships with stable).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2

corpus=fuzz/corpus
mkdir -p "$corpus/spiffe_id" "$corpus/policy" "$corpus/leaf_identity"
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

# Certificates: the dev set (CA + three workloads) as DER.
cargo run --quiet --locked -p zt-pki --bin zt-ca -- dev --dir "$seeds" >/dev/null
for pem in "$seeds"/*.pem; do
  openssl x509 -in "$pem" -outform der -out "$corpus/leaf_identity/$(basename "$pem" .pem).der"
done
# Policies: the shipped one and a grpc-go style one with audit options.
cp config/ledger-policy.json "$corpus/policy/ledger-policy.json"
cat >"$corpus/policy/grpc-go.json" <<'JSON'
{"name":"authz","deny_rules":[{"name":"deny-admin","request":{"paths":["/admin.*"],"headers":[{"key":"x-role","values":["guest"]}]}}],"allow_rules":[{"name":"allow-all-ledger","source":{"principals":["spiffe://zt.example/ns/prod/sa/*"]},"request":{"paths":["/ledger.v1.Ledger/*"]}}],"audit_logging_options":{"audit_condition":"ON_DENY_AND_ALLOW","audit_loggers":[{"stdout_logger":{}}]}}
JSON
# SPIFFE IDs: good ones and each kind of bad one.
i=0
for id in spiffe://zt.example/ns/prod/sa/ledger spiffe://a.b-c_d/x/y.z spiffe://zt.example \
          spiffe://ZT.example/a spiffe://zt.example/a%20b spiffe://zt.example/./a \
          spiffe://zt.example/a/ 'spiffe://zt.example/a?q' 'spiffe://u@zt.example/a' \
          spiffe://zt.example:8443/a; do
  printf '%s' "$id" >"$corpus/spiffe_id/seed-$i"; i=$((i + 1))
done

failed=0
for target in spiffe_id policy leaf_identity; do
  echo "== fuzz $target for ${seconds}s"
  log=$(mktemp)
  if cargo fuzz run --release "$target" "$corpus/$target" -- \
      -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^Done|stat::number_of_executed_units|cov:' "$log" | tail -n 3
  else
    failed=1
    tail -n 60 "$log"
    echo "FAIL: $target crashed; the input is in fuzz/artifacts/$target/"
  fi
  rm -f "$log"
done
exit "$failed"
