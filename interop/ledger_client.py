"""Interop: a Python grpcio client (BoringSSL, not rustls) against a running `ledger`.

Each case prints one line: name, expected, observed, PASS/FAIL. Exit status 1 if any case
fails. Cases:

  allowed        payments' certificate calls GetBalance (policy rule payments-full-access)
  auditor-read   the auditor calls GetBalance (auditor-read-only): its certificate is good,
                 so the next case's denial is the per-method policy, not the handshake
  denied         the auditor calls Transfer: PERMISSION_DENIED (auditor-never-moves-money),
                 and the balance it tried to move is unchanged afterwards
  no-cert        no client certificate: the handshake is refused, UNAVAILABLE, and the TLS
                 alert received is certificate_required
  foreign-ca     a client certificate from a CA made here with `cryptography` (same subject
                 as the real CA, a valid-looking SPIFFE ID for payments): refused, UNAVAILABLE,
                 with a certificate-rejection alert (decrypt_error, unknown_ca or bad_certificate)

Usage: ledger_client.py --target localhost:PORT --certs DIR   (DIR as written by `zt-ca dev`)
"""

import argparse
import contextlib
import datetime
import os
import pathlib
import re
import sys
import tempfile
import uuid

# grpc core reports the TLS alert a server sent only in its own log (stderr), not in the
# status details ("Unwrap failed (TSI_DATA_CORRUPTED)"): keep error logging on to read it.
os.environ["GRPC_VERBOSITY"] = "ERROR"
import grpc  # noqa: E402  (after GRPC_VERBOSITY)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import protos

ledger_pb2, ledger_grpc = protos.load("ledger/v1/ledger")

RPC_TIMEOUT_S = 10
ACCOUNT, OTHER_ACCOUNT = "alice", "bob"  # opening balances in services/ledger/src/book.rs


def channel(target, ca, cert=None, key=None):
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    return grpc.secure_channel(target, creds)


def call(target, ca, cert, key, method, request):
    """Runs one unary RPC; returns ("OK", response) or (status code name, details)."""
    with channel(target, ca, cert, key) as ch:
        stub = ledger_grpc.LedgerStub(ch)
        try:
            return "OK", getattr(stub, method)(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            return e.code().name, e.details()


@contextlib.contextmanager
def grpc_core_log():
    """Captures what grpc core writes to file descriptor 2 while the block runs."""
    lines = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            lines.extend(log.read().decode(errors="replace").splitlines())


def tls_alerts(log_lines):
    """TLS alerts received, as BoringSSL names them (e.g. TLSV1_ALERT_CERTIFICATE_REQUIRED)."""
    return sorted({m.group(1) for line in log_lines for m in re.finditer(r"(TLSV1_ALERT_[A-Z_]+)", line)})


def refused(target, ca, cert, key, request):
    """Calls GetBalance expecting a refused handshake; returns (code, details, alerts)."""
    with grpc_core_log() as log:
        code, details = call(target, ca, cert, key, "GetBalance", request)
    alerts = tls_alerts(log)
    if not alerts and log:
        print("\n".join(f"  grpc core: {line}" for line in log), file=sys.stderr)
    return code, details, alerts


def key_usage(*allowed):
    """A KeyUsage extension with only the named usages set."""
    usages = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]  # fmt: skip
    return x509.KeyUsage(**{u: u in allowed for u in usages})


def name(common_name):
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zt-grpc"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def foreign_keystore(spiffe_id, real_ca_pem):
    """A CA and a leaf made with `cryptography` alone; the CA copies the real CA's name.

    Both follow the X509-SVID profile as zt-ca does (P-256, one URI SAN, KeyUsage critical,
    cA=false on the leaf), so the only thing wrong is who signed it.
    """
    now = datetime.datetime.now(datetime.UTC)
    copied = x509.load_pem_x509_certificate(real_ca_pem).subject
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(copied)
        .issuer_name(copied)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage("digital_signature", "key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://zt.example")]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(name("payments"))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Chain = leaf + the foreign CA, so the server sees the whole (untrusted) path.
    return leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem), key_pem


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", required=True, help="host:port; the host must be a DNS SAN of the ledger (localhost)"
    )
    parser.add_argument("--certs", required=True, type=pathlib.Path, help="directory written by `zt-ca dev`")
    args = parser.parse_args()

    def read(name):
        return (args.certs / name).read_bytes()

    ca = read("ca.pem")
    payments = (read("payments.pem"), read("payments.key"))
    auditor = (read("auditor.pem"), read("auditor.key"))
    balance_request = ledger_pb2.GetBalanceRequest(account_id=ACCOUNT)
    results = []

    def report(name, expected, observed, ok):
        results.append(ok)
        observed = " ".join(str(observed).split())  # one line, even for a printed message
        print(f"{name:<13} expected={expected:<42} observed={observed:<60} {'PASS' if ok else 'FAIL'}", flush=True)

    # allowed
    code, resp = call(args.target, ca, *payments, "GetBalance", balance_request)
    before = resp.balance_cents if code == "OK" else None
    report(
        "allowed",
        "OK (payments GetBalance)",
        f"OK {resp.account_id}={resp.balance_cents} {resp.currency}" if code == "OK" else f"{code}: {resp}",
        code == "OK" and resp.account_id == ACCOUNT,
    )

    # auditor-read
    code, resp = call(args.target, ca, *auditor, "GetBalance", balance_request)
    report(
        "auditor-read",
        "OK (auditor GetBalance)",
        f"OK {resp.account_id}={resp.balance_cents}" if code == "OK" else f"{code}: {resp}",
        code == "OK" and resp.balance_cents == before,
    )

    # denied
    transfer = ledger_pb2.TransferRequest(
        idempotency_key=str(uuid.uuid4()),
        from_account=ACCOUNT,
        to_account=OTHER_ACCOUNT,
        amount_cents=100,
        memo="interop: the auditor must not move money",
    )
    code, details = call(args.target, ca, *auditor, "Transfer", transfer)
    after_code, after = call(args.target, ca, *payments, "GetBalance", balance_request)
    unchanged = after_code == "OK" and after.balance_cents == before
    report(
        "denied",
        "PERMISSION_DENIED, balance unchanged",
        f"{code}: {details}; {ACCOUNT} {'unchanged' if unchanged else 'CHANGED or unreadable'}",
        code == "PERMISSION_DENIED" and unchanged,
    )

    # no-cert: TLS 1.3 lets the client finish first, so the refusal arrives as an alert
    # on the first read; grpc core fails the connection (UNAVAILABLE) and logs the alert.
    code, details, alerts = refused(args.target, ca, None, None, balance_request)
    report(
        "no-cert",
        "UNAVAILABLE + alert CERTIFICATE_REQUIRED",
        f"{code}: alert {','.join(alerts) or 'none'} ({details})",
        code == "UNAVAILABLE" and alerts == ["TLSV1_ALERT_CERTIFICATE_REQUIRED"],
    )

    # foreign-ca: whichever alert rustls picks (the CA copies the real CA's name, so the
    # issuer is found by name and the signature fails: decrypt_error), it must be a
    # certificate-rejection alert, not a timeout or some unrelated failure.
    cert, key = foreign_keystore("spiffe://zt.example/ns/prod/sa/payments", ca)
    code, details, alerts = refused(args.target, ca, cert, key, balance_request)
    rejection = {"TLSV1_ALERT_DECRYPT_ERROR", "TLSV1_ALERT_UNKNOWN_CA", "TLSV1_ALERT_BAD_CERTIFICATE"}
    report(
        "foreign-ca",
        "UNAVAILABLE + certificate-rejection alert",
        f"{code}: alert {','.join(alerts) or 'none'} ({details})",
        code == "UNAVAILABLE" and len(alerts) == 1 and alerts[0] in rejection,
    )

    failed = results.count(False)
    print(f"ledger_client: {len(results)} cases, {len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
