#!/usr/bin/env bash
# Full vs fast verify of a store holding the Python stdlib tree and /usr/share, beside
# `ostree fsck` on a bare repository of the same trees, plus the cost of the restore record.
#
#   sudo bash bench/verify.sh            # needs root (loop mount), ostree, ~3 GiB of temp space
#   PY=/usr/lib/python3.11 SHARE=/usr/share ROUNDS=3 sudo -E bash bench/verify.sh
#
# SANDBOX=1 (the default) adds a second table for a microVM checkpoint (4 memory dumps of
# 256 MiB, a 4 GiB sparse disk image with 512 MiB written, 200 small JSON files): the ratio of
# full to fast verify is set by the bytes per file, and this is the content the tool is for.
# TREES=0 runs only that second table.
#
# Everything lives on a journaled ext4 loop mount in a mktemp -d folder, unmounted and removed
# on exit (also on INT/TERM). Warm rows: the store was just written, so full verify measures
# hashing speed, not the disk. Cold rows (COLD=1, the default): `drop_caches` before each run,
# so both verifies read from the disk (COLD=0 skips them on a machine where dropping the page
# cache would disturb others). Wall and CPU (user + sys) seconds, medians of ROUNDS: on a shared
# machine CPU time is the steadier figure. Prints a markdown table on stdout; progress on stderr.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TREESNAP_BIN:-$REPO_ROOT/build/treesnap}
PY=${PY:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
SHARE=${SHARE:-/usr/share}
ROUNDS=${ROUNDS:-3}
IMG_SIZE=${IMG_SIZE:-16G}

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
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# CMD...: "wall cpu" seconds of one run (cpu = user + sys; exit status 0 or 1 accepted: verify's)
one_run() {
  /usr/bin/time -f '%e %U %S' -o "$TMP/time" "$@" >/dev/null 2>&1 || [[ $? -eq 1 ]]
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$TMP/time"
}
# ROUNDS COLD CMD...: median wall and median cpu of ROUNDS runs; COLD=1 drops caches before each
timed() {
  local n=$1 cold=$2 i
  shift 2
  for ((i = 0; i < n; i++)); do
    [[ $cold == 1 ]] && drop_caches
    one_run "$@"
  done >"$TMP/runs"
  echo "$(cut -d' ' -f1 "$TMP/runs" | median) $(cut -d' ' -f2 "$TMP/runs" | median)"
}

wall() { echo "${1%% *}"; }
cpu() { echo "${1##* }"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.1f×'; }

truncate -s "$IMG_SIZE" "$TMP/ext4.img"
mkfs.ext4 -q -F -j -i 8192 "$TMP/ext4.img"  # room for ~4 copies of 150k files
mkdir -p "$MNT"
mount -o loop "$TMP/ext4.img" "$MNT"
mkdir -p "$MNT/src"
if [[ ${TREES:-1} == 1 ]]; then
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
  FULL=$(timed "$ROUNDS" 0 "$BIN" --store "$STORE" verify)
  FAST=$(timed "$ROUNDS" 0 "$BIN" --store "$STORE" verify --fast)
  FSCK=$(timed "$ROUNDS" 0 ostree fsck --repo="$MNT/repo")
  if [[ ${COLD:-1} == 1 ]]; then
    log "cold cache (drop_caches before each run)"
    CFULL=$(timed "$ROUNDS" 1 "$BIN" --store "$STORE" verify)
    CFAST=$(timed "$ROUNDS" 1 "$BIN" --store "$STORE" verify --fast)
    CFSCK=$(timed "$ROUNDS" 1 ostree fsck --repo="$MNT/repo")
  fi

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

  printf '| store: Python stdlib + /usr/share (%s files, %.1f GiB), ext4 loop | warm: wall s | warm: CPU s | cold: wall s | cold: CPU s |\n' \
    "$FILES" "$(echo "$BYTES / 1073741824" | bc -l)"
  echo '|---|---|---|---|---|'
  row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$(wall "$2")" "$(cpu "$2")" "$(wall "${3:-- -}")" "$(cpu "${3:-- -}")"; }
  row '`treesnap verify` (full: re-hash everything)' "$FULL" "${CFULL:-}"
  row '`treesnap verify --fast` (stat + fingerprint)' "$FAST" "${CFAST:-}"
  row '`ostree fsck` (bare repo, same trees)' "$FSCK" "${CFSCK:-}"
  printf '| full / fast | %s | %s |' "$(ratio "$(wall "$FULL")" "$(wall "$FAST")")" "$(ratio "$(cpu "$FULL")" "$(cpu "$FAST")")"
  if [[ -n ${CFULL:-} ]]; then
    printf ' %s | %s |\n' "$(ratio "$(wall "$CFULL")" "$(wall "$CFAST")")" "$(ratio "$(cpu "$CFULL")" "$(cpu "$CFAST")")"
  else
    printf ' | |\n'
  fi
  printf '| ostree fsck / fast | %s | %s |' "$(ratio "$(wall "$FSCK")" "$(wall "$FAST")")" "$(ratio "$(cpu "$FSCK")" "$(cpu "$FAST")")"
  if [[ -n ${CFULL:-} ]]; then
    printf ' %s | %s |\n' "$(ratio "$(wall "$CFSCK")" "$(wall "$CFAST")")" "$(ratio "$(cpu "$CFSCK")" "$(cpu "$CFAST")")"
  else
    printf ' | |\n'
  fi
  echo
  printf '| hardlink restore (every file linked) of the Python stdlib (%s entries) | seconds (median of %s) |\n' "$ENTRIES" "$ROUNDS"
  echo '|---|---|'
  printf '| restore itself (tree built and renamed; record not included) | %.3f |\n' "$TOT"
  printf '| restore record (one packed blob + fingerprint ctimes, one transaction) | %.3f |\n' "$REC"
  printf '| record / restore | %.0f%% |\n' "$(echo "100 * $REC / $TOT" | bc -l)"
fi  # TREES

[[ ${SANDBOX:-1} == 1 ]] || exit 0
ROUNDS=${SANDBOX_ROUNDS:-5}
log "sandbox checkpoint store"
VM=$MNT/src/vm
mkdir -p "$VM/config"
for i in 0 1 2 3; do head -c 256M /dev/urandom >"$VM/mem$i.dump"; done
truncate -s 4G "$VM/disk.img"
for i in $(seq 0 7); do  # 64 MiB written every 512 MiB, the rest holes
  head -c 64M /dev/urandom | dd of="$VM/disk.img" bs=1M seek=$((i * 512)) conv=notrunc status=none
done
for i in $(seq 1 200); do printf '{"vcpu": %d, "mem_mib": 1024, "id": "vm-%d"}\n' "$i" "$i" >"$VM/config/$i.json"; done
VSTORE=$MNT/vmstore
"$BIN" --store "$VSTORE" snapshot "$VM" --name vm >/dev/null
VFILES=$("$BIN" --store "$VSTORE" --json verify --fast | jq .objects)
VBYTES=$("$BIN" --store "$VSTORE" --json verify | jq .bytes)
VFULL=$(timed "$ROUNDS" 0 "$BIN" --store "$VSTORE" verify)
VFAST=$(timed "$ROUNDS" 0 "$BIN" --store "$VSTORE" verify --fast)
echo
printf '| store: microVM checkpoint (%s files, %.1f GiB logical), ext4 loop, warm cache | wall s | CPU s |\n' \
  "$VFILES" "$(echo "$VBYTES / 1073741824" | bc -l)"
echo '|---|---|---|'
printf '| `treesnap verify` (full) | %s | %s |\n' "$(wall "$VFULL")" "$(cpu "$VFULL")"
printf '| `treesnap verify --fast` | %s | %s |\n' "$(wall "$VFAST")" "$(cpu "$VFAST")"
# CPU seconds of the fast run can round to 0.00: the ratio is then given by wall time only.
if [[ $(echo "$(cpu "$VFAST") > 0" | bc) == 1 ]]; then vcpu_ratio=$(ratio "$(cpu "$VFULL")" "$(cpu "$VFAST")"); else vcpu_ratio="(fast CPU < 0.01 s)"; fi
printf '| full / fast | %s | %s |\n' "$(ratio "$(wall "$VFULL")" "$(wall "$VFAST")")" "$vcpu_ratio"
