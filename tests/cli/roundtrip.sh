#!/usr/bin/env bash
# A snapshot restored with --strategy copy, then with the default strategy, equals its source:
# every type of entry, odd names, metadata down to nanoseconds, xattrs, ACLs and hardlink groups.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src/tree
mkdir -p "$SRC"
cd "$SRC"

step "building a source tree with odd names, links, special files and metadata"
# Names: a space, a newline, bytes that are not UTF-8, and the longest name Linux allows.
echo "space" >'with space.txt'
echo "newline" >$'new\nline'
echo "latin" >$'bad\xff\xfe'
LONG=$(printf 'n%.0s' {1..255})
echo "long" >"$LONG"

# Symlinks are stored, never followed: a dangling one, an absolute one, and a loop.
ln -s does/not/exist dangling
ln -s /etc/passwd absolute
ln -s loop_b loop_a
ln -s loop_a loop_b

# One writable inode under three names (two directories), and a read-only pair: the default
# strategy hardlinks read-only files through the store, and the pair must still be one inode.
mkdir sub
echo "three names, one inode" >hl1
ln hl1 hl2
ln hl1 sub/hl3
echo "read-only pair" >ro1
chmod 0444 ro1
ln ro1 sub/ro2

# Empty files (one read-only) and directories, and a read-only directory that holds a file:
# the restore has to write into it before it sets the mode.
: >empty
: >sub/empty_ro
chmod 0444 sub/empty_ro
mkdir -p emptydir deep/er/still
mkdir rodir
echo "inside a 0555 directory" >rodir/file

# setuid and setgid; chown clears them, so ownership first.
printf '#!/bin/sh\n' >suid
printf '#!/bin/sh\n' >sgid
mkdir sgid_dir
mkfifo fifo
if is_root; then
  mknod chardev c 1 3
  chown 1234:5678 suid sgid_dir hl1 rodir/file
  chown -h 1234:5678 absolute
  echo "root: added a char device and files owned by 1234:5678"
fi
chmod 4755 suid
chmod 2755 sgid
chmod 2775 sgid_dir

# Extended attributes (text and binary values, on a file, a directory and a read-only file) and
# POSIX ACLs (an access ACL on a writable and a read-only file, a default ACL on a directory).
setfattr -n user.text -v "hello world" 'with space.txt'
setfattr -n user.binary -v 0x00ff10ee 'with space.txt'
setfattr -n user.dir -v "on a dir" sub
setfattr -n user.ro -v "read-only file" ro1
setfacl -m u:nobody:r hl2
setfacl -m u:nobody:r ro1
setfacl -d -m u:nobody:rx sgid_dir

# Nanosecond mtimes on a file, a symlink and directories; directories last, since adding
# entries to a directory moves its mtime.
touch -d '2021-03-04 05:06:07.123456789' 'with space.txt'
touch -h -d '2019-01-02 03:04:05.987654321' dangling
chmod 0555 rodir
touch -d '2020-02-03 04:05:06.000000001' rodir sub emptydir "$SRC"
cd "$WORK"

mtree_of "$SRC" >"$WORK/src.mtree"
xattrs_of "$SRC" >"$WORK/src.xattrs"
acls_of "$SRC" >"$WORK/src.acls"
grep -q 'user.binary=0x00ff10ee' "$WORK/src.xattrs" || fail "setup: xattrs not readable back"
grep -q 'user:65534:r' "$WORK/src.acls" || fail "setup: ACL not readable back"

step "snapshot"
expect_status 0 ts --json snapshot "$SRC"
cp "$OUT" "$WORK/snapshot.json"
jq_assert "$WORK/snapshot.json" '.name == "tree:latest"' "default name is the source basename"
# Regular files, hardlinks counted once: with space, new\nline, bad, long, hl*, ro*, empty,
# empty_ro, rodir/file, suid, sgid = 11.
jq_assert "$WORK/snapshot.json" '.files == 11' "files count (hardlinks counted once)"

step "show --entries escapes non-UTF-8 bytes as Latin-1 code points"
expect_status 0 ts --json show tree --entries
jq_assert "$OUT" 'any(.entries_list[]; .path | endswith("bad\u00ff\u00fe"))' "escaped name"
jq_assert "$OUT" 'any(.entries_list[]; (.path | endswith("loop_a")) and .target == "loop_b")' \
  "symlink target in entries_list"

# check_restored DIR HOW: DIR equals the source in every respect we can list.
check_restored() {
  local out=$1 how=$2
  mtree_of "$out" >"$WORK/$how.mtree"
  assert_same_listing "$WORK/src.mtree" "$WORK/$how.mtree" "mtree listings ($how)"
  xattrs_of "$out" >"$WORK/$how.xattrs"
  assert_same_listing "$WORK/src.xattrs" "$WORK/$how.xattrs" "xattr dumps ($how)"
  acls_of "$out" >"$WORK/$how.acls"
  assert_same_listing "$WORK/src.acls" "$WORK/$how.acls" "ACL dumps ($how)"

  # Hardlink groups are rebuilt inside the tree: one inode per group.
  assert_same_inode "$out/hl1" "$out/hl2"
  assert_same_inode "$out/hl1" "$out/sub/hl3"
  assert_same_inode "$out/ro1" "$out/sub/ro2"
  assert_diff_inode "$out/hl1" "$out/ro1"
  # The writable group is never shared with the store, whatever the strategy: exactly 3 links.
  assert_eq "$(links_of "$out/hl1")" 3 "link count of $how/hl1"
  if [[ "$how" == copy ]]; then
    assert_eq "$(links_of "$out/ro1")" 2 "link count of $how/ro1 (copy)"
  fi
  # Empty files are created fresh: never one inode with each other.
  assert_diff_inode "$out/empty" "$out/sub/empty_ro"
  [[ -p "$out/fifo" ]] || fail "$how/fifo is not a FIFO"
  if is_root; then
    [[ -c "$out/chardev" ]] || fail "$how/chardev is not a character device"
  fi
}

step "restore --strategy copy and compare"
expect_status 0 ts --json restore tree "$WORK/out-copy" --strategy copy
cp "$OUT" "$WORK/restore-copy.json"
jq_assert "$WORK/restore-copy.json" '.strategies.copy.files >= 9 and .strategies.hardlink.files == 0
  and .strategies.reflink.files == 0' "copy strategy counts"
jq_assert "$WORK/restore-copy.json" '.empty_files == 2' "empty files created fresh"
assert_eq "$(jq -r .target "$WORK/restore-copy.json")" "$WORK/out-copy" "restore JSON target"
check_restored "$WORK/out-copy" copy
for f in hl1 ro1 'with space.txt'; do
  [[ -z $(store_paths_of "$WORK/out-copy/$f") ]] || fail "copy/$f shares its inode with the store"
done

step "restore with the default strategy into an existing empty directory and compare"
mkdir "$WORK/out-default"
expect_status 0 ts --json restore tree "$WORK/out-default"
cp "$OUT" "$WORK/restore-default.json"
check_restored "$WORK/out-default" default
# The read-only pair is hardlinked from a store variant, so it has more links than its 2 names.
[[ -n $(store_paths_of "$WORK/out-default/ro1") ]] ||
  fail "default strategy: read-only ro1 is not hardlinked from the store"
(($(links_of "$WORK/out-default/ro1") > 2)) || fail "default/ro1 should have store links too"
[[ -z $(store_paths_of "$WORK/out-default/hl1") ]] ||
  fail "default strategy: writable hl1 must not be hardlinked from the store"

step "on a terminal, restore shows progress on stderr; piped, it does not"
# script(1) gives the command a pseudo-terminal and records what it printed there.
script -qec "'$TREESNAP_BIN' --store '$STORE' restore tree '$WORK/out-tty' 2>&1" "$WORK/tty.log" >/dev/null
grep -aq 'restoring [0-9]*/[0-9]* files' "$WORK/tty.log" ||
  fail "no progress line on a terminal: $(head -c 300 "$WORK/tty.log")"
expect_status 0 ts restore tree "$WORK/out-pipe"
! grep -q 'restoring' "$ERR" || fail "progress printed to a pipe: $(cat "$ERR")"

echo "PASS: roundtrip"
