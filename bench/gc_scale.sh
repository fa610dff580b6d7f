#!/usr/bin/env bash
# GC at scale (docs/BENCHMARKS.md, "GC at scale"): a store of OBJECTS tiny objects and SNAPSHOTS
# snapshots, written by treesnap_gen_store on a fresh loop-mounted ext4, then
#   - `treesnap rm big<k>` + `treesnap gc`: a snapshot of BIG_ENTRIES objects nothing else
#     references goes (one per round, so every round removes as much);
#   - `treesnap du`;
#   - `treesnap gc --max-size`: evict least recently used snapshots until the store is
#     EVICT_PERCENT% smaller (each round evicts other snapshots of the same kind);
#   - the floor: BIG_ENTRIES bare unlinkat calls of files like the objects, on 1 and 2 threads,
#     fresh ones (hot in the caches) and, once, BIG_ENTRIES of the store's own object files spread
#     over all shards (written with the store, as cold or warm as those gc removes);
#   - beside `ostree prune --refs-only` after `ostree refs --delete` of a commit of the same
#     BIG_ENTRIES files, in a bare repository holding OSTREE_COMMITS window commits too.
# Prints a markdown table of medians (and min-max) over ROUNDS runs.
#
#   sudo bash bench/gc_scale.sh                         # 1M objects, 1000 snapshots, ~15 min
#   OBJECTS=100000 SNAPSHOTS=100 ENTRIES=2000 BIG_ENTRIES=10000 OSTREE_COMMITS=10 bash bench/gc_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OBJECTS=${OBJECTS:-1000000}
SNAPSHOTS=${SNAPSHOTS:-1000}
ENTRIES=${ENTRIES:-10000}         # per window snapshot
BIG_ENTRIES=${BIG_ENTRIES:-100000}
ROUNDS=${ROUNDS:-3}
EVICT_PERCENT=${EVICT_PERCENT:-10}
OSTREE_COMMITS=${OSTREE_COMMITS:-100}  # window commits beside the big ones; 0 skips ostree
IMAGE_SIZE=${IMAGE_SIZE:-24G}
BUILD=${BUILD:-build}
TREESNAP=$(realpath "$BUILD/treesnap")
GEN=$(realpath "$BUILD/bench/treesnap_gen_store")
[[ -x "$TREESNAP" && -x "$GEN" ]] || { echo "build first: $TREESNAP and $GEN" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (loop mount)" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/treesnap-gcscale.XXXXXX")
cleanup() {
  if mountpoint -q "$TMP/mnt"; then umount "$TMP/mnt" 2>/dev/null || umount -l "$TMP/mnt"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
truncate -s "$IMAGE_SIZE" "$TMP/image"
# One inode per 4 KiB: a million tiny objects need more inodes than ext4's default gives.
mkfs.ext4 -q -F -i 4096 "$TMP/image"
mkdir "$TMP/mnt"
mount -o loop "$TMP/image" "$TMP/mnt"
STORE=$TMP/mnt/store
RESULTS=$TMP/results.tsv
: >"$RESULTS"

log() { echo "[gc_scale] $*" >&2; }
# seconds CMD...: runs CMD, prints its wall time in seconds.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f\n", b - a }'
}
record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }
ts() { "$TREESNAP" --store "$STORE" "$@"; }

big=$ROUNDS
log "generating $OBJECTS objects, $SNAPSHOTS snapshots ($big of $BIG_ENTRIES entries, the rest $ENTRIES)"
gen_s=$(seconds "$GEN" "$STORE" "$OBJECTS" "$SNAPSHOTS" "$ENTRIES" "$big" "$BIG_ENTRIES")
printf '[gc]\nhigh_watermark = 100\nlow_watermark = 99\n' >"$STORE/treesnap.toml"
sync
log "generated in ${gen_s}s; database $(du -sh "$STORE/treesnap.db" | cut -f1)"
refs=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from refs').fetchone()[0])" "$STORE/treesnap.db")

for r in $(seq 1 "$ROUNDS"); do
  record du "$(seconds ts du)"
  record rm "$(seconds ts rm "big$r:v1")"
  record gc "$(seconds ts gc)"
  bytes=$(ts --json du | jq .store_bytes)
  record evict "$(seconds ts gc --max-size $((bytes * (100 - EVICT_PERCENT) / 100)))"
done
# The floor: BIG_ENTRIES bare unlinkat calls of files like the objects, on the same mount.
for r in $(seq 1 "$ROUNDS"); do
  for threads in 1 2; do
    record "floor$threads" "$("$GEN" --unlink-floor "$TMP/mnt/floor" "$BIG_ENTRIES" "$threads")"
    rm -rf "$TMP/mnt/floor"
  done
done
ts --json gc --max-size 1 --dry-run | jq '.evicted | length' >"$TMP/evictable"
# The store's own floor: bare unlinks of BIG_ENTRIES object files (every k-th digest, so all
# shards), on 2 threads like gc. It leaves rows without files, so it comes after every treesnap
# measurement.
python3 - "$STORE/treesnap.db" "$BIG_ENTRIES" >"$TMP/floor.list" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
count = int(sys.argv[2])
total = db.execute("SELECT count(*) FROM objects").fetchone()[0]
every = max(1, total // count)
for n, (d,) in enumerate(db.execute("SELECT lower(hex(digest)) FROM objects ORDER BY digest")):
    if n % every == 0 and n // every < count:
        print(d)
PY
record floor_store "$("$GEN" --unlink-list "$STORE/objects" "$TMP/floor.list" 2)"

if ((OSTREE_COMMITS > 0)) && command -v ostree >/dev/null; then
  REPO=$TMP/mnt/repo
  ostree init --repo="$REPO" --mode=bare >/dev/null
  pool=$((OBJECTS - big * BIG_ENTRIES))
  step=$(((pool - ENTRIES) / (SNAPSHOTS - big - 1)))
  log "ostree: $OSTREE_COMMITS window commits of $ENTRIES files, $big commits of $BIG_ENTRIES"
  start=$(date +%s)
  for c in $(seq 0 $((OSTREE_COMMITS - 1))); do
    rm -rf "$TMP/mnt/tree" && mkdir "$TMP/mnt/tree"
    "$GEN" --tree "$TMP/mnt/tree" $((c * step)) "$ENTRIES"
    ostree commit --repo="$REPO" --branch="s$c" --tree=dir="$TMP/mnt/tree" --no-xattrs >/dev/null
  done
  for r in $(seq 1 "$big"); do
    rm -rf "$TMP/mnt/tree" && mkdir "$TMP/mnt/tree"
    "$GEN" --tree "$TMP/mnt/tree" $((pool + (r - 1) * BIG_ENTRIES)) "$BIG_ENTRIES"
    ostree commit --repo="$REPO" --branch="big$r" --tree=dir="$TMP/mnt/tree" --no-xattrs >/dev/null
  done
  rm -rf "$TMP/mnt/tree"
  sync
  log "ostree repository written in $(($(date +%s) - start))s: $(find "$REPO/objects" -type f | wc -l) objects"
  for r in $(seq 1 "$big"); do
    ostree refs --repo="$REPO" --delete "big$r"
    record ostree_prune "$(seconds ostree prune --repo="$REPO" --refs-only)"
  done
fi

python3 - "$RESULTS" "$OBJECTS" "$SNAPSHOTS" "$refs" "$BIG_ENTRIES" "$EVICT_PERCENT" "$OSTREE_COMMITS" "$gen_s" <<'PY'
import statistics, sys
path, objects, snapshots, refs, big, evict, ocommits, gen_s = sys.argv[1:]
rows = {}
for line in open(path):
    k, v = line.split("\t")
    rows.setdefault(k, []).append(float(v))
def cell(k):
    v = rows.get(k)
    if not v: return "—", None
    m = statistics.median(v)
    fmt = (lambda x: f"{x*1000:.0f} ms") if m < 1 else (lambda x: f"{x:.2f} s")
    return f"{fmt(m)} ({fmt(min(v))}–{fmt(max(v))})", m
print(f"Store: {int(objects):,} objects, {int(snapshots):,} snapshots, {int(refs):,} refs; generated in {float(gen_s):.0f} s.\n")
print("| operation | target | median (min–max) |")
print("|---|---|---|")
for k, label, target in [("rm", f"`treesnap rm` of a {int(big):,}-object snapshot", "—"),
                         ("gc", f"`treesnap gc` after it ({int(big):,} orphans)", "< 1 s"),
                         ("floor1", f"floor: {int(big):,} bare `unlinkat` of such files, 1 thread", "—"),
                         ("floor2", f"floor: the same, 2 threads (whole shards each)", "—"),
                         ("floor_store", f"floor: {int(big):,} bare `unlinkat` of the store's own object files, 2 threads (one run)", "—"),
                         ("du", "`treesnap du`", "< 100 ms"),
                         ("evict", f"`treesnap gc --max-size` (store {evict}% smaller)", "< 5 s"),
                         ("ostree_prune", f"`ostree prune --refs-only` after deleting a {int(big):,}-file ref ({ocommits} other commits)", "—")]:
    print(f"| {label} | {target} | {cell(k)[0]} |")
g, o = cell("gc")[1], cell("ostree_prune")[1]
r = cell("rm")[1]
f1, f2 = cell("floor1")[1], cell("floor2")[1]
if g and f1 and f2:
    print(f"\ngc / floor: {g / f1:.1f}x the 1-thread floor, {g / f2:.1f}x the 2-thread floor")
fs = cell("floor_store")[1]
if g and fs:
    print(f"\ngc / the store's own floor: {g / fs:.1f}x")
if g and o:
    print(f"\nostree prune / treesnap (rm + gc): {o / (g + r):.1f}x")
PY
