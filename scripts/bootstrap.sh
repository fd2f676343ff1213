#!/usr/bin/env bash
# Installs what Strongbox needs on a fresh Debian machine, then prints the path of a Node >= 24.
# Sourced by demo.sh, test.sh and bench.sh; every step is skipped when already satisfied.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MAJOR_MIN=24

say() { printf 'strongbox-setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Debian packages: command or file that proves it is installed -> package name.
APT_PACKAGES=(
  "/usr/sbin/mariadbd:mariadb-server"
  "/usr/bin/mariadb:mariadb-client"
  "/usr/lib/galera/libgalera_smm.so:galera-4"
  "/usr/bin/mariabackup:mariadb-backup"
  "/usr/bin/mbstream:mariadb-backup"
  "/usr/bin/age:age"
  "/usr/bin/zstd:zstd"
  "/usr/bin/socat:socat"
  "/usr/bin/lsof:lsof"
  "/usr/sbin/sshd:openssh-server"
  "/usr/bin/restic:restic"
  "/usr/bin/borg:borgbackup"
  "/usr/bin/chromium:chromium"
  # A real S3 server for the storage tests: Ceph's RADOS Gateway on a one-OSD cluster (test/helpers/s3server.ts).
  "/usr/bin/radosgw:radosgw"
  "/usr/bin/ceph-mon:ceph-mon"
  "/usr/bin/ceph-osd:ceph-osd"
  "/usr/bin/openssl:openssl"
  # Proof on the wire that Galera traffic is encrypted (test/galera/tls-wire.test.ts).
  "/usr/bin/tcpdump:tcpdump"
  # The native part sealer (native/seal.c) is built with these; without them Node seals the parts.
  "/usr/bin/cc:gcc"
  "/usr/include/openssl/evp.h:libssl-dev"
  # The Debian package (npm run package) and its test: dpkg-deb builds it, systemd-analyze verifies
  # its units, man renders its man page, zsh runs its zsh completion.
  "/usr/bin/dpkg-deb:dpkg"
  "/usr/bin/systemd-analyze:systemd"
  "/usr/bin/man:man-db"
  "/usr/bin/zsh:zsh"
)

ensure_apt() {
  local missing=() entry path pkg
  for entry in "${APT_PACKAGES[@]}" "$@"; do
    path="${entry%%:*}"; pkg="${entry##*:}"
    [ -e "$path" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The distribution's packages try to start services; we start our own servers on loopback.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1; fi
  apt-get update -q >/dev/null || die "apt-get update failed; check the network or the apt sources"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/strongbox-apt.log 2>&1 \
    || { tail -20 /tmp/strongbox-apt.log >&2; die "apt-get install ${missing[*]} failed (log: /tmp/strongbox-apt.log)"; }
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
  # A packaged mariadb may have started anyway; it is not ours and would hold port 3306.
  return 0
}

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local sys
  sys="$(command -v node || true)"
  if [ -n "$sys" ] && [ "$(node_major "$sys")" -ge "$NODE_MAJOR_MIN" ]; then NODE="$sys"; return 0; fi
  local local_node="$ROOT/.tools/node_modules/node/bin/node"
  if [ ! -x "$local_node" ] || [ "$(node_major "$local_node")" -lt "$NODE_MAJOR_MIN" ]; then
    command -v npm >/dev/null || die "no npm found; install Node.js and npm (apt-get install -y nodejs npm), then retry"
    local have="missing"
    [ -n "$sys" ] && have="$("$sys" --version)"
    say "system Node is $have; fetching Node $NODE_MAJOR_MIN from the npm registry into .tools/"
    mkdir -p "$ROOT/.tools"
    (cd "$ROOT/.tools" && npm install --prefix . --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR_MIN" >/dev/null) \
      || die "could not install node@$NODE_MAJOR_MIN from npm; install Node.js $NODE_MAJOR_MIN yourself and retry"
  fi
  NODE="$local_node"
}

# Native addons (ssh2's crypto binding) must be built for the Node that runs them: with the system's
# npm they would be built against its own (older) headers, fail to load, and ssh2 would fall back
# to JavaScript crypto at several times the CPU. The npm package of Node carries its headers.
node_headers() {
  local dir
  for dir in "$(dirname "$NODE")"/../node_modules/node-linux-*; do
    [ -f "$dir/include/node/node_api.h" ] && { (cd "$dir" && pwd); return 0; }
  done
  return 1
}

ensure_npm_deps() {
  local stamp="$ROOT/node_modules/.package-lock.json" headers=""
  headers="$(node_headers || true)"
  if [ ! -f "$stamp" ] || [ "$ROOT/package-lock.json" -nt "$stamp" ]; then
    say "installing npm dependencies"
    (cd "$ROOT" && PATH="$(dirname "$NODE"):$PATH" npm_config_nodedir="${headers:-$(npm config get nodedir)}" \
      npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
      || die "npm ci failed; run it by hand in $ROOT to see why"
  fi
  local addon="$ROOT/node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node"
  if [ -f "$addon" ] && ! "$NODE" -e "require(process.argv[1])" "$addon" 2>/dev/null; then
    say "rebuilding native npm modules for Node $("$NODE" --version)"
    (cd "$ROOT" && PATH="$(dirname "$NODE"):$PATH" npm_config_nodedir="${headers:-$(npm config get nodedir)}" \
      npm rebuild ssh2 cpu-features --loglevel=error >/dev/null) \
      || say "warning: could not rebuild ssh2's crypto binding; SSH runs on JavaScript crypto (slower)"
  fi
}

ensure_build() {
  local newest
  newest="$(find "$ROOT/src" "$ROOT/native" \( -name '*.ts' -o -name '*.c' \) -newer "$ROOT/dist/.stamp" 2>/dev/null | head -1 || true)"
  if [ ! -f "$ROOT/dist/.stamp" ] || [ -n "$newest" ]; then
    say "building"
    (cd "$ROOT" && PATH="$(dirname "$NODE"):$PATH" "$NODE" scripts/build.ts) || die "build failed"
  fi
}

bootstrap() {
  ensure_apt "$@"
  ensure_node
  ensure_npm_deps
  ensure_build
  export PATH="$(dirname "$NODE"):$ROOT/bin:$PATH"
  export STRONGBOX_NODE="$NODE"
}
