#!/usr/bin/env bash
# The restore ladder on real file systems: which inode each restored file gets under each
# --strategy, checked against the store (by inode) and the kernel (FIEMAP), not only against
# treesnap's JSON report.
#
#   strategies.sh tmpdir   store, source and target in the test's directory ($TMPDIR)
#   strategies.sh ext4     ... on an ext4 loop mount (no reflink: fallbacks to copy)
#   strategies.sh xfs      ... on an XFS loop mount made with reflink=1
#   strategies.sh btrfs    ... on a btrfs loop mount
#   strategies.sh xdev     store and source on one XFS loop mount, targets on another (EXDEV)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CASE=${1:-}
TARGETS=""
case "$CASE" in
  tmpdir) BASE=$WORK ;;
  ext4 | xfs | btrfs)
    with_loop_fs "$CASE"
    BASE=$LOOP_MNT
    ;;
  xdev)
    with_loop_fs xfs
    BASE=$LOOP_MNT
    with_loop_fs xfs
    TARGETS=$LOOP_MNT
    ;;
  *) fail "usage: strategies.sh tmpdir|ext4|xfs|btrfs|xdev" ;;
esac
TARGETS=${TARGETS:-$BASE}
STORE=$BASE/store
SRC=$BASE/src/tree
EXDEV=18
# The errnos a clone that cannot happen must report: EXDEV across file systems, else
# EOPNOTSUPP, EINVAL or ENOTTY ("this file system cannot clone").
NO_CLONE_ERRNOS='[95, 22, 25]'
if [[ $CASE == xdev ]]; then NO_CLONE_ERRNOS="[$EXDEV]"; fi

# What the file system under the targets can do decides what the restore must have done; the
# probe is held to what each file system is known to do, so a broken probe cannot pass quietly.
CLONE=no
can_reflink "$TARGETS" && CLONE=yes
case "$CASE" in
  xfs | btrfs) [[ $CLONE == yes ]] || skip "$CASE loop mount cannot reflink (cp --reflink=always failed)" ;;
  ext4) [[ $CLONE == no ]] || fail "ext4 claims to reflink; the probe is broken" ;;
  xdev) CLONE=no ;; # the targets can clone, but not from the store's file system
esac
# FIEMAP answers on these; tmpfs, for one, does not.
FIEMAP=no
case "$(stat -f -c %T "$TARGETS")" in xfs | btrfs | ext2/ext3) FIEMAP=yes ;; esac
echo "case $CASE: store on $(stat -f -c %T "$BASE"), targets on $(stat -f -c %T "$TARGETS"), reflink: $CLONE"

step "source: a read-only and a writable file (256 KiB, more than btrfs inlines), empty files"
mkdir -p "$SRC/sub"
random_file "$SRC/ro.txt" 262144
random_file "$SRC/rw.txt" 262144
chmod 0444 "$SRC/ro.txt"
: >"$SRC/empty1"
: >"$SRC/empty2"
: >"$SRC/sub/empty3"
chmod 0444 "$SRC/sub/empty3" # read-only, yet still never linked: it has no content to share
mtree_of "$SRC" >"$WORK/src.mtree"
expect_status 0 ts --json snapshot "$SRC"

EMPTY_INODES=()

# restore_as STRATEGY: restores into $TARGETS/out-STRATEGY, leaves the JSON in $J and the tree
# in $T, and checks what holds for every strategy.
# A LABEL like hardlink+writable restores with --strategy hardlink and the further ARGS.
restore_as() {
  local label=$1 strategy=${1%%+*}
  shift
  T=$TARGETS/out-$label
  J=$WORK/restore-$label.json
  step "--strategy $strategy $* ($CASE)"
  expect_status 0 ts --json restore tree "$T" --strategy "$strategy" "$@"
  cp "$OUT" "$J"
  mtree_of "$T" >"$WORK/$label.mtree"
  assert_same_listing "$WORK/src.mtree" "$WORK/$label.mtree" "mtree listings ($label)"
  jq_assert "$J" '.empty_files == 3' "empty_files ($label)"
  local e
  for e in empty1 empty2 sub/empty3; do
    assert_eq "$(links_of "$T/$e")" 1 "link count of $label/$e"
    [[ -z $(store_paths_of "$T/$e") ]] || fail "$label/$e shares an inode with the store"
    EMPTY_INODES+=("$(stat -c %d:%i "$T/$e")")
  done
}

# assert_from_store FILE: FILE is hardlinked to a link source in the store: a file under
# variants/, or the object itself when its mode, owner and mtime already equal the entry's.
assert_from_store() {
  local found
  found=$(find "$STORE/variants" "$STORE/objects" -xdev -inum "$(inode_of "$1")")
  [[ -n "$found" && $(stat -c %d "$1") == $(stat -c %d "$STORE") ]] ||
    fail "$1 is not hardlinked to a file under $STORE/variants or $STORE/objects"
  (($(links_of "$1") > 1)) || fail "$1 has link count $(links_of "$1"), expected > 1"
  echo "  $(basename "$1") is ${found#"$STORE"/}"
}

# assert_own_inode FILE: FILE is its own inode, shared with nothing in the store.
assert_own_inode() {
  [[ -z $(store_paths_of "$1") ]] || fail "$1 shares its inode with $(store_paths_of "$1")"
  assert_eq "$(links_of "$1")" 1 "link count of $1"
}

# assert_fallback PATH FROM ERRNOS: the restore JSON $J records PATH falling back from FROM with
# one of the errnos (a JSON array).
assert_fallback() {
  jq -e --arg p "$1" --arg from "$2" --argjson errnos "$3" \
    'any(.fallbacks[]; .path == $p and .from == $from and (.errno as $e | any($errnos[]; . == $e)))
     and .fallback_count >= 1' "$J" >/dev/null ||
    fail "no fallback {path: $1, from: $2, errno in $3} in: $(jq -c .fallbacks "$J")"
}

# --- hardlink: every non-empty read-only file is a link into the store, unless across devices;
# a writable one is linked only with --hardlink-writable, and then through a variant.
restore_as hardlink
assert_fallback rw.txt hardlink "[0]"
jq -e 'any(.fallbacks[]; .path == "rw.txt" and .from == "hardlink" and (.reason | test("hardlink-writable")))' "$J" >/dev/null ||
  fail "the writable file's fallback must name --hardlink-writable: $(jq -c .fallbacks "$J")"
assert_own_inode "$T/rw.txt"
if [[ $CASE == xdev ]]; then
  assert_fallback ro.txt hardlink "[$EXDEV]"
  jq_assert "$J" '.strategies.hardlink.files == 0' "hardlink across devices"
  assert_own_inode "$T/ro.txt"
else
  assert_from_store "$T/ro.txt"
  jq_assert "$J" '.strategies.hardlink.files == 1' "hardlink links only the read-only file"
fi

restore_as hardlink+writable --hardlink-writable
if [[ $CASE == xdev ]]; then
  assert_fallback rw.txt hardlink "[$EXDEV]"
  jq_assert "$J" '.strategies.hardlink.files == 0 and .strategies.copy.files == 2' "hardlink across devices"
  assert_own_inode "$T/ro.txt"
  assert_own_inode "$T/rw.txt"
else
  assert_from_store "$T/ro.txt"
  assert_from_store "$T/rw.txt"
  [[ -n $(find "$STORE/variants" -xdev -inum "$(inode_of "$T/rw.txt")") ]] ||
    fail "rw.txt (0644) must be linked to a variant: objects are read-only"
  jq_assert "$J" '.strategies.hardlink.files == 2 and .fallback_count == 0' "hardlink counts"
fi

# --- auto: the read-only file is linked, the writable one cloned where possible, else copied.
restore_as auto
if [[ $CASE == xdev ]]; then
  assert_fallback ro.txt hardlink "[$EXDEV]"
  assert_own_inode "$T/ro.txt"
else
  assert_from_store "$T/ro.txt"
  jq_assert "$J" '.strategies.hardlink.files == 1' "auto links the read-only file"
fi
assert_own_inode "$T/rw.txt"
if [[ $CLONE == yes ]]; then
  assert_shared_extents "$T/rw.txt"
  jq_assert "$J" '.strategies.reflink.files == 1 and .fallback_count == 0' "auto reflinks rw.txt"
else
  # auto does not try FICLONE on a pair the probe says cannot clone: no fallback, the probe says why.
  jq -e --argjson errnos "$NO_CLONE_ERRNOS" \
    '([.fallbacks[] | select(.from == "reflink")] | length == 0) and (.probe.reflink.errno as $e | any($errnos[]; . == $e))' \
    "$J" >/dev/null || fail "auto must not fall back from reflink, probe errno in $NO_CLONE_ERRNOS: $(jq -c '[.fallbacks, .probe.reflink]' "$J")"
  jq_assert "$J" '.strategies.reflink.files == 0 and .strategies.copy.files >= 1' "auto copies rw.txt"
fi

# --- reflink: clones, with no inode shared with the store.
restore_as reflink
for f in ro.txt rw.txt; do
  assert_own_inode "$T/$f"
  if [[ $CLONE == yes ]]; then
    assert_shared_extents "$T/$f"
  else
    assert_fallback "$f" reflink "$NO_CLONE_ERRNOS"
  fi
done
if [[ $CLONE == yes ]]; then
  jq_assert "$J" '.strategies.reflink.files == 2 and .fallback_count == 0' "reflink counts"
else
  jq_assert "$J" '.strategies.reflink.files == 0 and .strategies.copy.files == 2' "reflink fell back"
fi

# --- copy: own inodes and own blocks, even where the file system could share them.
restore_as copy
for f in ro.txt rw.txt; do
  assert_own_inode "$T/$f"
  if [[ $FIEMAP == yes ]]; then assert_unshared_extents "$T/$f"; fi
done
jq_assert "$J" '.strategies.copy.files == 2 and .fallback_count == 0' "copy counts"

step "empty files are never one inode with each other, in any restore"
dupes=$(printf '%s\n' "${EMPTY_INODES[@]}" | sort | uniq -d)
[[ -z "$dupes" ]] || fail "empty files share inodes: $dupes"
assert_eq "${#EMPTY_INODES[@]}" 15 "empty files checked (3 in each of 5 restores)"

echo "PASS: strategies $CASE"
