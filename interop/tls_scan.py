"""Interop: scan a running `ledger` with sslyze (nassl's OpenSSL builds, not rustls).

The ledger requires a client certificate, so sslyze presents one (payments'). Asserts:

  versions   SSL 2.0, SSL 3.0, TLS 1.0, 1.1 and 1.2 are all rejected; TLS 1.3 is accepted
  suites     every accepted TLS 1.3 suite is one of Mozilla's `modern` suites (AES-GCM,
             ChaCha20-Poly1305); the accepted suites are listed
  groups     every accepted key-exchange group is one of X25519, secp256r1, secp384r1
  mozilla    sslyze's own Mozilla `modern` configuration checker reports no issue

Certificate path validation needs a trust store that knows the project's private CA: sslyze
validates against its bundled public stores (Mozilla, Apple, ...) and, given
`custom_ca_file`, against the supplied CA as well; the Mozilla checker accepts a chain that
any of them verifies. So the CA is supplied, the name scanned is `localhost` (a DNS SAN of
the dev ledger certificate) and no exception to the Mozilla check is needed. Should one ever
be needed, it has to be added below, named and explained; any other issue fails the scan.

Usage: tls_scan.py --host localhost --ip 127.0.0.1 --port PORT --ca PEM --cert PEM --key PEM
"""

import argparse
import pathlib
import sys
import warnings

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from sslyze import (
    CertificateInfoExtraArgument,
    ClientAuthenticationCredentials,
    ScanCommandAttemptStatusEnum,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)

REJECTED_VERSIONS = {
    "ssl_2_0_cipher_suites": "SSL 2.0",
    "ssl_3_0_cipher_suites": "SSL 3.0",
    "tls_1_0_cipher_suites": "TLS 1.0",
    "tls_1_1_cipher_suites": "TLS 1.1",
    "tls_1_2_cipher_suites": "TLS 1.2",
}
ALLOWED_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
ALLOWED_GROUPS = {"X25519", "secp256r1", "secp384r1"}

# sslyze's bundled public trust stores hold roots with serial number 0 (e.g. "Go Daddy Class 2
# Certification Authority"), and cryptography warns about each when sslyze loads them. That
# is about those roots, not the ledger: the scan checks the serials of the certificates it
# received and of our CA itself (see `cert` below).
warnings.filterwarnings(
    "ignore",
    message="Parsed a serial number which wasn't positive",
    category=CryptographyDeprecationWarning,
    module=r"sslyze\.plugins\.certificate_info\.trust_stores\.trust_store",
)

# Mozilla `modern` issues accepted on purpose, by the checker's issue key, each with the
# reason. Empty: the ledger passes the check as it is. Keep it narrow if it ever grows.
DOCUMENTED_MOZILLA_EXCEPTIONS: dict = {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost", help="name sent as SNI and checked against the certificate")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True, type=pathlib.Path, help="the private CA, as a trust store")
    parser.add_argument("--cert", required=True, type=pathlib.Path, help="client certificate to present")
    parser.add_argument("--key", required=True, type=pathlib.Path, help="its private key")
    args = parser.parse_args()

    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=args.host, port=args.port, ip_address=args.ip),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=args.host,
            tls_client_auth_credentials=ClientAuthenticationCredentials(
                certificate_chain_path=args.cert, key_path=args.key
            ),
        ),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=args.ca)
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())

    failures = []

    def check(name, ok, observed):
        print(f"{name:<10} {observed}  {'PASS' if ok else 'FAIL'}", flush=True)
        if not ok:
            failures.append(name)

    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        check("connect", False, f"scan not completed: {result.connectivity_error_trace}")
        return 1
    probe = result.connectivity_result
    # (probe.client_auth_requirement is not shown: sslyze only probes it when it has no
    # client certificate to offer, so with one it always says DISABLED.)
    print(
        f"connected  {args.host}:{args.port} ({args.ip}); highest version {probe.highest_tls_version_supported.name}, "
        f"cipher {probe.cipher_suite_supported}",
        flush=True,
    )

    scans = result.scan_result
    errors = []
    for command in sorted(SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER, key=lambda c: c.value):
        attempt = getattr(scans, command.value)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
            errors.append(f"{command.value}: {attempt.error_reason} {attempt.error_trace}")
    for error in errors:
        print(f"           error: {error}", flush=True)
    total = len(SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER)
    check("commands", not errors, f"{total - len(errors)}/{total} scan commands completed")
    if errors:
        return 1

    by_version = {name: getattr(scans, field).result for field, name in REJECTED_VERSIONS.items()}
    by_version["TLS 1.3"] = tls13 = scans.tls_1_3_cipher_suites.result
    accepted = [name for name, r in by_version.items() if r.is_tls_version_supported]
    check(
        "versions",
        accepted == ["TLS 1.3"],
        f"accepted: {', '.join(accepted) or 'none'}; "
        f"rejected: {', '.join(name for name in by_version if name not in accepted)}",
    )

    # Every accepted suite of every version: outside TLS 1.3 any suite at all is a failure.
    suites = {name: [s.cipher_suite.name for s in r.accepted_cipher_suites] for name, r in by_version.items()}
    weak = [s for name, names in suites.items() for s in names if name != "TLS 1.3" or s not in ALLOWED_TLS13_SUITES]
    keys = sorted(
        {
            f"{s.ephemeral_key.curve_name} {s.ephemeral_key.size} bit"
            for s in tls13.accepted_cipher_suites
            if s.ephemeral_key is not None and hasattr(s.ephemeral_key, "curve_name")
        }
    )
    listed = "; ".join(f"{name}: {', '.join(names)}" for name, names in suites.items() if names)
    check(
        "suites",
        suites["TLS 1.3"] and not weak,
        f"{sum(map(len, suites.values()))} accepted ({listed}; key exchange used: {', '.join(keys)}); "
        f"{len(tls13.rejected_cipher_suites)} TLS 1.3 suites rejected: "
        f"{', '.join(s.cipher_suite.name for s in tls13.rejected_cipher_suites)}"
        + (f"; NOT ALLOWED: {', '.join(weak)}" if weak else ""),
    )

    curves = scans.elliptic_curves.result
    groups = [c.name for c in curves.supported_curves or []]
    bad_groups = [g for g in groups if g not in ALLOWED_GROUPS]
    check(
        "groups",
        groups and not bad_groups,
        f"{len(groups)} accepted: {', '.join(groups)}; "
        f"{len(curves.rejected_curves or [])} rejected: {', '.join(c.name for c in curves.rejected_curves or [])}"
        + (f"; NOT ALLOWED: {', '.join(bad_groups)}" if bad_groups else ""),
    )

    # Public stores cannot know a private CA: only "Supplied CA file" is expected to verify.
    ours = x509.load_pem_x509_certificates(args.ca.read_bytes())
    for deployment in scans.certificate_info.result.certificate_deployments:
        chain = deployment.received_certificate_chain
        leaf = chain[0]
        results = {r.trust_store.name: r for r in deployment.path_validation_results}
        supplied = results.get("Supplied CA file")
        others = sorted(name for name, r in results.items() if r.was_validation_successful and r is not supplied)
        lifespan = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        serials_ok = all(c.serial_number > 0 for c in chain + ours)
        verdict = (
            "missing" if supplied is None else "ok" if supplied.was_validation_successful else supplied.validation_error
        )
        check(
            "cert",
            supplied is not None and supplied.was_validation_successful and serials_ok,
            f"{leaf.subject.rfc4514_string()} ({len(chain)} cert(s) sent), {leaf.public_key().curve.name}, "
            f"{leaf.signature_algorithm_oid._name}, lifespan {lifespan}, serials positive: {serials_ok}; "
            f"path validation for {args.host}: supplied CA {verdict}, "
            f"public stores that verify it: {', '.join(others) or 'none'}",
        )

    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_MODERN))
        check("mozilla", True, "compliant with Mozilla `modern` (sslyze's checker, profile 5.7)")
    except ServerNotCompliantWithTlsConfiguration as e:
        unexpected = {k: v for k, v in e.issues.items() if k not in DOCUMENTED_MOZILLA_EXCEPTIONS}
        for key, issue in e.issues.items():
            tag = (
                f"documented exception: {DOCUMENTED_MOZILLA_EXCEPTIONS[key]}"
                if key in DOCUMENTED_MOZILLA_EXCEPTIONS
                else "FAIL"
            )
            print(f"           mozilla issue {key}: {issue} [{tag}]", flush=True)
        check("mozilla", not unexpected, f"{len(e.issues)} issue(s), {len(unexpected)} not documented as exceptions")

    print(f"tls_scan: {len(failures)} check(s) failed" + (f": {', '.join(failures)}" if failures else ""), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
