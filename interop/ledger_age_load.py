"""Interop: grpcio clients (BoringSSL, gRPC core's own transparent retry) call a ledger that
retires every connection at a short maximum age, and not one call may fail.

The ledger sends GOAWAY at the age and lets calls in flight finish; gRPC core moves to a new
connection and retries, on its own, any call the closing connection did not take. One line:
name, expected, observed (calls, failures by code, seconds), PASS/FAIL. Exit 1 on FAIL.

Usage: ledger_age_load.py --target localhost:PORT --certs DIR [--threads 16] [--seconds 8]
"""

import argparse
import collections
import os
import pathlib
import sys
import threading
import time

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
import grpc  # noqa: E402

import protos

ledger_pb2, ledger_grpc = protos.load("ledger/v1/ledger")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--certs", required=True, type=pathlib.Path)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    read = lambda name: (args.certs / name).read_bytes()  # noqa: E731
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read("payments.key"),
        certificate_chain=read("payments.pem"),
    )
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    calls, failures = [0], collections.Counter()

    def worker(index):
        # A subchannel pool of its own: each thread has its own connection, as separate
        # processes would.
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.secure_channel(args.target, creds, options=options) as channel:
            stub = ledger_grpc.LedgerStub(channel)
            request = ledger_pb2.GetBalanceRequest(account_id="alice")
            while time.monotonic() < deadline:
                try:
                    stub.GetBalance(request, timeout=10)
                    outcome = None
                except grpc.RpcError as e:
                    outcome = f"{e.code().name}: {e.details()}"
                with lock:
                    calls[0] += 1
                    if outcome:
                        failures[outcome] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = sum(failures.values())
    observed = f"{calls[0]} calls by {args.threads} threads in {args.seconds:g} s, {failed} failed"
    if failures:
        observed += " (" + "; ".join(f"{n}x {what}" for what, n in failures.most_common(3)) + ")"
    ok = failed == 0 and calls[0] > 0
    print(f"{'grpcio-age':<13} expected={'0 failed across connection ages':<42} observed={observed:<60} "
          f"{'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
