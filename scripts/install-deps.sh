#!/usr/bin/env bash
# Installs every Debian 12 package treesnap needs to build, test and benchmark. Idempotent: when
# everything is present it changes nothing and needs no network.
set -euo pipefail

packages=(
  # build
  cmake ninja-build pkg-config g++
  libssl-dev libsqlite3-dev libzstd-dev libxxhash-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libtomlplusplus-dev
  libgtest-dev libgmock-dev
  libcurl4-openssl-dev
  # tests: independent tools that check what treesnap wrote, and file systems to test on
  libarchive-tools attr acl jq python3 python3-venv e2fsprogs xfsprogs btrfs-progs util-linux bsdutils
  # tests of the OCI registry transport: a real registry, a real client, a forward proxy, htpasswd
  docker-registry skopeo tinyproxy apache2-utils curl
  # benchmark peers
  ostree rsync hyperfine time bc
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
