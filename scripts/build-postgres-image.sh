#!/usr/bin/env bash
# Builds the lab's PostgreSQL image, zt-postgres:dev, from Debian's own packages, with no
# container registry:
#
#   1. zt-debian:<codename>  the host's Debian release, debootstrapped (--variant=minbase) from
#                            the Debian mirror this machine's apt already uses, then `docker
#                            import`ed. Skipped when that image exists (delete it to rebuild).
#   2. zt-postgres:dev       docker/postgres/Dockerfile FROM that base: `apt-get install
#                            postgresql` plus the lab's configuration and entrypoint. When
#                            `docker build` has no network, step 1 installs the packages into
#                            the root filesystem instead (chroot) and step 2 only configures.
#
# The mirror is read from /etc/apt/sources.list and /etc/apt/sources.list.d/ at build time and
# written only into the image, never into this repository. Needs root (debootstrap, chroot)
# the first time; afterwards only docker.
set -euo pipefail
cd "$(dirname "$0")/.."

image=zt-postgres:dev
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ -z "$codename" || ! -r /etc/debian_version ]]; then
  echo "error: the PostgreSQL image is built from the host's Debian release; this is not Debian" >&2
  exit 1
fi
base=zt-debian:$codename

# The Debian archive entries of the host's apt configuration, one "URI SUITE COMPONENTS" per
# line: one-line .list files and deb822 .sources files, enabled ones only, for this release
# (codename, -updates, -security) and the main component. Third-party repositories are left out.
debian_sources() {
  local files=()
  [[ -r /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  awk -v codename="$codename" '
    function emit(uris, suites,    u, s, nu, ns, U, S) {
      nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
      for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
        if (U[u] != "" && S[s] ~ ("^" codename "(-updates|-security|/updates)?$"))
          print U[u], S[s]
    }
    function flush() {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*no/ && components ~ /(^|[ \t])main([ \t]|$)/)
        emit(uris, suites)
      types = uris = suites = components = enabled = ""
    }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      if ($0 ~ /^[ \t]*#/) next
      key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val
      else if (key == "uris") uris = val
      else if (key == "suites") suites = val
      else if (key == "components") components = val
      else if (key == "enabled") enabled = val
      next
    }
    FNR == 1 && prev ~ /\.sources$/ { flush() }
    { prev = FILENAME }
    /^[ \t]*deb[ \t]/ {
      line = $0; sub(/#.*/, "", line); n = split(line, F, /[ \t]+/); i = 2
      if (F[i] ~ /^\[/) { while (i <= n && F[i] !~ /\]$/) i++; i++ }
      comps = ""; for (j = i + 2; j <= n; j++) comps = comps " " F[j]
      if (comps ~ / main( |$)/) emit(F[i], F[i + 1])
    }
    END { flush() }
  ' "${files[@]}" | sed 's#/*[[:space:]]# #' | awk '!seen[$0]++'
}

if docker image inspect "$base" >/dev/null 2>&1; then
  echo "== Base image $base exists (debootstrap skipped; 'docker rmi $base' to rebuild it)"
else
  [[ $(id -u) == 0 ]] || {
    echo "error: the first build needs root (debootstrap); afterwards only docker" >&2
    exit 1
  }
  if ! command -v debootstrap >/dev/null; then
    echo "== Installing debootstrap (apt)"
    apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  fi
  mapfile -t entries < <(debian_sources)
  mirror=""
  for entry in "${entries[@]}"; do
    read -r uri suite <<<"$entry"
    if [[ "$suite" == "$codename" ]]; then mirror=$uri; break; fi
  done
  if [[ -z "$mirror" ]]; then
    echo "error: no '$codename' main entry in /etc/apt/sources.list{,.d}: no Debian mirror to use" >&2
    exit 1
  fi
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/zt-debian-rootfs.XXXXXX")
  # debootstrap mounts /proc (and more) inside the root filesystem: unmount whatever is
  # still there before deleting, and never cross into another file system.
  remove_rootfs() {
    { grep -o " $rootfs/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$rootfs" "$rootfs.log"
  }
  trap remove_rootfs EXIT
  echo "== debootstrap --variant=minbase $codename (the host's apt mirror) into $rootfs"
  start=$SECONDS
  debootstrap --variant=minbase "$codename" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2
    echo "error: debootstrap failed" >&2
    exit 1
  }
  # The image's apt sources: the same Debian entries as the host (deb822).
  rm -f "$rootfs/etc/apt/sources.list"
  for entry in "${entries[@]}"; do
    read -r uri suite <<<"$entry"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
      "$uri" "$suite"
  done >"$rootfs/etc/apt/sources.list.d/debian.sources"
  # No recommended packages, no documentation: a smaller image.
  cat >"$rootfs/etc/apt/apt.conf.d/90zt-minimal" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CONF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90zt-nodoc" <<'CONF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
CONF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  echo "== docker import -> $base ($((SECONDS - start)) s)"
  tar -C "$rootfs" --numeric-owner --one-file-system -c . |
    docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  remove_rootfs
  trap - EXIT
fi

echo "== Building image $image (FROM $base, apt-get install postgresql)"
start=$SECONDS
# (The legacy builder's deprecation notice goes; real errors stay.)
docker build --quiet --network bridge --build-arg BASE="$base" --tag "$image" docker/postgres \
  2> >(grep -v -e 'legacy builder is deprecated' -e 'buildx component' -e 'docs.docker.com/go/buildx' -e '^ *$' >&2) >/dev/null
echo "   $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }') ($((SECONDS - start)) s)"
