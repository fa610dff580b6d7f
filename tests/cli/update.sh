#!/usr/bin/env bash
# restore --update end to end: the kept / updated / added / removed counts and the tree equal to a
# fresh restore; kept files keep their inodes (hardlinked ones included); a file the user changed
# is a conflict (exit 1, untouched) until --force replaces it; a file treesnap did not create is
# never touched; an update killed part-way (the test-only failpoint
# TREESNAP_TEST_ABORT_AFTER_ENTRIES) finishes when run again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src
T=$WORK/tree
mkdir -p "$SRC/lib/pkg" "$SRC/bin" "$SRC/old"
for i in $(seq 1 40); do echo "module $i, version 1" >"$SRC/lib/pkg/m$i.py"; done
echo 'unchanged' >"$SRC/lib/stable.py"
echo 'settings 1' >"$SRC/lib/site.cfg"
echo 'goes away' >"$SRC/old/legacy.py"
echo 'removed file' >"$SRC/bin/tool-old"
ln "$SRC/lib/stable.py" "$SRC/lib/stable-alias.py"
ln -s pkg/m1.py "$SRC/lib/latest"
chmod 0444 "$SRC"/lib/pkg/*.py "$SRC/lib/stable.py" "$SRC/old/legacy.py"
chmod 0644 "$SRC/lib/site.cfg"
ts snapshot "$SRC" --name app:1 >/dev/null
ts restore app:1 "$T" >/dev/null

inodes_of() { # TREE PATH... -> "path:inode" lines
  local tree=$1 p
  shift
  for p in "$@"; do echo "$p:$(inode_of "$tree/$p")"; done
}
# SNAPSHOT WANT_MTREE LABEL: `restore --update` of SNAPSHOT into $T finishes without conflicts,
# gives the tree of a fresh restore and leaves status clean.
update_converges() {
  local snapshot=$1 want=$2 label=$3
  expect_status 0 ts --json restore "$snapshot" "$T" --update
  jq_assert "$OUT" '.update.conflicts == 0' "no conflicts: $label"
  mtree_of "$T" >"$WORK/got.mtree"
  assert_same_listing "$want" "$WORK/got.mtree" "$label"
  expect_status 0 ts --json status "$T"
  jq_assert "$OUT" ".snapshot == \"$snapshot\" and (.changes | length) == 0" "status after: $label"
}
KEPT=(lib/stable.py lib/stable-alias.py lib/pkg/m2.py lib/pkg/m40.py)
BEFORE=$(inodes_of "$T" "${KEPT[@]}")
assert_same_inode "$T/lib/stable.py" "$T/lib/stable-alias.py"
[[ -n "$(store_paths_of "$T/lib/pkg/m2.py")" ]] || fail "auto should hardlink read-only files from the store"

step "without --update a non-empty target is refused as before"
expect_status 1 ts restore app:1 "$T"
assert_error_line
grep -q 'exists: .*not empty' "$ERR" || fail "unexpected error: $(cat "$ERR")"

step "v2: one module changed, one added, the settings changed, a file and a directory removed"
chmod u+w "$SRC/lib/pkg/m1.py" && echo 'module 1, version 2' >"$SRC/lib/pkg/m1.py" && chmod 0444 "$SRC/lib/pkg/m1.py"
echo 'module 41' >"$SRC/lib/pkg/m41.py" && chmod 0444 "$SRC/lib/pkg/m41.py"
echo 'settings 2' >"$SRC/lib/site.cfg"
rm -r "$SRC/old" "$SRC/bin/tool-old"
mkdir "$SRC/share" && echo 'new data' >"$SRC/share/data.txt"
sleep 0.2  # out of the stat cache's racy window
ts snapshot "$SRC" --name app:2 >/dev/null
ts restore app:2 "$WORK/fresh2" >/dev/null

expect_status 0 ts --json restore app:2 "$T" --update
jq_assert "$OUT" '.update.updated == 2 and .update.added == 2 and .update.removed == 2 and .update.conflicts == 0' \
  "updated (m1, site.cfg), added (m41, data.txt), removed (legacy.py, tool-old)"
jq_assert "$OUT" '.update.kept == 42 and .update.directories_added == 1 and .update.directories_removed == 1' \
  "kept: 39 modules, stable.py and its alias, the symlink; share/ added, old/ removed"
jq_assert "$OUT" '(.update.updated_paths | sort) == ["lib/pkg/m1.py", "lib/site.cfg"]' "updated paths"
jq_assert "$OUT" '.strategies.hardlink.files + .strategies.reflink.files + .strategies.copy.files == 4' \
  "strategy figures count the placed files"
assert_eq "$(inodes_of "$T" "${KEPT[@]}")" "$BEFORE" "inodes of kept files"
assert_same_inode "$T/lib/stable.py" "$T/lib/stable-alias.py"
mtree_of "$WORK/fresh2" >"$WORK/want.mtree"
mtree_of "$T" >"$WORK/got.mtree"
assert_same_listing "$WORK/want.mtree" "$WORK/got.mtree" "updated tree and fresh restore"
expect_status 0 ts --json status "$T"
jq_assert "$OUT" '.snapshot == "app:2" and (.changes | length) == 0' "status after the update"
expect_status 0 ts restore app:2 "$T" --update
grep -q 'kept 46, updated 0, added 0, removed 0' "$OUT" || fail "a second update should keep everything: $(cat "$OUT")"

step "a file the user changed is a conflict, untouched; --force replaces it"
echo 'my local settings' >"$T/lib/site.cfg"
echo 'my own file' >"$T/lib/notes.txt"
expect_status 1 ts --json restore app:1 "$T" --update
jq_assert "$OUT" '.update.conflicts == 1 and .update.conflict_list[0].path == "lib/site.cfg"' "one conflict"
assert_eq "$(cat "$T/lib/site.cfg")" "my local settings" "conflicting file"
assert_eq "$(cat "$T/lib/notes.txt")" "my own file" "foreign file"
assert_eq "$(cat "$T/lib/pkg/m1.py")" "module 1, version 1" "the rest went back to app:1"
[[ ! -e "$T/lib/pkg/m41.py" ]] || fail "m41.py should be removed on the way back to app:1"
expect_status 1 ts restore app:1 "$T" --update
grep -q 'conflict: .*lib/site.cfg.*: changed since restored' "$OUT" || fail "text report lacks the conflict: $(cat "$OUT")"
expect_status 0 ts --json restore app:1 "$T" --update --force
jq_assert "$OUT" '.update.conflicts == 0 and .update.updated == 1' "--force replaced the conflict"
assert_eq "$(cat "$T/lib/site.cfg")" "settings 1" "site.cfg after --force"
assert_eq "$(cat "$T/lib/notes.txt")" "my own file" "--force leaves a foreign file alone"
rm "$T/lib/notes.txt"

step "--update on a tree treesnap did not restore needs --force"
mkdir -p "$WORK/plain/lib" && echo 'someone else' >"$WORK/plain/lib/site.cfg"
expect_status 1 ts restore app:2 "$WORK/plain" --update
assert_error_line
grep -q 'not_found: no restore into .* is recorded.*--force' "$ERR" || fail "unexpected error: $(cat "$ERR")"
expect_status 0 ts restore app:2 "$WORK/plain" --update --force
mtree_of "$WORK/plain" >"$WORK/got.mtree"
assert_same_listing "$WORK/want.mtree" "$WORK/got.mtree" "forced update of an unrecorded tree"
expect_status 2 ts restore app:2 "$WORK/plain" --force

step "an update stopped in its record's transaction leaves the old record whole; run again, it finishes"
TREESNAP_FAILPOINTS=restore.record=crash expect_status 137 ts restore app:2 "$T" --update
expect_status 1 ts --json status "$T"
jq_assert "$OUT" '.snapshot == "app:1"' "the record still describes app:1 after the kill"
TREESNAP_FAILPOINTS=restore.record=EIO expect_status 1 ts restore app:2 "$T" --update
assert_error_line
grep -q 'amend restore record of' "$ERR" || fail "unexpected error: $(cat "$ERR")"
update_converges app:2 "$WORK/want.mtree" "update finished after a stop in the record's transaction"

step "an update killed part-way finishes when run again"
for i in $(seq 2 40); do chmod u+w "$SRC/lib/pkg/m$i.py" && echo "module $i, version 3" >"$SRC/lib/pkg/m$i.py"; done
chmod 0444 "$SRC"/lib/pkg/*.py
mkdir "$SRC/more" && for i in $(seq 1 20); do echo "more $i" >"$SRC/more/f$i"; done
rm -r "$SRC/share"
sleep 0.2
ts snapshot "$SRC" --name app:3 >/dev/null
ts restore app:3 "$WORK/fresh3" >/dev/null
mtree_of "$WORK/fresh3" >"$WORK/want3.mtree"
KILLS=0
for n in 3 17 29; do
  status=0
  TREESNAP_TEST_ABORT_AFTER_ENTRIES=$n ts restore app:3 "$T" --update >/dev/null 2>&1 || status=$?
  # 137: killed by SIGKILL; 0 or 1 would mean the run finished with fewer than n changes left.
  if ((status == 137)); then KILLS=$((KILLS + 1)); fi
done
((KILLS >= 2)) || fail "the failpoint killed only $KILLS of 3 runs"
update_converges app:3 "$WORK/want3.mtree" "interrupted then finished update and fresh restore"
[[ -z "$(ls -a "$WORK" | grep '^\.tree\.treesnap-update' || true)" ]] || fail "staging tree left beside the target"
echo "PASS: update"
