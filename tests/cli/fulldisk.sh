#!/usr/bin/env bash
# A full disk during a snapshot: the store on a small ext4 loop mount, a snapshot committed first,
# then a tree bigger than the free space. The snapshot must fail cleanly (exit 1, no_space, the
# errno text), and leave the store as it was: the same list, verify clean, the same object files
# after a gc, the earlier snapshot restoring exactly. Once space is freed the same snapshot
# succeeds and restores exactly. Needs root (loop mount); exits 77 otherwise.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

with_loop_fs ext4 64M
STORE=$LOOP_MNT/store

SRC=$WORK/small
mkdir -p "$SRC/d"
for i in $(seq 1 50); do random_file "$SRC/d/f$i" $((i * 300)); done
random_file "$SRC/one" 1M

step "a snapshot that fits is committed first"
expect_status 0 ts snapshot "$SRC" --name base
mtree_of "$SRC" >"$WORK/base.mtree"

# Space taken by something else on the file system, freed later.
filler_mb=$(($(df --output=avail -B1M "$LOOP_MNT" | tail -n 1) / 2))
head -c "${filler_mb}M" /dev/zero >"$LOOP_MNT/filler"
sync -f "$LOOP_MNT/filler"
free_mb=$(df --output=avail -B1M "$LOOP_MNT" | tail -n 1)

BIG=$WORK/big
mkdir -p "$BIG/many"
big_mb=$((free_mb + 8))
for i in $(seq 1 $((big_mb / 4))); do random_file "$BIG/part$i" 4M; done
for i in $(seq 1 200); do random_file "$BIG/many/f$i" 2000; done
echo "filler ${filler_mb} MiB; free ${free_mb} MiB; tree $(du -sm "$BIG" | cut -f1) MiB"

# What "as it was" means: the listing, and every object file with its size in blocks.
store_state() {
  ts --json list | jq -c '[.[] | {name, id}]'
  (cd "$STORE/objects" && find . -type f -printf '%p %b\n' | sort)
}
store_state >"$WORK/before"

step "a snapshot bigger than the free space fails cleanly"
expect_status 1 ts snapshot "$BIG" --name big
assert_error_line
echo "the error: $(cat "$ERR")"
grep -q "no_space" "$ERR" || fail "the error is not no_space: $(cat "$ERR")"
grep -q "No space left on device" "$ERR" || fail "the error does not name ENOSPC: $(cat "$ERR")"
grep -q "staged object\|syncfs\|database" "$ERR" || fail "the error does not name the operation: $(cat "$ERR")"

step "the store is as it was"
expect_status 0 ts verify
expect_status 0 ts --json gc --grace 0 --full
store_state >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" >&2 || fail "the store differs from before the failed snapshot (diff above)"
assert_eq "$(find "$STORE/tmp" -mindepth 1 | wc -l)" 0 "staging files after gc"
expect_status 0 ts --json du
jq_assert "$OUT" '.orphan_objects == 0' "no orphans after gc"
rm -rf "$WORK/out"
expect_status 0 ts restore base "$WORK/out" --strategy copy
mtree_of "$WORK/out" >"$WORK/out.mtree"
assert_same_listing "$WORK/base.mtree" "$WORK/out.mtree" "base restored after the full disk"

step "with space freed, the same snapshot succeeds"
rm -f "$LOOP_MNT/filler"
expect_status 0 ts snapshot "$BIG" --name big
expect_status 0 ts verify
mtree_of "$BIG" >"$WORK/big.mtree"
rm -rf "$WORK/out"
expect_status 0 ts restore big "$WORK/out" --strategy copy
mtree_of "$WORK/out" >"$WORK/out.mtree"
assert_same_listing "$WORK/big.mtree" "$WORK/out.mtree" "big restored"
rm -rf "$WORK/out"
expect_status 0 ts restore base "$WORK/out" --strategy copy
mtree_of "$WORK/out" >"$WORK/out.mtree"
assert_same_listing "$WORK/base.mtree" "$WORK/out.mtree" "base restored at the end"

echo "PASS: fulldisk"
