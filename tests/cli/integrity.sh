#!/usr/bin/env bash
# verify --fast, status and repair end to end, through the command line: the seed's case (a file
# truncated to zero through a hardlinked environment), a write with its mtime set back, a
# replacement by rsync without --inplace, and damage directly in the store. After each repair:
# every name has the right content, inodes and link counts are as before, verify is clean, and a
# second repair does nothing. Directory modes and mtimes moved by hand or by new files are seen
# and put back. Damaged manifests and objects fail loudly, never restore wrongly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src
mkdir -p "$SRC/lib" "$SRC/bin"
printf 'shared object bytes\n%.0s' {1..200} >"$SRC/lib/libpython.so"
echo '#!/bin/sh' >"$SRC/bin/python"
echo 'config' >"$SRC/lib/site.cfg"
chmod 0444 "$SRC/lib/libpython.so" "$SRC/lib/site.cfg"
chmod 0555 "$SRC/bin/python"
ts snapshot "$SRC" --name py:3 >/dev/null
ts restore py:3 "$WORK/envA" --strategy hardlink >/dev/null
ts restore py:3 "$WORK/envB" --strategy hardlink >/dev/null
ts restore py:3 "$WORK/envC" --strategy copy >/dev/null
LIB=lib/libpython.so
GOOD=$(sha256sum <"$SRC/$LIB")

names() { echo "$WORK/envA/$LIB" "$WORK/envB/$LIB"; }
snapshot_links() { for f in $(names); do echo "$(inode_of "$f"):$(links_of "$f")"; done; }
assert_healed() { # BEFORE
  for f in $(names) "$WORK/envC/$LIB"; do
    assert_eq "$(sha256sum <"$f")" "$GOOD" "content of $f"
  done
  assert_eq "$(snapshot_links)" "$1" "inodes and link counts"
  expect_status 0 ts verify
  expect_status 0 ts status "$WORK/envA" --verify
  expect_status 0 ts status "$WORK/envB" --verify
  expect_status 0 ts --json repair "$WORK/envA"
  jq_assert "$OUT" '.actions | length == 0' "a second repair does nothing"
}

step "a fresh store and fresh hardlink restores verify clean, fast, without hashing"
expect_status 0 ts --json verify --fast
jq_assert "$OUT" '.hashed == 0 and (.bad | length) == 0' "fast verify after restores"

step "the seed's case: truncated to zero through one environment"
BEFORE=$(snapshot_links)
chmod u+w "$WORK/envA/$LIB" && : >"$WORK/envA/$LIB" && chmod u-w "$WORK/envA/$LIB"
expect_status 1 ts --json status "$WORK/envB"
jq_assert "$OUT" 'any(.changes[]; .path == "lib/libpython.so" and .kind == "content")' "status of the other environment"
expect_status 1 ts --json verify --fast
jq_assert "$OUT" '(.bad | length) == 1 and (.bad[0].trees | length) == 2 and .bad[0].paths == ["py:3:lib/libpython.so"]' \
  "verify names the snapshot path and both trees"
step "nothing restores from quarantine"
expect_status 1 ts restore py:3 "$WORK/never"
assert_error_line
grep -q 'corrupt: .*libpython.so' "$ERR" || fail "restore error does not name the path: $(cat "$ERR")"
[[ ! -e "$WORK/never" ]] || fail "a refused restore left a tree"
expect_status 0 ts --json repair "$WORK/envA"
jq_assert "$OUT" 'any(.actions[]; .action == "rewrote in place") and .complete' "repair rewrote the shared inode"
assert_healed "$BEFORE"

step "a write with its mtime set back: fast verify still sees it (ctime)"
MTIME=$(stat -c %y "$WORK/envB/$LIB")
chmod u+w "$WORK/envB/$LIB" && printf 'X' | dd of="$WORK/envB/$LIB" bs=1 seek=5 conv=notrunc status=none
chmod u-w "$WORK/envB/$LIB" && touch -m -d "$MTIME" "$WORK/envB/$LIB"
expect_status 1 ts verify --fast
expect_status 0 ts repair "$WORK/envB"
assert_healed "$BEFORE"

step "rsync without --inplace: a new inode replaces the name"
cp "$SRC/$LIB" "$WORK/tmpcopy" && echo extra >>"$WORK/tmpcopy" && mv -f "$WORK/tmpcopy" "$WORK/envA/$LIB"
expect_status 1 ts status "$WORK/envA"
expect_status 0 ts repair "$WORK/envA"
assert_healed "$BEFORE"

step "directory metadata: a mode and mtimes moved by hand and by new files, put back by repair"
LIB_MTIME=$(stat -c %Y.%y "$WORK/envA/lib")
ROOT_MTIME=$(stat -c %Y.%y "$WORK/envA")
BIN_MODE=$(stat -c %a "$WORK/envA/bin")
chmod 0700 "$WORK/envA/bin"
touch -m -d '2001-02-03 04:05:06' "$WORK/envA/lib"
echo stray >"$WORK/envA/stray.txt"
expect_status 1 ts --json status "$WORK/envA"
jq_assert "$OUT" 'any(.changes[]; .path == "bin" and .kind == "metadata" and (.detail | test("mode 0700")))' "bin's mode"
jq_assert "$OUT" 'any(.changes[]; .path == "lib" and .kind == "metadata" and (.detail | test("mtime")))' "lib's mtime"
jq_assert "$OUT" 'any(.changes[]; .path == "stray.txt" and .kind == "added")' "the stray file"
expect_status 0 ts --json repair "$WORK/envA" --prune
jq_assert "$OUT" 'any(.actions[]; .path == "bin" and .action == "fixed metadata")' "repair names bin"
assert_eq "$(stat -c %a "$WORK/envA/bin")" "$BIN_MODE" "bin's mode after repair"
assert_eq "$(stat -c %Y.%y "$WORK/envA/lib")" "$LIB_MTIME" "lib's mtime after repair"
assert_eq "$(stat -c %Y.%y "$WORK/envA")" "$ROOT_MTIME" "the root's mtime after the pruned file"
assert_healed "$BEFORE"

step "damage directly in the store, healed through a repair of a tree"
OBJ=$STORE/objects/${GOOD:0:2}/${GOOD%% *}
[[ -f "$OBJ" ]] || fail "no object $OBJ"
flip_byte "$OBJ" 10
expect_status 1 ts verify --fast
expect_status 0 ts repair "$WORK/envB"
assert_healed "$BEFORE"

step "lost content: named with the snapshots and trees that need it"
chmod u+w "$WORK/envA/$LIB" && echo garbage >"$WORK/envA/$LIB"
chmod u+w "$SRC/$LIB" && echo changed >"$SRC/$LIB"
chmod u+w "$WORK/envC/$LIB" && echo changed too >"$WORK/envC/$LIB"
expect_status 1 ts --json repair "$WORK/envA"
jq_assert "$OUT" '(.lost | length) == 1 and .lost[0].snapshots == ["py:3"] and (.lost[0].trees | length) == 3' "lost report"

step "a flipped byte in a manifest: verify and restore fail loudly"
MANIFEST=$(ts --json show py:3 | jq -r .id)
flip_byte "$STORE/objects/${MANIFEST:0:2}/$MANIFEST" 20
expect_status 1 ts --json verify
jq_assert "$OUT" 'any(.bad[]; .paths == ["py:3:(manifest)"])' "verify names the manifest"
expect_status 1 ts restore py:3 "$WORK/never2"
[[ ! -e "$WORK/never2" ]] || fail "a restore from a damaged manifest left a tree"
echo "PASS"
