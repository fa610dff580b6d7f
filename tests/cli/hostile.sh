#!/usr/bin/env bash
# Misuse and damage: each fails with the documented exit status and a message, and leaves the
# file system as it was. Damage is a flipped byte (or a cut) in a stored file; every case gets a
# store of its own so one case's damage cannot hide another's. (A source that vanishes mid-walk
# cannot be timed from a shell; the unit tests cover it.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src/tree
mkdir -p "$SRC/sub"
echo "hello, this object will be damaged" >"$SRC/victim.txt"
echo "this one stays intact" >"$SRC/sub/fine.txt"
# An xattr makes a link restore go through a variant rather than the object itself.
echo "read-only, restored from a link variant" >"$SRC/ro.txt"
setfattr -n user.why -v "needs a variant" "$SRC/ro.txt"
chmod 0444 "$SRC/ro.txt"

# fresh_store NAME: points STORE at a new store holding one snapshot "tree" of $SRC, and sets
# MANIFEST to its manifest digest.
fresh_store() {
  STORE=$WORK/store-$1
  expect_status 0 ts --json snapshot "$SRC"
  MANIFEST=$(jq -r .manifest "$OUT")
}

# object_of FILE: the store path of FILE's content object.
object_of() {
  local hex
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  [[ -f "$STORE/objects/${hex:0:2}/$hex" ]] || fail "no object for $1 at objects/${hex:0:2}/$hex"
  echo "$STORE/objects/${hex:0:2}/$hex"
}

# Restores go into their own parent so that anything left next to DEST is seen.
RESTORES=$WORK/restores
mkdir "$RESTORES"

# assert_parent_holds NAMES...: $RESTORES holds exactly these names, so no hidden
# .DEST.treesnap-* staging sibling was left behind.
assert_parent_holds() {
  local have want
  have=$(cd "$RESTORES" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
  want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
  [[ "$have" == "$want" ]] || fail "$RESTORES holds [${have//$'\n'/ }], expected [${want//$'\n'/ }]"
}

# assert_restore_refused STRATEGY: restoring "tree" fails with exit 1 and leaves nothing.
assert_restore_refused() {
  expect_status 1 ts restore tree "$RESTORES/out" --strategy "$1"
  assert_error_line
  [[ ! -e "$RESTORES/out" ]] || fail "a failed restore ($1) left $RESTORES/out behind"
  assert_parent_holds
}

fresh_store misuse

step "usage errors exit 2 and create nothing"
expect_status 2 ts no-such-command
[[ -s "$ERR" ]] || fail "unknown command: nothing on stderr"
expect_status 2 ts snapshot "$SRC" --no-such-option
expect_status 2 ts restore tree # DEST missing
expect_status 2 ts restore tree "$RESTORES/x" --strategy sideways
assert_parent_holds

step "snapshot of a nonexistent source exits 1 and names it"
expect_status 1 ts snapshot "$WORK/does-not-exist"
assert_error_line
grep -q "does-not-exist" "$ERR" || fail "the error does not name the missing source: $(cat "$ERR")"

step "restore of an unknown name exits 1"
expect_status 1 ts restore no-such-snapshot "$RESTORES/unknown"
assert_error_line
assert_parent_holds

step "restore into a non-empty directory exits 1 and changes nothing in it"
mkdir "$RESTORES/busy"
echo "precious" >"$RESTORES/busy/keep.txt"
mkdir "$RESTORES/busy/victim.txt" # in the way of an entry of the snapshot
touch -d '2001-01-01 00:00:00.5' "$RESTORES/busy/keep.txt" "$RESTORES/busy/victim.txt" "$RESTORES/busy"
mtree_of "$RESTORES/busy" >"$WORK/busy.before"
expect_status 1 ts restore tree "$RESTORES/busy"
assert_error_line
mtree_of "$RESTORES/busy" >"$WORK/busy.after"
assert_same_listing "$WORK/busy.before" "$WORK/busy.after" "the non-empty target before and after"
assert_parent_holds busy

step "restore onto an existing regular file exits 1 and leaves it"
echo "a file" >"$RESTORES/afile"
expect_status 1 ts restore tree "$RESTORES/afile"
assert_error_line
assert_eq "$(cat "$RESTORES/afile")" "a file" "content of the file in the way"
assert_parent_holds busy afile
rm -rf "${RESTORES:?}"/*

step "verify passes on an intact store"
expect_status 0 ts --json verify
jq_assert "$OUT" '.bad == [] and .objects >= 4' "verify on an intact store (3 files + manifest)"

step "a flipped byte in a content object: verify names it, a copy restore refuses"
fresh_store content
OBJECT=$(object_of "$SRC/victim.txt")
DIGEST=sha256:$(basename "$OBJECT")
flip_byte "$OBJECT" 7
expect_status 1 ts verify
# The human report goes to stdout or stderr; either way it names the digest.
grep -q "^bad: $DIGEST " "$OUT" "$ERR" || fail "verify does not print 'bad: $DIGEST ...': $(cat "$OUT" "$ERR")"
expect_status 1 ts --json verify
jq_assert "$OUT" "any(.bad[]; .digest == \"$DIGEST\") and (.bad | length) == 1" "verify --json lists only it"
# A copy reads every byte, so it must notice; the error says what kind of failure it is.
assert_restore_refused copy
grep -q '^treesnap: error: corrupt: ' "$ERR" || fail "expected a 'corrupt' error: $(cat "$ERR")"

step "a truncated content object: verify names it, a copy restore refuses"
fresh_store truncated
OBJECT=$(object_of "$SRC/sub/fine.txt")
chmod u+w "$OBJECT"
truncate -s 3 "$OBJECT"
chmod 0444 "$OBJECT"
expect_status 1 ts --json verify
jq_assert "$OUT" "any(.bad[]; .digest == \"sha256:$(basename "$OBJECT")\")" "verify lists the cut object"
assert_restore_refused copy

step "a flipped byte in the manifest: verify names it, every restore refuses"
fresh_store manifest
MHEX=${MANIFEST#sha256:}
MOBJECT=$STORE/objects/${MHEX:0:2}/$MHEX
[[ -f "$MOBJECT" ]] || fail "no manifest object $MOBJECT"
flip_byte "$MOBJECT" $(($(stat -c %s "$MOBJECT") / 2))
expect_status 1 ts --json verify
jq_assert "$OUT" "any(.bad[]; .digest == \"$MANIFEST\")" "verify lists the damaged manifest"
for strategy in auto hardlink copy; do
  assert_restore_refused "$strategy"
done

step "a flipped byte in a link variant: verify names the variant"
fresh_store variant
expect_status 0 ts restore tree "$WORK/linked" # auto links ro.txt through a variant
VARIANT=$(find "$STORE/variants" -xdev -inum "$(inode_of "$WORK/linked/ro.txt")")
[[ -n "$VARIANT" ]] || fail "ro.txt was not restored from a link variant"
flip_byte "$VARIANT" 3
expect_status 1 ts --json verify
# Variant names are hex digits, digits and dots, safe inside a jq string.
jq_assert "$OUT" "any(.bad[]; .path | endswith(\"${VARIANT#"$STORE"/}\"))" "verify lists the variant"

echo "PASS: hostile"
