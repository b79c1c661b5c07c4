"""Interop: bench.v1.Echo served by Python grpcio (grpc.aio) over mutual TLS.

A second, independent server implementation for the benchmark's load generator
(crates/zt-bench): Echo returns the payload it was sent. Client certificates are required
(require_client_auth=True) and must chain to --ca; no authorization policy is applied.

Prints exactly one line, `listening on HOST:PORT`, to stdout once it is serving (port 0
picks a free port and the line gives the real one). SIGTERM or SIGINT: stops accepting, lets
in-flight RPCs finish (up to 5 s) and exits 0.

Usage: echo_server.py --listen HOST:PORT --cert PEM --key PEM --ca PEM
"""

import argparse
import asyncio
import signal
import sys

import grpc

import protos

echo_pb2, echo_grpc = protos.load("bench/v1/echo")


class Echo(echo_grpc.EchoServicer):
    async def Echo(self, request, context):
        return echo_pb2.EchoResponse(payload=request.payload)


async def serve(args):
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    creds = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))],
        root_certificates=read(args.ca),
        require_client_auth=True,
    )
    # grpc sets SO_REUSEPORT by default: a second server on a busy port would "start" and
    # share it silently. Off, so a busy port is an error.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    echo_grpc.add_EchoServicer_to_server(Echo(), server)
    host = args.listen.rsplit(":", 1)[0]
    try:
        port = server.add_secure_port(args.listen, creds)
    except RuntimeError as e:  # a busy port or a bad address
        print(f"echo_server: cannot listen on {args.listen}: {e}", file=sys.stderr)
        return 1
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {host}:{port}", flush=True)

    await stop.wait()
    await server.stop(grace=5)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--cert", required=True, help="this server's certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="this server's private key (PEM)")
    parser.add_argument("--ca", required=True, help="CA bundle client certificates must chain to (PEM)")
    return asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
