#!/usr/bin/env bash
# Fault injection through the failpoints (docs/failpoints.md): ENOSPC and EIO on the writes, the
# flush, the links and the rename of publishing and restoring, a failed commit, and a SIGKILL
# after each step of publishing a snapshot, of a restore and of a gc. For every case the outcome
# is asserted: an errno fault fails the command with exit 1 and one error line naming the
# operation and the errno's text; a crash dies by SIGKILL. Afterwards verify is clean, the list
# of snapshots is the expected one, the snapshot committed before restores exactly, a gc leaves
# neither staging files nor unrecorded or orphaned objects, and the same command run again
# without the failpoint succeeds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src
mkdir -p "$SRC/d"
for i in $(seq 1 20); do random_file "$SRC/d/f$i" $((i * 700)); done
random_file "$SRC/big" 3M # above the whole-read limit: the streaming path
echo "same" >"$SRC/d/dup1"
echo "same" >"$SRC/d/dup2"

expect_status 0 ts snapshot "$SRC" --name base
mtree_of "$SRC" >"$WORK/base.mtree"

# The state every case must leave: these snapshots, each restoring exactly; verify clean.
declare -A MTREE=([base:latest]=$WORK/base.mtree)

check_store() { # WHEN
  local when=$1 name
  expect_status 0 ts verify
  expect_status 0 ts --json list
  jq -r '.[].name' "$OUT" | sort >"$WORK/names"
  printf '%s\n' "${!MTREE[@]}" | sort >"$WORK/want-names"
  diff -u "$WORK/want-names" "$WORK/names" >&2 || fail "$when: the snapshots listed differ from the committed ones"
  for name in "${!MTREE[@]}"; do
    rm -rf "$WORK/check"
    expect_status 0 ts restore "$name" "$WORK/check" --strategy copy
    mtree_of "$WORK/check" >"$WORK/check.mtree"
    assert_same_listing "${MTREE[$name]}" "$WORK/check.mtree" "$when: $name restored"
  done
  rm -rf "$WORK/check"
}

# After a gc --full nothing is left over: no staging file, no orphan row, no object file without
# a row, no quarantine.
check_clean_after_gc() { # WHEN
  local when=$1 files rows
  expect_status 0 ts --json gc --grace 0 --full
  expect_status 0 ts --json du
  jq_assert "$OUT" '.orphan_objects == 0' "$when: no orphans after gc"
  rows=$(jq '.objects' "$OUT")
  files=$(find "$STORE/objects" -type f | wc -l)
  assert_eq "$files" "$rows" "$when: object files vs recorded objects after gc"
  assert_eq "$(find "$STORE/tmp" -mindepth 1 | wc -l)" 0 "$when: staging files after gc"
  assert_eq "$(find "$STORE/quarantine" -mindepth 1 | wc -l)" 0 "$when: quarantined files"
}

# expect_fault FAILPOINT ERRNO_TEXT OPERATION CMD...: CMD fails with exit 1 and an error line
# naming OPERATION and ERRNO_TEXT.
expect_fault() {
  local fp=$1 text=$2 op=$3
  shift 3
  TREESNAP_FAILPOINTS=$fp expect_status 1 "$@"
  assert_error_line
  grep -q -- "$op" "$ERR" || fail "$fp: the error does not name the operation '$op': $(cat "$ERR")"
  grep -q -- "$text" "$ERR" || fail "$fp: the error does not say '$text': $(cat "$ERR")"
}

expect_crash() { # FAILPOINT CMD...
  local fp=$1
  shift
  TREESNAP_FAILPOINTS=$fp expect_status 137 "$@"
}

# New content for each snapshot case, so there is something to write.
n=0
mutate() {
  n=$((n + 1))
  random_file "$SRC/d/new$n" 5000
  random_file "$SRC/d/f1" 1234
  random_file "$SRC/big" 3M
}

step "a failpoint name that does not exist is refused, not ignored"
TREESNAP_FAILPOINTS=object.wrte=EIO expect_status 2 ts snapshot "$SRC" --name typo
grep -q "no such failpoint" "$ERR" || fail "unknown failpoint not reported: $(cat "$ERR")"

declare -A errno_text=([EIO]="Input/output error" [ENOSPC]="No space left on device")

step "snapshot: errors on write, link, sync and commit leave the store as it was"
for err in ENOSPC EIO; do
  for case in "object.write|write staged object" "object.link|publish" "store.sync|syncfs store" \
    "snapshot.commit|commit snapshot" "object.link@5|publish"; do
    fp=${case%%|*} op=${case#*|}
    count=
    [[ $fp == *@* ]] && count=@${fp#*@} fp=${fp%@*}
    mutate
    expect_fault "$fp=$err$count" "${errno_text[$err]}" "$op" ts snapshot "$SRC" --name next
    check_store "snapshot with $fp=$err$count"
    check_clean_after_gc "snapshot with $fp=$err$count"
  done
done

step "snapshot: a crash after each step of publishing"
for fp in object.after_link snapshot.after_objects snapshot.after_manifest snapshot.after_sync; do
  mutate
  expect_crash "$fp=crash" ts snapshot "$SRC" --name next
  check_store "snapshot killed at $fp"
  check_clean_after_gc "snapshot killed at $fp"
done
mutate
expect_crash "snapshot.after_commit=crash" ts snapshot "$SRC" --name next
mtree_of "$SRC" >"$WORK/next.mtree"
MTREE[next:latest]=$WORK/next.mtree # committed before the kill: it must be there, whole
check_store "snapshot killed after its commit"
check_clean_after_gc "snapshot killed after its commit"

step "snapshot: run again without failpoints, it succeeds"
mutate
expect_status 0 ts snapshot "$SRC" --name next --force
mtree_of "$SRC" >"$WORK/next.mtree"
check_store "snapshot rerun"
check_clean_after_gc "snapshot rerun"

step "restore: errors on write and rename leave no target and no temporary tree"
for err in ENOSPC EIO; do
  for case in "restore.write|write" "restore.rename|move restored tree into place"; do
    fp=${case%%|*} op=${case#*|}
    expect_fault "$fp=$err" "${errno_text[$err]}" "$op" ts restore base "$WORK/out/t" --strategy copy
    [[ ! -e "$WORK/out/t" ]] || fail "restore with $fp=$err left a target"
    assert_eq "$(find "$WORK/out" -mindepth 1 | wc -l)" 0 "restore with $fp=$err: files left beside the target"
    check_store "restore with $fp=$err"
  done
done
step "restore: killed once the tree is in place, the tree is whole"
expect_crash "restore.after_rename=crash" ts restore base "$WORK/out/t" --strategy copy
mtree_of "$WORK/out/t" >"$WORK/t.mtree"
assert_same_listing "$WORK/base.mtree" "$WORK/t.mtree" "tree restored before the kill"
check_store "restore killed after the rename"
expect_status 0 ts restore base "$WORK/out/u" --strategy copy
rm -rf "$WORK/out"

step "gc: an unlink error and a crash between unlink and row deletion lose nothing committed"
orphan_round() { # makes orphans: a snapshot of new content, then removed
  mutate
  expect_status 0 ts snapshot "$SRC" --name doomed
  expect_status 0 ts rm doomed
}
for err in ENOSPC EIO; do
  orphan_round
  expect_fault "gc.unlink=$err" "${errno_text[$err]}" "gc: unlink" ts gc --grace 0
  check_store "gc with gc.unlink=$err"
  check_clean_after_gc "gc rerun after gc.unlink=$err"
done
orphan_round
expect_crash "gc.after_unlink=crash" ts gc --grace 0
check_store "gc killed between unlink and row deletion"
check_clean_after_gc "gc rerun after a kill"

step "gc --full: killed with an unrecorded file moved aside, the next gc puts it back"
mutate
expect_crash "snapshot.after_sync=crash" ts snapshot "$SRC" --name lost # unrecorded objects
expect_crash "gc.after_aside=crash" ts gc --grace 0 --full
aside=$(find "$STORE/tmp" -name 'gc-*' -printf '%f\n')
[[ -n $aside ]] || fail "the killed gc left no file moved aside in tmp/"
origin=${aside#gc-*-objects.}
origin=${origin/./\/}
[[ ! -e "$STORE/objects/$origin" ]] || fail "objects/$origin is still in place after the move aside"
expect_status 0 ts gc --grace 0
[[ -f "$STORE/objects/$origin" ]] || fail "gc did not put objects/$origin back from tmp/$aside"
assert_eq "$(find "$STORE/tmp" -mindepth 1 | wc -l)" 0 "staging files after the put-back"
check_store "gc --full killed after a move aside"
check_clean_after_gc "gc --full rerun"

echo "PASS: faults"
