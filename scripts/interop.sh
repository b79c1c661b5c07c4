#!/usr/bin/env bash
# Interop suite: the project's binaries against TLS and gRPC implementations nobody on the
# project wrote (Python grpcio on BoringSSL, sslyze on nassl's OpenSSL, the openssl CLI, the
# JDK's JSSE and java.net.http.HttpClient).
#
#   1. a venv in target/interop-venv with interop/requirements.txt (re-made if that changes),
#   2. builds ledger, payments and zt-ca, writes a fresh PKI into a temp dir (zt-ca dev, issue),
#   3. starts the ledger on a free loopback port and waits until `ledger health` says SERVING,
#   4. runs every case; each prints one line ending in PASS or FAIL:
#        grpcio client -> ledger     allowed, denied per method, no cert, foreign CA
#        ledger's own log            saw those refusals and the denial
#        openssl s_client -> ledger  TLS 1.3 + ALPN h2; -tls1_2, ALPN http/1.1, no cert refused
#        JDK HttpClient -> ledger    PKCS#12 stores from keytool; allowed, denied, no cert,
#                                    TLS 1.2 refused; the ledger's log of them (skipped, and
#                                    said so, without java 17+)
#        sslyze -> ledger            TLS 1.3 only, suites, groups, Mozilla `modern`
#        payments -> grpcio ledger   pinned SPIFFE ID accepted; another identity refused
#        grpcio client -> echo       echo_server.py (grpc.aio) serves, then exits 0 on SIGTERM
#   5. prints a summary; exits 1 if any case failed. Everything started is stopped on exit.
#
# Every wait is bounded. Needs python3 with venv and pip, openssl, cargo; for the JDK cases a
# JDK 17+ (java, javac, keytool: Debian's openjdk-17-jdk-headless).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never PYTHONDONTWRITEBYTECODE=1 LC_NUMERIC=C

now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
suite_start=$(now)
venv=target/interop-venv
bin=target/debug
py=$venv/bin/python
td=spiffe://zt.example

work=$(mktemp -d "${TMPDIR:-/tmp}/zt-interop.XXXXXX")
# Whatever the tools put in temp files (the Python stubs, ...) goes away with $work.
mkdir "$work/tmp"
export TMPDIR=$work/tmp
# Steps run in pipeline subshells (for tee), so every process started is recorded in a file.
track() { echo "$1" >>"$work/pids"; }
stop_pid() { # stop_pid PID: SIGTERM, up to 10 s, then SIGKILL; returns its exit status if a child
  local pid=$1 rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}
cleanup() {
  local pid
  if [ -f "$work/pids" ]; then
    while read -r pid; do stop_pid "$pid" || true; done <"$work/pids"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n== %s\n' "$*"; }
die() { echo "interop: error: $*" >&2; exit 1; }

# One line per check, in the format the Python scripts print; run_step collects them.
line() { # line NAME EXPECTED OBSERVED OK(0|1)
  local verdict=FAIL
  if [ "$4" = 1 ]; then verdict=PASS; fi
  printf '%-16s expected=%-34s observed=%s %s\n' "$1" "$2" "$3" "$verdict"
}
checks=$work/checks.txt
: >"$checks"
steps=()
run_step() { # run_step NAME CMD...: runs it, keeps its check lines, records PASS/FAIL and time
  local name=$1 t0 rc=0
  t0=$(now)
  shift
  set +e
  "$@" 2>&1 | tee "$work/out.$name"
  rc=${PIPESTATUS[0]}
  set -e
  grep -aE ' (PASS|FAIL)$' "$work/out.$name" >>"$checks" || true
  if [ "$rc" = 0 ]; then
    steps+=("$(printf '%-16s PASS %5s s' "$name" "$(since "$t0")")")
  else
    steps+=("$(printf '%-16s FAIL %5s s (exit %s)' "$name" "$(since "$t0")" "$rc")")
  fi
}

# wait_for_line FILE REGEX SECONDS PID: until FILE has a line matching REGEX; fails early if
# PID exits.
wait_for_line() {
  for _ in $(seq $(($3 * 10))); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

step "python venv ($venv)"
t0=$(now)
stamp=$venv/.requirements.sha256
want=$(sha256sum interop/requirements.txt | cut -d' ' -f1)
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
  timeout 600 "$py" -m pip install --quiet --disable-pip-version-check -r interop/requirements.txt
  echo "$want" >"$stamp"
fi
"$py" --version
"$py" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null |
  grep -iE '^(grpcio|grpcio-tools|sslyze|nassl|cryptography|protobuf)==' | tr '\n' ' '
echo
openssl version
echo "venv ready in $(since "$t0") s"

step "build (cargo build --locked -p ledger -p payments -p zt-pki)"
t0=$(now)
timeout 1800 cargo build --quiet --locked -p ledger -p payments -p zt-pki
echo "built in $(since "$t0") s"

step "PKI (zt-ca dev + issue) in $work/pki"
pki=$work/pki
"$bin/zt-ca" dev --dir "$pki" >/dev/null
issue() { # issue NAME SPIFFE-ID: a 1 h leaf from the dev CA, DNS SAN localhost
  "$bin/zt-ca" issue --ca "$pki/ca.pem" --ca-key "$pki/ca.key" --spiffe-id "$2" \
    --dns localhost --lifetime 1h --out "$pki/$1" >/dev/null
}
issue py-ledger "$td/ns/prod/sa/ledger" # the Python ledger, proving the ledger's identity
issue py-web "$td/ns/prod/sa/web"       # the Python ledger, proving another identity
issue echo "$td/ns/bench/sa/echo"       # echo_server.py
(cd "$pki" && echo *)

step "ledger"
port=$(free_port)
ledger_flags=(--listen "127.0.0.1:$port" --cert "$pki/ledger.pem" --key "$pki/ledger.key"
  --ca "$pki/ca.pem" --policy config/ledger-policy.json)
ledger_log=$work/ledger.log
# Its text log (stderr) is read back below: refusals, decisions.
RUST_LOG=info "$bin/ledger" "${ledger_flags[@]}" --log-format text >"$work/ledger.stdout" 2>"$ledger_log" &
ledger_pid=$!
track "$ledger_pid"
serving=0
for _ in $(seq 60); do
  kill -0 "$ledger_pid" 2>/dev/null || break
  if timeout 5 "$bin/ledger" "${ledger_flags[@]}" health >/dev/null 2>&1; then
    serving=1
    break
  fi
  sleep 0.5
done
if [ "$serving" != 1 ]; then
  tail -n 20 "$ledger_log" >&2
  die "the ledger did not become SERVING on 127.0.0.1:$port within 30 s"
fi
echo "ledger SERVING on 127.0.0.1:$port (pid $ledger_pid)"

step "grpcio client -> ledger"
log_mark=$(wc -l <"$ledger_log")
run_step grpcio-client "$py" interop/ledger_client.py --target "localhost:$port" --certs "$pki"

step "grpcio clients -> a ledger retiring connections every 2 s (GOAWAY at the maximum age)"
age_port=$(free_port)
age_metrics=$(free_port)
"$bin/ledger" --listen "127.0.0.1:$age_port" --cert "$pki/ledger.pem" --key "$pki/ledger.key" \
  --ca "$pki/ca.pem" --policy config/ledger-policy.json --max-connection-age 2s \
  --drain-timeout 3s --metrics-listen "127.0.0.1:$age_metrics" >/dev/null 2>"$work/age-ledger.log" &
age_pid=$!
track "$age_pid"
for _ in $(seq 60); do
  timeout 5 "$bin/ledger" --listen "127.0.0.1:$age_port" --cert "$pki/ledger.pem" \
    --key "$pki/ledger.key" --ca "$pki/ca.pem" health >/dev/null 2>&1 && break
  sleep 0.5
done
run_step grpcio-age "$py" interop/ledger_age_load.py --target "localhost:$age_port" --certs "$pki" \
  --threads 16 --seconds 8
age_handshakes=$("$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$age_metrics/metrics" 2>/dev/null |
  awk '/^zt_tls_handshakes_total\{/ { n += $2 } END { print n + 0 }')
line grpcio-age-conns "16+ connections replaced" "$age_handshakes handshakes in 8 s" \
  "$([ "${age_handshakes:-0}" -ge 32 ] && echo 1 || echo 0)" | tee -a "$checks"
stop_pid "$age_pid" || true

step "the ledger's own log of those cases"
ledger_log_check() {
  sleep 0.5 # let the ledger flush the last refusal
  local recent refused_no_cert refused_foreign denied
  recent=$(tail -n +"$((log_mark + 1))" "$ledger_log")
  refused_no_cert=$(grep -c 'zt_tls::refused.*reason="no_certificate"' <<<"$recent" || true)
  refused_foreign=$(grep -cE 'zt_tls::refused.*reason="(bad_certificate|unknown_ca)"' <<<"$recent" || true)
  denied=$(grep -c 'request denied.*sa/auditor.*Ledger/Transfer.*rule="auditor-never-moves-money"' <<<"$recent" || true)
  local ok=0
  [ "$refused_no_cert" -ge 1 ] && [ "$refused_foreign" -ge 1 ] && [ "$denied" = 1 ] && ok=1
  line ledger-log "refusals logged, 1 deny" \
    "refused no_certificate=$refused_no_cert, bad_certificate|unknown_ca=$refused_foreign; denied Transfer=$denied" "$ok"
  grep -aE 'zt_tls::refused|request denied' <<<"$recent" | sed 's/^/  ledger: /' || true
  [ "$ok" = 1 ]
}
run_step ledger-log ledger_log_check

step "openssl s_client -> ledger"
openssl_probes() {
  local out=$work/s_client rc ok all=0
  local common=(-connect "127.0.0.1:$port" -servername localhost -CAfile "$pki/ca.pem" -verify_return_error)
  # With payments' certificate: stdin stays open 1 s so a late alert would be seen.
  rc=0
  sleep 1 | timeout 15 openssl s_client "${common[@]}" -alpn h2 \
    -cert "$pki/payments.pem" -key "$pki/payments.key" >"$out" 2>&1 || rc=$?
  ok=0
  if [ "$rc" = 0 ] && grep -aq '^New, TLSv1.3, Cipher is' "$out" && grep -aq '^ALPN protocol: h2' "$out" &&
    grep -aq '^Verify return code: 0 (ok)' "$out" && ! grep -aqi 'alert' "$out"; then ok=1; fi
  line s_client-cert "TLSv1.3, ALPN h2, no alert" \
    "exit $rc; $(grep -a '^New,' "$out" | head -1); $(grep -a '^ALPN' "$out" | head -1); $(grep -a '^Server Temp Key' "$out" | head -1)" "$ok"
  [ "$ok" = 1 ] || { all=1; sed 's/^/  /' "$out" | grep -av '^[A-Za-z0-9+/=]\{64\}$' | head -40; }

  rc=0
  timeout 15 openssl s_client "${common[@]}" -tls1_2 \
    -cert "$pki/payments.pem" -key "$pki/payments.key" </dev/null >"$out" 2>&1 || rc=$?
  ok=0
  if [ "$rc" != 0 ] && grep -aq 'alert protocol version' "$out" && ! grep -aq '^New, TLS' "$out"; then ok=1; fi
  line s_client-tls1_2 "refused: alert protocol_version" \
    "exit $rc; $(grep -aoE 'alert [a-z0-9 _]+.*SSL alert number [0-9]+' "$out" | sed 's/:\.\..*:/ /' | head -1)" "$ok"
  [ "$ok" = 1 ] || { all=1; sed 's/^/  /' "$out" | head -20; }

  # ALPN is h2 only: a client offering only http/1.1 is refused (no_application_protocol).
  rc=0
  timeout 15 openssl s_client "${common[@]}" -alpn http/1.1 -ign_eof \
    -cert "$pki/payments.pem" -key "$pki/payments.key" </dev/null >"$out" 2>&1 || rc=$?
  ok=0
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -aq 'alert no application protocol' "$out"; then ok=1; fi
  line s_client-http1.1 "refused: alert no_application_protocol" \
    "exit $rc; $(grep -aoE 'alert [a-z0-9 _]+.*SSL alert number [0-9]+' "$out" | sed 's/:\.\..*:/ /' | head -1)" "$ok"
  [ "$ok" = 1 ] || { all=1; sed 's/^/  /' "$out" | grep -av '^[A-Za-z0-9+/=]\{64\}$' | head -40; }

  # Not a check, for the record: rustls enforces ALPN only when the client offers it, so a
  # client offering none still completes the handshake (and then must speak HTTP/2).
  rc=0
  sleep 1 | timeout 15 openssl s_client "${common[@]}" \
    -cert "$pki/payments.pem" -key "$pki/payments.key" >"$out" 2>&1 || rc=$?
  echo "  info: without ALPN: exit $rc; $(grep -a '^New,' "$out" | head -1); $(grep -aE '^(No ALPN|ALPN)' "$out" | head -1)"

  # No certificate: TLS 1.3 lets the client finish first; -ign_eof keeps reading until the
  # server's alert and close arrive.
  rc=0
  timeout 15 openssl s_client "${common[@]}" -alpn h2 -ign_eof </dev/null >"$out" 2>&1 || rc=$?
  ok=0
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -aq 'alert certificate required' "$out"; then ok=1; fi
  line s_client-no-cert "refused: alert certificate_required" \
    "exit $rc; $(grep -aoE 'alert [a-z0-9 _]+.*SSL alert number [0-9]+' "$out" | sed 's/:\.\..*:/ /' | head -1)" "$ok"
  [ "$ok" = 1 ] || { all=1; sed 's/^/  /' "$out" | grep -av '^[A-Za-z0-9+/=]\{64\}$' | head -40; }
  return "$all"
}
run_step openssl openssl_probes

step "JDK (JSSE + java.net.http.HttpClient) -> ledger (interop/java/LedgerClient.java)"
# The JDK needs its compiler too: `java File.java` compiles the source in memory.
java_missing() { # prints why the JDK cases cannot run, or nothing
  local tool major
  for tool in java javac keytool; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found"; return; }
  done
  major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1)
  [ "${major:-0}" -ge 17 ] || echo "java ${major:-?} is older than 17"
}
# JVM flags for short runs: C1 only, serial GC, no hsperfdata file in /tmp, temp files in $work.
jvm_flags=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData "-Djava.io.tmpdir=$TMPDIR")
jdk_cases() {
  local jks=$work/jdk n t0
  t0=$(now)
  mkdir -m 700 "$jks"
  # One random password for every store, in a file: never in an argument (ps shows those).
  (umask 077 && openssl rand -hex 24 >"$jks/storepass")
  kt() { # quiet unless it fails
    local out
    out=$(timeout 60 keytool "${jvm_flags[@]/#/-J}" "$@" -storetype PKCS12 -storepass:file "$jks/storepass" 2>&1) ||
      { echo "keytool $1: $out" >&2; return 1; }
  }
  # Key stores: key + chain (leaf, CA). Trust store: the CA as a trusted-certificate entry,
  # which only keytool writes (Java ignores certificates in a PKCS#12 without its trust attribute).
  for n in payments auditor; do
    openssl pkcs12 -export -in "$pki/$n.pem" -inkey "$pki/$n.key" -certfile "$pki/ca.pem" \
      -name "$n" -out "$jks/$n.p12" -passout "file:$jks/storepass"
  done
  kt -importcert -noprompt -alias zt-ca -file "$pki/ca.pem" -keystore "$jks/trust.p12"
  # No certificate to offer: keytool has no command for an empty store, so add one entry and
  # delete it.
  kt -importcert -noprompt -alias placeholder -file "$pki/ca.pem" -keystore "$jks/empty.p12"
  kt -delete -alias placeholder -keystore "$jks/empty.p12"
  echo "  PKCS#12 stores made in $(since "$t0") s: $(cd "$jks" && echo *.p12)"
  timeout 120 java "${jvm_flags[@]}" interop/java/LedgerClient.java interop --target "localhost:$port" \
    --truststore "$jks/trust.p12" --storepass-file "$jks/storepass" \
    --payments "$jks/payments.p12" --auditor "$jks/auditor.p12" --empty "$jks/empty.p12"
}
jdk_log_check() {
  sleep 0.5 # let the ledger flush the last refusal
  local recent allowed_p allowed_a denied transfers no_cert version
  recent=$(tail -n +"$((jdk_log_mark + 1))" "$ledger_log")
  allowed_p=$(grep -c 'request allowed.*sa/payments .*Ledger/GetBalance' <<<"$recent" || true)
  allowed_a=$(grep -c 'request allowed.*sa/auditor .*Ledger/GetBalance' <<<"$recent" || true)
  denied=$(grep -c 'request denied.*sa/auditor .*Ledger/Transfer.*rule="auditor-never-moves-money"' <<<"$recent" || true)
  transfers=$(grep -c 'request allowed.*Ledger/Transfer' <<<"$recent" || true)
  no_cert=$(grep -c 'zt_tls::refused.*reason="no_certificate"' <<<"$recent" || true)
  # A client offering only TLS 1.2 with a supported_versions extension (the JDK does; openssl
  # -tls1_2 does not) is refused as protocol_version too.
  version=$(grep -c 'zt_tls::refused.*reason="protocol_version"' <<<"$recent" || true)
  local ok=0
  [ "$allowed_p" = 2 ] && [ "$allowed_a" = 1 ] && [ "$denied" = 1 ] && [ "$transfers" = 0 ] &&
    [ "$no_cert" -ge 2 ] && [ "$version" -ge 1 ] && ok=1
  line jdk-ledger-log "3 allowed, 1 deny, refusals logged" \
    "allowed GetBalance payments=$allowed_p auditor=$allowed_a, Transfer=$transfers; denied Transfer=$denied; refused no_certificate=$no_cert, TLS 1.2=$version" "$ok"
  grep -aE 'zt_tls::refused|request denied' <<<"$recent" | sed 's/^/  ledger: /' || true
  [ "$ok" = 1 ]
}
jdk_why=$(java_missing)
if [ -z "$jdk_why" ]; then
  java -version 2>&1 | head -1
  jdk_log_mark=$(wc -l <"$ledger_log")
  run_step jdk jdk_cases
  run_step jdk-ledger-log jdk_log_check
else
  echo "SKIP: the JDK cases did not run: $jdk_why (Debian: apt-get install openjdk-17-jdk-headless)"
  steps+=("$(printf '%-16s SKIP  (%s)' jdk "$jdk_why")")
fi

step "sslyze -> ledger (client certificate: payments)"
run_step sslyze timeout 300 "$py" interop/tls_scan.py --host localhost --ip 127.0.0.1 --port "$port" \
  --ca "$pki/ca.pem" --cert "$pki/payments.pem" --key "$pki/payments.key"

step "payments -> Python grpcio ledger (ledger_server.py)"
# py_ledger_case NAME KEYSTORE SERVER-ID EXPECT(ok|refused)
py_ledger_case() {
  local name=$1 keystore=$2 server_id=$3 expect=$4 calls=$work/calls.$1 out=$work/py-ledger.$1
  "$py" interop/ledger_server.py --listen 127.0.0.1:0 --cert "$pki/$keystore.pem" \
    --key "$pki/$keystore.key" --ca "$pki/ca.pem" --calls-file "$calls" >"$out" 2>&1 &
  local server_pid=$!
  track "$server_pid"
  if ! wait_for_line "$out" '^listening on ' 20 "$server_pid"; then
    line "$name" "server starts" "ledger_server.py did not start: $(tail -3 "$out")" 0
    return 1
  fi
  local pyport rc=0 reply
  pyport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
  reply=$(timeout 30 "$bin/payments" --server "https://localhost:$pyport" --server-id "$server_id" \
    --cert "$pki/payments.pem" --key "$pki/payments.key" --ca "$pki/ca.pem" \
    --attempts 1 balance alice 2>&1) || rc=$?
  local server_rc=0
  stop_pid "$server_pid" || server_rc=$?
  local handled
  handled=$(wc -l <"$calls")
  local ok=0 expected
  if [ "$expect" = ok ]; then
    expected="payments exit 0, 1 handler call"
    # $4242.00 is the Python ledger's balance for alice (the Rust ledger has another).
    [ "$rc" = 0 ] && [ "$reply" = "alice: \$4242.00" ] && [ "$handled" = 1 ] && ok=1
  else
    expected="payments refuses, 0 handler calls"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$handled" = 0 ] &&
      grep -q "server presented $td/ns/prod/sa/web, expected $server_id" <<<"$reply" && ok=1
  fi
  [ "$server_rc" = 0 ] || ok=0
  local alert
  alert=$(grep -oE '(SSLV3|TLSV1)_ALERT_[A-Z_]+' "$out" | sort -u | tr '\n' ' ')
  line "$name" "$expected" "payments exit $rc: $(tr '\n' ' ' <<<"$reply"); handler calls $handled;${alert:+ alert seen by the Python server: $alert;} server exit $server_rc" "$ok"
  sed 's/^/  ledger_server.py: /' "$out"
  [ "$ok" = 1 ]
}
py_ledger_cases() {
  local all=0
  py_ledger_case py-ledger-pinned py-ledger "$td/ns/prod/sa/ledger" ok || all=1
  py_ledger_case py-ledger-spoofed py-web "$td/ns/prod/sa/ledger" refused || all=1
  # The pin is what --server-id says, not something hard-wired: pinned to web, web is fine.
  py_ledger_case py-ledger-repin py-web "$td/ns/prod/sa/web" ok || all=1
  return "$all"
}
run_step python-ledger py_ledger_cases

step "grpcio client -> echo_server.py (grpc.aio)"
echo_cases() {
  local out=$work/echo.out err=$work/echo.err
  "$py" interop/echo_server.py --listen 127.0.0.1:0 --cert "$pki/echo.pem" --key "$pki/echo.key" \
    --ca "$pki/ca.pem" >"$out" 2>"$err" &
  local echo_pid=$!
  track "$echo_pid"
  if ! wait_for_line "$out" '^listening on 127\.0\.0\.1:[0-9]+$' 20 "$echo_pid"; then
    line echo-start "listening on HOST:PORT" "$(cat "$out" "$err" | tail -3)" 0
    return 1
  fi
  local echo_port rc=0
  echo_port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
  timeout 60 "$py" interop/echo_client.py --target "localhost:$echo_port" --ca "$pki/ca.pem" \
    --cert "$pki/payments.pem" --key "$pki/payments.key" || rc=$?
  local server_rc=0 lines
  stop_pid "$echo_pid" || server_rc=$?
  lines=$(wc -l <"$out")
  line echo-sigterm "exit 0, stdout = 1 line" "exit $server_rc, stdout $lines line(s): $(head -1 "$out")" \
    "$([ "$server_rc" = 0 ] && [ "$lines" = 1 ] && echo 1 || echo 0)"
  [ "$rc" = 0 ] && [ "$server_rc" = 0 ] && [ "$lines" = 1 ]
}
run_step echo echo_cases

step "summary"
stop_pid "$ledger_pid" && ledger_rc=0 || ledger_rc=$?
line ledger-sigterm "exit 0" "exit $ledger_rc" "$([ "$ledger_rc" = 0 ] && echo 1 || echo 0)" | tee -a "$checks"
printf '%s\n' "${steps[@]}"
echo "ledger, as it logged the whole suite: $(grep -c 'request allowed' "$ledger_log" || true) requests allowed," \
  "$(grep -c 'request denied' "$ledger_log" || true) denied, handshakes refused by reason:" \
  "$(grep -oE 'zt_tls::refused.* reason="[a-z_]+"' "$ledger_log" | sed -E 's/.*reason="([a-z_]+)"/\1/' |
    sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep=", " }')"
total=$(grep -cE ' (PASS|FAIL)$' "$checks" || true)
failed=$(grep -cE ' FAIL$' "$checks" || true)
failed_steps=$(printf '%s\n' "${steps[@]}" | grep -c ' FAIL' || true)
skipped_steps=$(printf '%s\n' "${steps[@]}" | grep -c ' SKIP' || true)
skipped_note=""
[ "$skipped_steps" = 0 ] || skipped_note=", $skipped_steps SKIPPED"
echo "interop: $total checks, $((total - failed)) passed, $failed failed; $((${#steps[@]} - failed_steps - skipped_steps))/${#steps[@]} steps passed$skipped_note; $(since "$suite_start") s"
if [ "$failed" != 0 ] || [ "$failed_steps" != 0 ]; then
  grep -E ' FAIL$' "$checks" | sed 's/^/  FAILED: /' || true
  exit 1
fi
