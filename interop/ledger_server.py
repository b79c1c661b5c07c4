"""Interop: a minimal Python grpcio ledger, to point the Rust `payments` client at.

It serves ledger.v1.Ledger/GetBalance (what `payments balance ACCOUNT` calls) over mutual
TLS with require_client_auth=True, from a certificate issued by `zt-ca issue`. Transfer and
ListTransfers are left UNIMPLEMENTED. Every handler call is counted: one line per call is
appended to --calls-file (and printed), so a test can prove that a client which refused this
server's identity never reached a handler.

Prints `listening on HOST:PORT` once serving (port 0 picks a free port); SIGTERM or SIGINT
stops it and it exits 0.

Usage: ledger_server.py --listen 127.0.0.1:0 --cert PEM --key PEM --ca PEM --calls-file PATH
"""

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

import protos

ledger_pb2, ledger_grpc = protos.load("ledger/v1/ledger")

BALANCES = {"alice": 4_242_00, "bob": 17_00}  # cents; different from the real ledger's


def peer_identity(context):
    """The caller's SPIFFE ID (grpc core extracts it from the one URI SAN), else its CN."""
    auth = context.auth_context()
    for key in ("peer_spiffe_id", "x509_common_name"):
        if auth.get(key):
            return auth[key][0].decode()
    return "unknown"


class Ledger(ledger_grpc.LedgerServicer):
    def __init__(self, calls_file):
        self.calls_file = calls_file
        self.lock = threading.Lock()

    def _count(self, method, context):
        line = f"{method} from {peer_identity(context)}"
        with self.lock, open(self.calls_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        print(f"handler call: {line}", flush=True)

    def GetBalance(self, request, context):
        self._count("GetBalance", context)
        if request.account_id not in BALANCES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown account {request.account_id!r}")
        return ledger_pb2.GetBalanceResponse(
            account_id=request.account_id, balance_cents=BALANCES[request.account_id], currency="USD"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--cert", required=True, help="this server's certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="this server's private key (PEM)")
    parser.add_argument("--ca", required=True, help="CA bundle client certificates must chain to (PEM)")
    parser.add_argument("--calls-file", required=True, help="one line is appended per handler call")
    args = parser.parse_args()

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    open(args.calls_file, "a", encoding="utf-8").close()  # exists, even if nothing calls
    creds = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))],
        root_certificates=read(args.ca),
        require_client_auth=True,
    )
    # SO_REUSEPORT off (grpc turns it on): a busy port must be an error, not a shared port.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    ledger_grpc.add_LedgerServicer_to_server(Ledger(args.calls_file), server)
    host = args.listen.rsplit(":", 1)[0]
    try:
        port = server.add_secure_port(args.listen, creds)
    except RuntimeError as e:
        sys.exit(f"ledger_server: cannot listen on {args.listen}: {e}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"listening on {host}:{port}", flush=True)

    while not stop.wait(0.5):
        pass
    server.stop(grace=2).wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
