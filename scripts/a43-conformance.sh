#!/usr/bin/env bash
# Differential conformance test of zt-authz against gRPC C++'s own A43 engine.
# See conformance/a43/README.md.
#
#   scripts/a43-conformance.sh                 # full run (figures in SECURITY.md)
#   A43_CASES=300 scripts/a43-conformance.sh   # bounded run (CI)
#
# Installs Debian 12's gRPC packages, fetches the same version's source package with
# `apt-get source` into target/a43/ (the deb-src entry is derived at run time from the
# machine's own apt sources), compiles the A43 translator and provider that libgrpc++ 1.51
# declares but does not ship, plus conformance/a43/a43_server.cc, and runs the comparison.
# The build is cached under target/a43/; only a changed a43_server.cc is recompiled.
# Every A43_* variable is passed to zt-a43-conformance (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/a43
mkdir -p "$work"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(build-essential pkg-config dpkg-dev openssl libgrpc++-dev libgrpc-dev
          libprotobuf-dev protobuf-compiler libabsl-dev libre2-dev libssl-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# A deb-src entry for every enabled Debian entry of this release (main component), copied
# from the machine's own sources: URIs, suites and keyring as they are, only the type changed.
derive_deb_src() {
    local codename
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    shopt -s nullglob
    local sources=(/etc/apt/sources.list.d/*.sources)
    shopt -u nullglob
    if [ ${#sources[@]} -gt 0 ]; then
        awk -v code="$codename" '
        function has(list, word) { return (" " list " ") ~ (" " word " ") }
        function flush() {
            if (has(types, "deb") && has(suites, code) && has(comps, "main") && uris != "") {
                printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uris, suites, comps
                if (signed != "") printf "Signed-By: %s\n", signed
                printf "\n"
            }
            types = uris = suites = comps = signed = ""
        }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]*#/ { next }
        /^Types:/      { sub(/^Types:[ \t]*/, "");      types = $0;  next }
        /^URIs:/       { sub(/^URIs:[ \t]*/, "");       uris = $0;   next }
        /^Suites:/     { sub(/^Suites:[ \t]*/, "");     suites = $0; next }
        /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0;  next }
        /^Signed-By:/  { sub(/^Signed-By:[ \t]*/, "");  signed = $0; next }
        END { flush() }' "${sources[@]}"
    fi
    if [ -f /etc/apt/sources.list ]; then
        # One-line format: "deb [opts] URI SUITE COMPONENTS..." -> "deb-src ...".
        sed -n -E "s/^[[:space:]]*deb[[:space:]]+(.*[[:space:]]$codename([-a-z]*)?[[:space:]].*main.*)$/deb-src \1/p" \
            /etc/apt/sources.list | sed 's/^/# one-line: /'
    fi
}

ensure_source() {
    local list=/etc/apt/sources.list.d/zt-a43-deb-src.sources
    local one_line=/etc/apt/sources.list.d/zt-a43-deb-src.list
    if [ ! -f "$list" ] && [ ! -f "$one_line" ]; then
        local derived
        derived=$(derive_deb_src)
        if grep -q '^Types: deb-src' <<<"$derived"; then
            grep -v '^# one-line: ' <<<"$derived" | as_root tee "$list" >/dev/null
        fi
        if grep -q '^# one-line: ' <<<"$derived"; then
            sed -n 's/^# one-line: //p' <<<"$derived" | as_root tee "$one_line" >/dev/null
        fi
        [ -f "$list" ] || [ -f "$one_line" ] || {
            echo "a43-conformance: no Debian deb entry to derive a deb-src entry from" >&2
            exit 1
        }
        as_root apt-get update -qq
    fi
}

build_started=$(date +%s)
if [ ${#missing[@]} -gt 0 ]; then
    echo "a43-conformance: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

version=$(dpkg-query -W -f='${source:Upstream-Version}' libgrpc++-dev)
src=$work/grpc-$version
if [ ! -f "$src/src/core/lib/security/authorization/rbac_translator.cc" ]; then
    ensure_source
    rm -rf "$work/source" && mkdir -p "$work/source"
    # The source package of exactly the installed binary version.
    full=$(dpkg-query -W -f='${source:Package}=${source:Version}' libgrpc++-dev)
    (cd "$work/source" && apt-get source -qq --download-only "$full" >/dev/null 2>&1 \
        && dpkg-source -x *.dsc "$src" >/dev/null 2>&1)
fi

nice make -s -f conformance/a43/Makefile GRPC_SRC="$src" OUT="$work/build"
build_done=$(date +%s)
echo "a43-conformance: C++ side ready in $((build_done - build_started)) s"

nice cargo build -q -p zt-authz-conformance
A43_SERVER="$work/build/a43_server" exec "${CARGO_TARGET_DIR:-$root/target}/debug/zt-a43-conformance" "$@"
