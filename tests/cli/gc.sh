#!/usr/bin/env bash
# Garbage collection end to end: snapshot -> rm -> gc --dry-run -> gc shrinks the store by what
# the dry run announced and du predicted, every remaining snapshot still restores and verifies;
# eviction by size keeps pinned snapshots; gc --watch stops cleanly on SIGTERM; bad sizes are
# usage errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Files in objects/ and variants/, and their disk bytes, as find sees them.
store_files() { find "$STORE/objects" "$STORE/variants" -type f | wc -l; }
store_kib() { du -sk "$STORE/objects" | cut -f1; }

# The auto-gc round after each snapshot must not depend on how full the test machine's disk is.
ts init >/dev/null
printf '[gc]\nhigh_watermark = 100\nlow_watermark = 99\n' >"$STORE/treesnap.toml"

step "three snapshots sharing one file"
for n in one two three; do
  mkdir -p "$WORK/src/$n"
  head -c 200000 /dev/urandom >"$WORK/src/$n/own"
  head -c 50000 /dev/urandom >"$WORK/src/$n/own_ro"
  chmod 0444 "$WORK/src/$n/own_ro"
done
head -c 100000 /dev/urandom >"$WORK/src/one/shared"
cp "$WORK/src/one/shared" "$WORK/src/two/shared"
cp "$WORK/src/one/shared" "$WORK/src/three/shared"
for n in one two three; do ts -q snapshot "$WORK/src/$n" --name "$n:v1"; done
# A hardlink restore of "one" creates no variant (metadata equal) but links its read-only object.
ts -q restore one:v1 "$WORK/out-one"

expect_status 0 ts --json du
cp "$OUT" "$WORK/du-before.json"
jq_assert "$OUT" '.orphan_objects == 0 and (.snapshots | length) == 3' "du before rm"
jq_assert "$OUT" '.shared_bytes >= 100000' "the shared file counts as shared"
UNIQUE_TWO=$(jq '.snapshots[] | select(.name == "two:v1") | .unique_bytes' "$OUT")
FILES_BEFORE=$(store_files)
KIB_BEFORE=$(store_kib)

step "rm is instant and leaves orphans that du reports"
ts rm two:v1 >/dev/null
expect_status 0 ts --json du
jq_assert "$OUT" ".orphan_bytes == $UNIQUE_TWO and .orphan_objects == 3" "orphans after rm (own, own_ro, manifest)"
assert_eq "$(store_files)" "$FILES_BEFORE" "files right after rm"

step "gc --dry-run removes nothing and announces what du predicted"
expect_status 0 ts --json gc --dry-run
cp "$OUT" "$WORK/dry.json"
jq_assert "$OUT" ".dry_run and .objects_removed == 3 and .bytes_removed == $UNIQUE_TWO" "dry run figures"
assert_eq "$(store_files)" "$FILES_BEFORE" "files after the dry run"

step "gc frees exactly that"
expect_status 0 ts --json gc
jq_assert "$OUT" "(.dry_run | not) and .objects_removed == 3 and .bytes_removed == $UNIQUE_TWO" "gc figures"
jq_assert "$OUT" ".bytes_freed == $(jq .bytes_freed "$WORK/dry.json")" "freed bytes equal the dry run's"
assert_eq "$(store_files)" "$((FILES_BEFORE - 3))" "files after gc"
KIB_AFTER=$(store_kib)
((KIB_AFTER < KIB_BEFORE - 200)) || fail "store did not shrink: $KIB_BEFORE KiB -> $KIB_AFTER KiB"
expect_status 0 ts --json du
jq_assert "$OUT" '.orphan_objects == 0 and .orphan_bytes == 0 and (.snapshots | length) == 2' "du after gc"

step "every remaining snapshot restores and the store verifies clean"
for n in one three; do
  ts -q restore "$n:v1" "$WORK/check-$n" --strategy copy
  diff -r "$WORK/src/$n" "$WORK/check-$n" || fail "$n does not restore to its source"
done
expect_status 0 ts verify
expect_status 0 ts gc
grep -q '^gc: removed 0 objects' "$OUT" || fail "a second gc found work: $(cat "$OUT")"

step "eviction by size takes the least recently used unpinned snapshot; a hardlinked object frees 0"
ts -q restore three:v1 "$WORK/touch-three" --strategy copy # "three" is now the most recent
ts pin three:v1 >/dev/null
expect_status 0 ts --json gc --max-size 1 --dry-run
jq_assert "$OUT" '[.evicted[].name] == ["one:v1"] and (.target_met | not)' "dry-run eviction plan"
# own_ro of "one" is linked from $WORK/out-one: removing it frees nothing on disk.
jq_assert "$OUT" '.evicted[0].freed_bytes < .evicted[0].bytes' "a linked object frees less than it weighs"
expect_status 0 ts --json gc --max-size 1
jq_assert "$OUT" '[.evicted[].name] == ["one:v1"]' "evicted"
cmp "$WORK/src/one/own_ro" "$WORK/out-one/own_ro" || fail "the restored tree lost its hardlinked file"
expect_status 0 ts --json list
jq_assert "$OUT" '[.[].name] == ["three:v1"]' "only the pinned snapshot is left"
ts unpin three:v1 >/dev/null
expect_status 0 ts verify

step "usage errors"
expect_status 2 ts gc --max-size 12Q
expect_status 2 ts gc --min-free 150%
expect_status 2 ts gc --grace soon
expect_status 1 ts pin no-such-snapshot
assert_error_line

step "gc --watch collects in rounds and stops on SIGTERM"
ts -q snapshot "$WORK/src/one" --name again
ts rm again >/dev/null
"$TREESNAP_BIN" --store "$STORE" --json gc --watch --interval 0.2 >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH=$!
for _ in $(seq 50); do
  [[ -s "$WORK/watch.out" ]] && break
  sleep 0.1
done
kill -TERM "$WATCH"
status=0
wait "$WATCH" || status=$?
assert_eq "$status" 0 "gc --watch exit status after SIGTERM"
head -n1 "$WORK/watch.out" >"$WORK/round.json"
jq_assert "$WORK/round.json" '.objects_removed >= 1' "the first watch round removed the orphans"
echo "gc: all checks passed"
