# shellcheck shell=bash
# Common helpers of the CLI tests. Each test script does
#
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh"
#
# and then gets: a fresh $WORK directory (removed on success, kept and printed on failure), a
# store $STORE inside it, `ts` to run treesnap on that store, assertions that print what differed,
# `skip` for capability probes (exit 77, which ctest reports as SKIPPED), and `with_loop_fs` for
# XFS/btrfs/ext4 loop mounts that are always unmounted again.

set -o errtrace         # the ERR trap below also fires inside functions
shopt -s inherit_errexit # and set -e holds inside $(...)
export LC_ALL=C         # byte-order sorting and plain error messages, whatever the host locale

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME=$(basename "$0" .sh)${1:+ $1}

# ---------------------------------------------------------------------------------------------
# Failing, skipping, cleaning up

fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  exit 1
}

skip() {
  echo "SKIPPED: $*"
  exit 77
}

# Say what is being checked, so a log shows how far a test got.
step() {
  echo "--- $*"
}

# One EXIT trap runs a list of cleanups, newest first, so helpers can each add their own
# (loop mounts, servers) without overwriting each other's trap.
_cleanups=()
at_exit() {
  _cleanups+=("$1")
}

_run_cleanups() {
  local status=$? i
  set +e
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_cleanups[i]}"
  done
  if [[ -n "${WORK:-}" && -d "$WORK" ]]; then
    if ((status == 0 || status == 77)); then
      chmod -R u+rwx "$WORK" 2>/dev/null # read-only dirs in the trees would stop rm as non-root
      rm -rf "$WORK"
    else
      echo "kept the work directory for inspection: $WORK" >&2
    fi
  fi
  exit "$status"
}
trap _run_cleanups EXIT
trap 'echo "FAIL: $TEST_NAME: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------------------------------------
# The binary, the work directory, the store

if [[ -z "${TREESNAP_BIN:-}" ]]; then
  echo "FAIL: TREESNAP_BIN is not set; ctest sets it, or run: TREESNAP_BIN=build/treesnap bash $0" >&2
  exit 1
fi
[[ -x "$TREESNAP_BIN" ]] || fail "TREESNAP_BIN=$TREESNAP_BIN is not an executable file"
TREESNAP_BIN=$(realpath "$TREESNAP_BIN")

WORK=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/treesnap-cli.XXXXXX")")
STORE=$WORK/store
# A store named in the environment of whoever runs the tests must never be touched.
unset TREESNAP_STORE

is_root() {
  [[ $(id -u) -eq 0 ]]
}

# treesnap on the test's store: `ts --json snapshot SRC`.
ts() {
  "$TREESNAP_BIN" --store "$STORE" "$@"
}

# expect_status STATUS CMD...: runs CMD with stdout in $OUT and stderr in $ERR (files), and
# fails unless it exits with STATUS. The output stays readable by the caller.
OUT=$WORK/last.stdout
ERR=$WORK/last.stderr
expect_status() {
  local want=$1 got=0
  shift
  "$@" >"$OUT" 2>"$ERR" || got=$?
  if [[ "$got" != "$want" ]]; then
    echo "command: $*" >&2
    echo "stdout:" >&2
    head -c 4000 "$OUT" >&2
    echo "stderr:" >&2
    head -c 4000 "$ERR" >&2
    fail "exit status $got, expected $want"
  fi
}

# The documented form of every error: one line `treesnap: error: <code>: <context>` on stderr.
assert_error_line() {
  grep -Eq '^treesnap: error: [a-z_]+: .' "$ERR" ||
    fail "stderr has no 'treesnap: error: <code>: <context>' line: $(head -c 1000 "$ERR")"
}

# ---------------------------------------------------------------------------------------------
# Assertions

assert_eq() { # ACTUAL EXPECTED [WHAT]
  [[ "$1" == "$2" ]] || fail "${3:-value}: got '$1', expected '$2'"
}

# jq_assert JSON_FILE FILTER [WHAT]: the jq filter must print true.
jq_assert() {
  jq -e "$2" "$1" >/dev/null || fail "${3:-JSON check} failed: jq '$2' on: $(head -c 3000 "$1")"
}

inode_of() {
  stat -c %i -- "$1"
}

links_of() {
  stat -c %h -- "$1"
}

assert_same_inode() {
  [[ $(stat -c %d:%i -- "$1") == $(stat -c %d:%i -- "$2") ]] ||
    fail "$1 and $2 should be one inode: $(stat -c '%d:%i' -- "$1") vs $(stat -c '%d:%i' -- "$2")"
}

assert_diff_inode() {
  [[ $(stat -c %d:%i -- "$1") != $(stat -c %d:%i -- "$2") ]] ||
    fail "$1 and $2 should be different inodes, both are $(stat -c '%d:%i' -- "$1")"
}

# Prints the store files that are FILE's inode (none when FILE is not on the store's device).
store_paths_of() { # FILE [STORE]
  local store=${2:-$STORE}
  [[ $(stat -c %d -- "$1") == $(stat -c %d -- "$store") ]] || return 0
  find "$store" -xdev -inum "$(inode_of "$1")"
}

# FILE's extents are shared with another file (a reflink), as FIEMAP reports it.
assert_shared_extents() {
  local answer
  answer=$(python3 "$TESTS_DIR/fiemap_shared.py" "$1") || fail "FIEMAP failed on $1"
  [[ "$answer" == shared ]] || fail "$1 should share extents (a reflink), FIEMAP says $answer"
}

assert_unshared_extents() {
  local answer
  answer=$(python3 "$TESTS_DIR/fiemap_shared.py" "$1") || fail "FIEMAP failed on $1"
  [[ "$answer" == unshared ]] || fail "$1 should own its extents (a copy), FIEMAP says $answer"
}

# assert_same_listing A B WHAT: the two files are equal, else the diff is shown.
assert_same_listing() {
  diff -u "$1" "$2" >&2 || fail "$3 differ (diff above: - source, + restored)"
}

# ---------------------------------------------------------------------------------------------
# Describing trees

# The tree under DIR as an mtree listing: type, mode, owner, size, mtime (ns), symlink target,
# device numbers and the sha256 of file content, one line per entry, sorted by path. Link counts
# are left out on purpose: a file restored by hardlink shares its inode with the store.
mtree_of() {
  (cd "$1" && bsdtar -cf - --format=mtree \
    --options 'mtree:!all,type,mode,uid,gid,size,time,link,device,sha256' .)
}

# Every extended attribute (ACLs included, values in hex) under DIR, by relative path, sorted.
# Symlinks are not followed; a file without attributes prints nothing.
xattrs_of() {
  (cd "$1" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex --)
}

# Every ACL (with owner, group and the setuid/setgid/sticky flags line) under DIR, sorted.
# getfacl cannot leave a symlink alone, so symlinks are skipped; mtree_of covers them.
acls_of() {
  (cd "$1" && find . ! -type l -print0 | sort -z | xargs -0 getfacl -n --)
}

# Flips every bit of the byte at OFFSET of FILE in place (same inode, mode kept): store damage.
flip_byte() { # FILE OFFSET
  local file=$1 offset=$2 mode byte
  mode=$(stat -c %a -- "$file")
  byte=$(od -An -tu1 -j "$offset" -N1 -- "$file" | tr -d ' ')
  [[ -n "$byte" ]] || fail "flip_byte: $file has no byte at $offset"
  chmod u+w -- "$file"
  # shellcheck disable=SC2059 # the format is the octal escape of the new byte
  printf "$(printf '\\%03o' $((byte ^ 0xff)))" |
    dd of="$file" bs=1 seek="$offset" count=1 conv=notrunc status=none
  chmod "$mode" -- "$file"
}

# ---------------------------------------------------------------------------------------------
# Loop-mounted file systems

# with_loop_fs TYPE [SIZE]: makes a TYPE (xfs, btrfs, ext4) file system in a sparse image in a
# fresh temporary directory, mounts it and sets LOOP_MNT to the mount point. The EXIT cleanups
# unmount it (lazily if it is still busy) and delete the image. Skips the test when not root or
# when the kernel or tools cannot do it.
with_loop_fs() {
  local type=$1 size=${2:-1G} dir mkfs
  is_root || skip "$type loop mount needs root"
  case "$type" in
    xfs) mkfs=(mkfs.xfs -q -f -m reflink=1) ;;
    btrfs) mkfs=(mkfs.btrfs -q -f) ;;
    ext4) mkfs=(mkfs.ext4 -q -F) ;;
    *) fail "with_loop_fs: unknown file system type $type" ;;
  esac
  command -v "${mkfs[0]}" >/dev/null || skip "${mkfs[0]} is not installed"
  grep -qw "$type" /proc/filesystems || modprobe "$type" 2>/dev/null ||
    skip "the kernel has no $type support"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-loop.XXXXXX")
  # Registered before mounting so a half-made image is removed too.
  at_exit "_loop_cleanup '$dir'"
  truncate -s "$size" "$dir/image"
  mkdir "$dir/mnt"
  "${mkfs[@]}" "$dir/image" >"$dir/mkfs.log" 2>&1 ||
    skip "${mkfs[*]} failed: $(tail -n 3 "$dir/mkfs.log")"
  mount -o loop "$dir/image" "$dir/mnt" 2>"$dir/mount.log" ||
    skip "cannot loop-mount $type: $(cat "$dir/mount.log")"
  LOOP_MNT=$dir/mnt
  echo "mounted $type ($size image) on $LOOP_MNT"
}

_loop_cleanup() {
  local dir=$1
  if mountpoint -q "$dir/mnt"; then
    umount "$dir/mnt" 2>/dev/null || { sleep 1 && umount "$dir/mnt" 2>/dev/null; } ||
      umount -l "$dir/mnt"
  fi
  rm -rf "$dir"
}

# The file system at PATH can clone files (FICLONE), tried with cp --reflink=always: the
# capability probe that decides whether a test expects reflinks or copies.
can_reflink() { # DIR
  local probe=$1/.reflink-probe.$$
  head -c 65536 /dev/urandom >"$probe.a"
  local status=0
  cp --reflink=always "$probe.a" "$probe.b" 2>/dev/null || status=1
  rm -f "$probe.a" "$probe.b"
  return "$status"
}

# A file of SIZE bytes (head -c syntax) of incompressible, unique content.
random_file() { # PATH SIZE
  head -c "$2" /dev/urandom >"$1"
}
