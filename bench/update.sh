#!/usr/bin/env bash
# restore --update of a restored Python stdlib tree to a snapshot where 1 file changed and where
# 10% of the files changed, beside `rsync -a --delete` of the same change and a fresh full restore.
#
#   sudo bash bench/update.sh            # needs root (loop mount), rsync, ~6 GiB of sparse image
#   PY=/usr/lib/python3.11 ROUNDS=3 sudo -E bash bench/update.sh
#
# Everything lives on a journaled ext4 loop mount (inode tables initialised at mkfs) in a
# mktemp -d folder, unmounted and removed on exit (also on INT/TERM). Rounds are interleaved:
# each round runs every case of every tool once, in turn, so drift on this shared machine hits
# them alike. Before each timed run, untimed: the target is brought back to v1 (treesnap by
# `restore v1 --update`, rsync by `rsync -a --delete` from v1, the fresh restore's target removed)
# and `sync`. Caches are warm. Prints a markdown table on stdout; progress on stderr.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TREESNAP_BIN:-$REPO_ROOT/build/treesnap}
PY=${PY:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
ROUNDS=${ROUNDS:-5}
IMG_SIZE=${IMG_SIZE:-16G}

[[ $(id -u) -eq 0 ]] || { echo "bench/update.sh needs root for the loop mount" >&2; exit 77; }
command -v rsync >/dev/null || { echo "rsync is not installed" >&2; exit 77; }
[[ -x $BIN ]] || { echo "no treesnap binary at $BIN (build first)" >&2; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-update-bench.XXXXXX")
MNT=$TMP/mnt
cleanup() {
  set +e
  mountpoint -q "$MNT" && { umount "$MNT" || umount -l "$MNT"; }
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.3f-%.3f", lo, hi}'; }
# CMD...: wall seconds of one run (EPOCHREALTIME, around the command only); exit status must be 0.
timed() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >"$TMP/last.out" 2>"$TMP/last.err" || { log "failed: $*"; cat "$TMP/last.err" >&2; exit 1; }
  t1=$EPOCHREALTIME
  echo "$t1 - $t0" | bc -l
}

truncate -s "$IMG_SIZE" "$TMP/ext4.img"
mkfs.ext4 -q -F -j -i 8192 -E lazy_itable_init=0,lazy_journal_init=0 "$TMP/ext4.img"
mkdir -p "$MNT"
mount -o loop "$TMP/ext4.img" "$MNT"

log "copying $PY"
cp -a "$PY" "$MNT/v1"
find "$MNT/v1" -type f -printf '%P\n' | LC_ALL=C sort >"$TMP/files"
FILES=$(wc -l <"$TMP/files")
ENTRIES=$(find "$MNT/v1" | wc -l)
# one: the first file changed; ten: every tenth file changed (a line appended, so size and mtime
# change as an upgrade's would).
cp -a "$MNT/v1" "$MNT/one"
cp -a "$MNT/v1" "$MNT/ten"
change() { # TREE REL
  chmod u+w "$1/$2"
  echo "# changed by bench/update.sh" >>"$1/$2"
}
change "$MNT/one" "$(head -n 1 "$TMP/files")"
awk 'NR % 10 == 1' "$TMP/files" >"$TMP/ten.list"
while IFS= read -r rel; do change "$MNT/ten" "$rel"; done <"$TMP/ten.list"
CHANGED_TEN=$(wc -l <"$TMP/ten.list")

STORE=$MNT/store
ts() { "$BIN" --store "$STORE" "$@"; }
log "snapshots of v1, one, ten ($FILES files, $ENTRIES entries)"
for v in v1 one ten; do ts snapshot "$MNT/$v" --name "py:$v" >/dev/null; done
ts restore py:v1 "$MNT/ts" >/dev/null
cp -a "$MNT/v1" "$MNT/rs"

declare -A T
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r of $ROUNDS"
  for c in one ten; do
    ts restore py:v1 "$MNT/ts" --update >/dev/null && sync
    T[ts_$c]+="$(timed ts --json restore "py:$c" "$MNT/ts" --update) "
    cp "$TMP/last.out" "$TMP/update-$c.json"
    rsync -a --delete "$MNT/v1/" "$MNT/rs/" && sync
    T[rs_$c]+="$(timed rsync -a --delete "$MNT/$c/" "$MNT/rs/") "
    rm -rf "$MNT/fresh" && sync
    T[fr_$c]+="$(timed ts restore "py:$c" "$MNT/fresh") "
  done
done

# The updated tree equals the last fresh restore of the same snapshot (type, mode, size, mtime;
# linked read-only files show their inode's mtime in both, docs/format.md "mtime rule"). Not the
# size of directories: ext4's depends on the directory's history.
listing() { (cd "$1" && find . \( -type d -printf 'd %m - %T@ %P\n' \) -o -printf '%y %m %s %T@ %P\n' | LC_ALL=C sort); }
diff <(listing "$MNT/fresh") <(listing "$MNT/ts") >&2 || { log "updated tree differs from a fresh restore"; exit 1; }

med() { tr ' ' '\n' <<<"${T[$1]}" | grep . | median; }
rng() { tr ' ' '\n' <<<"${T[$1]}" | grep . | minmax; }
printf '| Python stdlib (%s files, %s entries), ext4 loop, warm cache | `restore --update` | `rsync -a --delete` | fresh `restore` | update ÷ rsync | update ÷ fresh |\n' \
  "$FILES" "$ENTRIES"
echo '|---|---|---|---|---|---|'
for c in one ten; do
  label=$([[ $c == one ]] && echo "1 file changed" || echo "10% changed ($CHANGED_TEN files)")
  u=$(med "ts_$c") s=$(med "rs_$c") f=$(med "fr_$c")
  printf '| %s | %.3f s (%s) | %.3f s (%s) | %.3f s (%s) | %.2f | %.3f |\n' "$label" "$u" "$(rng "ts_$c")" \
    "$s" "$(rng "rs_$c")" "$f" "$(rng "fr_$c")" "$(echo "$u / $s" | bc -l)" "$(echo "$u / $f" | bc -l)"
done
echo
for c in one ten; do
  jq -r --arg c "$c" '"update to py:\($c): " + (.update | "kept \(.kept), updated \(.updated), added \(.added), removed \(.removed), conflicts \(.conflicts)") + "; placed by copy \(.strategies.copy.files), hardlink \(.strategies.hardlink.files)"' \
    "$TMP/update-$c.json"
done
echo
echo "Medians of $ROUNDS interleaved rounds (min-max in brackets)."
