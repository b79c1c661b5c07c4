#!/usr/bin/env bash
# Builds the lab's image, zt-grpc:dev, with no registry: statically linked release binaries
# (glibc with crt-static; rustls needs no OpenSSL) copied into a FROM scratch image.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
echo "== Building static binaries ($target, +crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" -p ledger -p payments -p zt-lab -p zt-pki

context=target/image
rm -rf "$context"
mkdir -p "$context/bin" "$context/config" "$context/empty"
for bin in ledger payments zt-lab zt-ca; do
  cp "target/$target/release/$bin" "$context/bin/"
  # A static binary has no interpreter: refuse to ship one that needs a dynamic loader.
  if readelf -l "$context/bin/$bin" | grep 'Requesting program interpreter' >/dev/null; then
    echo "error: $bin is dynamically linked" >&2
    exit 1
  fi
done
cp config/ledger-policy.json "$context/config/"

echo "== Building image zt-grpc:dev (FROM scratch)"
docker build --quiet --tag zt-grpc:dev --file docker/Dockerfile "$context"
