"""Interop: checks echo_server.py (or any bench.v1.Echo server) with a Python grpcio client.

Cases, one line each (name, expected, observed, PASS/FAIL); exit status 1 if any fails:

  echo-roundtrip  payloads of 0 B, 1 B, 64 B, 64 KiB and 1 MiB come back byte for byte
  echo-sequential 200 sequential 64 B calls on one connection succeed (prints calls/s:
                  a smoke figure, not a benchmark)
  echo-no-cert    a client without a certificate is refused (UNAVAILABLE)

Usage: echo_client.py --target localhost:PORT --ca PEM --cert PEM --key PEM
"""

import argparse
import os
import sys
import time

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # the no-cert case's expected failure is noise
import grpc  # noqa: E402  (after GRPC_VERBOSITY)

import protos  # noqa: E402

echo_pb2, echo_grpc = protos.load("bench/v1/echo")

TIMEOUT_S = 10
SEQUENTIAL_CALLS = 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port; the host must be a DNS SAN of the server")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    ca, cert, key = read(args.ca), read(args.cert), read(args.key)
    results = []

    def report(name, expected, observed, ok):
        results.append(ok)
        observed = " ".join(str(observed).split())  # one line
        print(f"{name:<16} expected={expected:<32} observed={observed:<50} {'PASS' if ok else 'FAIL'}", flush=True)

    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    with grpc.secure_channel(args.target, creds) as channel:
        stub = echo_grpc.EchoStub(channel)
        sizes = [0, 1, 64, 64 * 1024, 1024 * 1024]
        try:
            bad = []
            for size in sizes:
                payload = os.urandom(size)
                if stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=TIMEOUT_S).payload != payload:
                    bad.append(size)
            report(
                "echo-roundtrip",
                f"{len(sizes)} payloads echoed",
                f"mismatch at {bad}" if bad else f"{len(sizes)} payloads echoed",
                not bad,
            )
        except grpc.RpcError as e:
            report("echo-roundtrip", f"{len(sizes)} payloads echoed", f"{e.code().name}: {e.details()}", False)

        try:
            request = echo_pb2.EchoRequest(payload=b"x" * 64)
            start = time.monotonic()
            for _ in range(SEQUENTIAL_CALLS):
                stub.Echo(request, timeout=TIMEOUT_S)
            elapsed = time.monotonic() - start
            report(
                "echo-sequential",
                f"{SEQUENTIAL_CALLS} calls OK",
                f"{SEQUENTIAL_CALLS} calls OK, {SEQUENTIAL_CALLS / elapsed:.0f} calls/s",
                True,
            )
        except grpc.RpcError as e:
            report("echo-sequential", f"{SEQUENTIAL_CALLS} calls OK", f"{e.code().name}: {e.details()}", False)

    anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
    with grpc.secure_channel(args.target, anonymous) as channel:
        try:
            echo_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=TIMEOUT_S)
            report("echo-no-cert", "UNAVAILABLE", "OK: served a client without a certificate", False)
        except grpc.RpcError as e:
            report(
                "echo-no-cert",
                "UNAVAILABLE",
                f"{e.code().name}: {e.details()}",
                e.code() == grpc.StatusCode.UNAVAILABLE,
            )

    failed = results.count(False)
    print(f"echo_client: {len(results)} cases, {len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
