#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then snapshots a sample tree into
# the default store and restores it, printing what treesnap did.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ts=build/treesnap
sample=$(mktemp -d)
trap 'rm -rf "$sample"' EXIT
# A small environment-like tree: read-only library files, writable config, a symlink, an empty file.
mkdir -p "$sample/env/lib" "$sample/env/etc"
cp -a /usr/share/common-licenses/. "$sample/env/lib/" 2>/dev/null || seq 1 1000 > "$sample/env/lib/data"
chmod -R a-w "$sample/env/lib"
echo "setting = 1" > "$sample/env/etc/app.conf"
ln -s lib "$sample/env/current"
: > "$sample/env/etc/empty"
echo "store: $($ts --json init | jq -r .store 2>/dev/null || echo default)"
$ts snapshot "$sample/env" --name demo:v1 --force
$ts restore demo:v1 "$sample/out"
$ts list
$ts verify
