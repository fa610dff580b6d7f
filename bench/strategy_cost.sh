#!/usr/bin/env bash
# What each restore strategy costs per file and per byte, on fresh loop-mounted ext4, XFS and
# btrfs: the figures behind auto's choices (docs/BENCHMARKS.md, "Strategy costs").
#
#   bash bench/strategy_cost.sh                       # all three file systems, ~10 min
#   FS=xfs SIZES="4096 65536" ROUNDS=3 bash bench/strategy_cost.sh
#
# For each file size S it makes a tree of N read-only files of S unique random bytes (N shrinks
# as S grows, so every tree is a few hundred MiB at most), snapshots it, and times
# `treesnap restore --strategy X` for hardlink, reflink and copy (median of ROUNDS, warm cache,
# target removed and `sync` before each, untimed), less the time of restoring a one-file tree
# (process start, store open, rename). Per-file cost = time / N. A least-squares fit
# of time-per-file against S over all sizes gives each strategy's fixed cost (µs per file) and
# marginal cost (µs per MiB). Prints a markdown report to stdout; progress to stderr.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TREESNAP=${TREESNAP:-$BENCH_DIR/../build/treesnap}
FS=${FS:-ext4 xfs btrfs}
SIZES=${SIZES:-256 4096 16384 65536 262144 1048576 4194304}
ROUNDS=${ROUNDS:-3}
MAX_FILES=${MAX_FILES:-10000}
MAX_BYTES=${MAX_BYTES:-$((256 << 20))}
STRATEGIES=(hardlink reflink copy)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ $EUID == 0 ]] || { log "needs root (mkfs, mount)"; exit 1; }
[[ -x $TREESNAP ]] || { log "no treesnap binary at $TREESNAP (build first)"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-cost.XXXXXX")
MNT=$WORK/mnt
mkdir "$MNT"
cleanup() {
  mountpoint -q "$MNT" && { umount "$MNT" 2>/dev/null || umount -l "$MNT"; }
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

RESULTS=$WORK/results.tsv # fs size files strategy seconds
: >"$RESULTS"

for fs in $FS; do
  case $fs in
    ext4) mkfs=(mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0) ;;
    xfs) mkfs=(mkfs.xfs -q -f -m reflink=1) ;;
    btrfs) mkfs=(mkfs.btrfs -q -f) ;;
    *) log "unknown file system $fs"; exit 1 ;;
  esac
  rm -f "$WORK/image"
  truncate -s 16G "$WORK/image"
  "${mkfs[@]}" "$WORK/image" >/dev/null || { log "$fs: mkfs failed"; continue; }
  mount -o loop "$WORK/image" "$MNT" || { log "$fs: mount failed"; continue; }
  # Process start, store open and the rename into place: timed on a one-file tree and taken off
  # every row, so small trees are not charged for them.
  mkdir -p "$MNT/one" && echo x >"$MNT/one/x"
  "$TREESNAP" --store "$MNT/store0" snapshot "$MNT/one" --name one >/dev/null
  times=()
  for ((r = 0; r < 5; r++)); do
    rm -rf "$MNT/out"
    start=$EPOCHREALTIME
    "$TREESNAP" --store "$MNT/store0" restore one "$MNT/out" --strategy copy >/dev/null
    times+=("$(echo "$EPOCHREALTIME - $start" | bc -l)")
  done
  overhead=$(printf '%s\n' "${times[@]}" | median)
  log "$fs: fixed cost of one restore command ${overhead}s"
  rm -rf "$MNT/out" "$MNT/one" "$MNT/store0"
  for size in $SIZES; do
    files=$((MAX_BYTES / size))
    ((files > MAX_FILES)) && files=$MAX_FILES
    ((files < 16)) && files=16
    log "$fs: $files files of $size bytes"
    python3 - "$MNT/src" "$files" "$size" <<'EOF'
import os, sys
root, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, f"d{i // 500:03d}")
    if i % 500 == 0:
        os.makedirs(d)
    path = os.path.join(d, f"f{i:06d}")
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    os.chmod(path, 0o444)
EOF
    "$TREESNAP" --store "$MNT/store" snapshot "$MNT/src" --name cost >/dev/null || { log "snapshot failed"; exit 1; }
    cat "$MNT"/src/*/* >/dev/null # warm
    for strategy in "${STRATEGIES[@]}"; do
      times=()
      for ((r = 0; r < ROUNDS; r++)); do
        rm -rf "$MNT/out"
        sync
        start=$EPOCHREALTIME
        "$TREESNAP" --store "$MNT/store" restore cost "$MNT/out" --strategy "$strategy" >/dev/null ||
          { log "$fs $size $strategy: restore failed"; break; }
        times+=("$(echo "$EPOCHREALTIME - $start" | bc -l)")
      done
      ((${#times[@]})) || continue
      printf '%s\t%s\t%s\t%s\t%s\n' "$fs" "$size" "$files" "$strategy" \
        "$(printf '%s\n' "${times[@]}" | median | awk -v o="$overhead" '{ d = $1 - o; print (d > 0 ? d : 0) }')" >>"$RESULTS"
    done
    rm -rf "$MNT/out" "$MNT/src" "$MNT/store"
    sync
  done
  umount "$MNT"
done

python3 - "$RESULTS" <<'EOF'
import collections, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(dict)  # (fs, size) -> strategy -> us per file
files = {}
for fs, size, n, strategy, seconds in rows:
    by[(fs, int(size))][strategy] = float(seconds) / int(n) * 1e6
    files[(fs, int(size))] = int(n)
strategies = ["hardlink", "reflink", "copy"]
print("| fs | file size | files | " + " | ".join(f"{s} µs/file" for s in strategies) + " | cheapest private copy |")
print("|---|---:|---:|" + "---:|" * len(strategies) + "---|")
for (fs, size), per in sorted(by.items()):
    cells = [f"{per[s]:.1f}" if s in per else "—" for s in strategies]
    private = min((s for s in ("reflink", "copy") if s in per), key=lambda s: per[s], default="—")
    print(f"| {fs} | {size:,} | {files[(fs, size)]:,} | " + " | ".join(cells) + f" | {private} |")
print()
print("Least-squares fit of µs per file = fixed + per_MiB × size:")
print()
print("| fs | strategy | fixed µs/file | µs per MiB |")
print("|---|---|---:|---:|")
for fs in sorted({k[0] for k in by}):
    for s in strategies:
        pts = [(size / 2**20, per[s]) for (f, size), per in by.items() if f == fs and s in per]
        if len(pts) < 2:
            continue
        n = len(pts); sx = sum(x for x, _ in pts); sy = sum(y for _, y in pts)
        sxx = sum(x * x for x, _ in pts); sxy = sum(x * y for x, y in pts)
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        print(f"| {fs} | {s} | {(sy - slope * sx) / n:.1f} | {slope:.0f} |")
EOF
