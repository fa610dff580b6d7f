#!/usr/bin/env bash
# Full vs fast verify of a store holding the Python stdlib tree and /usr/share, beside
# `ostree fsck` on a bare repository of the same trees, plus the cost of the restore record.
#
#   sudo bash bench/verify.sh            # needs root (loop mount), ostree, ~3 GiB of temp space
#   PY=/usr/lib/python3.11 SHARE=/usr/share ROUNDS=3 sudo -E bash bench/verify.sh
#
# Everything lives on a journaled ext4 loop mount in a mktemp -d folder, unmounted and removed
# on exit (also on INT/TERM). Caches are warm (the machine is shared: no drop_caches), so full
# verify measures hashing speed, not the disk. Prints a markdown table on stdout; progress on
# stderr.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TREESNAP_BIN:-$REPO_ROOT/build/treesnap}
PY=${PY:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
SHARE=${SHARE:-/usr/share}
ROUNDS=${ROUNDS:-3}
IMG_SIZE=${IMG_SIZE:-12G}

[[ $(id -u) -eq 0 ]] || { echo "bench/verify.sh needs root for the loop mount" >&2; exit 77; }
command -v ostree >/dev/null || { echo "ostree is not installed" >&2; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-verify-bench.XXXXXX")
MNT=$TMP/mnt
cleanup() {
  set +e
  mountpoint -q "$MNT" && umount "$MNT"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { # CMD...: wall time in seconds of one run (exit status 0 or 1 accepted: verify's)
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || [[ $? -eq 1 ]]
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
timed() { # ROUNDS CMD...: median of ROUNDS runs
  local n=$1 i
  shift
  for ((i = 0; i < n; i++)); do seconds "$@"; done | median
}

truncate -s "$IMG_SIZE" "$TMP/ext4.img"
mkfs.ext4 -q -F -j -i 8192 "$TMP/ext4.img"  # room for ~4 copies of 150k files
mkdir -p "$MNT"
mount -o loop "$TMP/ext4.img" "$MNT"
mkdir -p "$MNT/src"
log "copying $PY and $SHARE"
cp -a "$PY" "$MNT/src/python"
cp -a "$SHARE" "$MNT/src/share" 2>/dev/null || true   # unreadable or special files are skipped
STORE=$MNT/store
ts() { "$BIN" --store "$STORE" "$@"; }
log "snapshot"
ts snapshot "$MNT/src/python" --name python >/dev/null
ts snapshot "$MNT/src/share" --name share >/dev/null
log "ostree commit"
ostree --repo="$MNT/repo" init --mode=bare
ostree --repo="$MNT/repo" commit --branch=python --tree=dir="$MNT/src/python" >/dev/null
ostree --repo="$MNT/repo" commit --branch=share --tree=dir="$MNT/src/share" >/dev/null

FILES=$(ts --json verify --fast | jq .objects)
BYTES=$(ts --json verify | jq .bytes)
log "verify: $FILES store files, $BYTES bytes; $ROUNDS rounds each"
FULL=$(timed "$ROUNDS" ts verify)
FAST=$(timed "$ROUNDS" ts verify --fast)
FSCK=$(timed "$ROUNDS" ostree fsck --repo="$MNT/repo")

log "restore record cost (hardlink restores of the Python tree, writable files linked too)"
record=() total=()
for ((i = 0; i < ROUNDS; i++)); do
  rm -rf "$MNT/out"
  line=$(TREESNAP_TRACE=1 ts --json restore python "$MNT/out" --strategy hardlink --hardlink-writable 2>"$TMP/trace" | jq .seconds) ||
    { cat "$TMP/trace" >&2; exit 1; }
  total+=("$line")
  record+=("$(awk '/trace: restore record/ {print $4}' "$TMP/trace")")
done
REC=$(printf '%s\n' "${record[@]}" | median)
TOT=$(printf '%s\n' "${total[@]}" | median)
ENTRIES=$(ts --json show python | jq .entries)

printf '| store: Python stdlib + /usr/share (%s files, %.1f GiB), ext4 loop, warm cache | seconds (median of %s) |\n' \
  "$FILES" "$(echo "$BYTES / 1073741824" | bc -l)" "$ROUNDS"
echo '|---|---|'
printf '| `treesnap verify` (full: re-hash everything) | %.2f |\n' "$FULL"
printf '| `treesnap verify --fast` (stat + fingerprint) | %.2f |\n' "$FAST"
printf '| `ostree fsck` (bare repo, same trees) | %.2f |\n' "$FSCK"
printf '| full / fast | %.0f× |\n' "$(echo "$FULL / $FAST" | bc -l)"
echo
printf '| hardlink restore (every file linked) of the Python stdlib (%s entries) | seconds (median of %s) |\n' "$ENTRIES" "$ROUNDS"
echo '|---|---|'
printf '| restore itself (tree built and renamed; record not included) | %.3f |\n' "$TOT"
printf '| restore record (stat of each file + one transaction) | %.3f |\n' "$REC"
