#!/usr/bin/env bash
# scripts/deps.sh — the one list of Debian packages quire needs.
#
# Idempotent: installs only what is missing. As root it runs apt-get
# non-interactively; otherwise it prints the exact command and fails.
#   scripts/deps.sh          build + test + bench packages
#   scripts/deps.sh --check  only report what is missing (exit 1 if anything)
# s3rver (npm) is installed by scripts/s3rver.sh, on demand, by the S3 tests.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config clang libclang-rt-dev
  # HTTP server and client (S3 included)
  libmicrohttpd-dev libcurl4-openssl-dev
  # wire messages
  libprotobuf-c-dev protobuf-c-compiler
  # checksums, crypto, compression, config
  libxxhash-dev libsodium-dev libzstd-dev libinih-dev
  # SQLite: the VFS target and the shell
  libsqlite3-dev sqlite3
  # benchmarks: the peers we measure against
  libleveldb-dev librocksdb-dev liblmdb-dev libroaring-dev
  # S3 tests: node runs s3rver (scripts/s3rver.sh installs s3rver itself
  # from npm, cached; npm is added below when the command is missing);
  # python3 checks SigV4 signatures
  nodejs python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm: a separate Debian package, but bundled with other builds of nodejs
# (NodeSource), where installing Debian's npm would conflict.
if [[ " ${missing[*]-} " == *" nodejs "* ]] || ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing Debian packages: ${missing[*]}"
  exit 1
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "deps.sh: run as root:  apt-get update && ${cmd[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${cmd[@]}" >/dev/null
