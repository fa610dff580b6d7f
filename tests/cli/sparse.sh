#!/usr/bin/env bash
# Holes survive the round trip: the store's objects, files restored by copy and files restored
# by the default strategy take about as many blocks as the source, and read back equal. One file
# is over 4 GiB so that 32-bit offsets anywhere in the path would show.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$WORK/src/sparse
mkdir -p "$SRC"
MiB=$((1024 * 1024))
# Extra allocation tolerated over the source: file systems may round data runs up to their
# allocation unit, but a restore that fills a hole costs at least 10 MiB here.
SLACK=$MiB

allocated() { # FILE -> bytes allocated on disk
  sync -- "$1" # delayed allocation settles before we count blocks
  stat -c '%b %B' -- "$1" | awk '{ print $1 * $2 }'
}

# write_at FILE OFFSET_MIB LENGTH_MIB: random data in the middle of FILE, keeping its size.
write_at() {
  dd if=/dev/urandom of="$1" bs=1M seek="$2" count="$3" conv=notrunc status=none
}

step "making sparse files: 64 MiB with three data runs, and 5 GiB with data beyond 4 GiB"
truncate -s 64M "$SRC/small.img"
dd if=/dev/urandom of="$SRC/small.img" bs=4096 count=1 conv=notrunc status=none
write_at "$SRC/small.img" 10 1
dd if=/dev/urandom of="$SRC/small.img" bs=4096 seek=$((64 * 256 - 1)) count=1 conv=notrunc status=none

truncate -s 5G "$SRC/big.img"
write_at "$SRC/big.img" 0 1
write_at "$SRC/big.img" $((4 * 1024 + 100)) 2 # 4 GiB + 100 MiB
write_at "$SRC/big.img" $((5 * 1024 - 1)) 1    # the last MiB

# A read-only sparse file: the default strategy hardlinks it from a store variant, which must be
# sparse as well.
truncate -s 64M "$SRC/ro.img"
write_at "$SRC/ro.img" 32 1
chmod 0444 "$SRC/ro.img"

FILES=(small.img big.img ro.img)
for f in "${FILES[@]}"; do
  a=$(allocated "$SRC/$f")
  ((a < 8 * MiB)) || skip "the file system of $WORK does not keep holes ($f has $a bytes allocated)"
  echo "source $f: size $(stat -c %s "$SRC/$f"), allocated $a"
done

# assert_sparse_like SOURCE COPY WHAT: same content, and no more blocks than the source + slack.
assert_sparse_like() {
  local src=$1 copy=$2 what=$3 a_src a_copy
  cmp -- "$src" "$copy" || fail "$what: content differs from $src"
  a_src=$(allocated "$src")
  a_copy=$(allocated "$copy")
  echo "$what: allocated $a_copy bytes (source $a_src)"
  ((a_copy <= a_src + SLACK)) ||
    fail "$what: $a_copy bytes allocated, source has $a_src: holes were filled"
}

step "snapshot"
expect_status 0 ts --json snapshot "$SRC"
jq_assert "$OUT" ".files == 3 and .bytes == $((64 * MiB * 2 + 5 * 1024 * MiB))" "logical sizes"

step "the store keeps the objects sparse"
for f in "${FILES[@]}"; do
  hex=$(sha256sum "$SRC/$f" | cut -d' ' -f1)
  object=$STORE/objects/${hex:0:2}/$hex
  [[ -f "$object" ]] || fail "no object $object for $f"
  assert_eq "$(stat -c %a "$object")" 444 "mode of object $hex"
  assert_sparse_like "$SRC/$f" "$object" "object of $f"
done

step "restore --strategy copy keeps holes"
expect_status 0 ts --json restore sparse "$WORK/out-copy" --strategy copy
for f in "${FILES[@]}"; do
  assert_sparse_like "$SRC/$f" "$WORK/out-copy/$f" "copy/$f"
done

step "restore with the default strategy keeps holes"
expect_status 0 ts --json restore sparse "$WORK/out-default"
for f in "${FILES[@]}"; do
  assert_sparse_like "$SRC/$f" "$WORK/out-default/$f" "default/$f"
done
# The read-only file came from the store, and its variant is as sparse as the object.
[[ -n $(store_paths_of "$WORK/out-default/ro.img") ]] ||
  fail "default/ro.img (read-only) should be hardlinked from the store"

echo "PASS: sparse"
