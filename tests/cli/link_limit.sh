#!/usr/bin/env bash
# More names of one read-only content than ext4 lets one inode have (65,000): a hardlink restore
# must spread them over generations of link variants, each kept one link below the limit, and
# never fall back to copies or fail with EMLINK. Real ext4 loop mount, real link counts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAMES=${LINK_LIMIT_NAMES:-66000}
with_loop_fs ext4 2G
BASE=$LOOP_MNT
STORE=$BASE/store
link_max=$(getconf LINK_MAX "$BASE")
((NAMES > link_max)) || fail "ext4 reports LINK_MAX $link_max; the test needs more names than that"

step "a source of $NAMES read-only files with the same content, in 66 directories"
python3 - "$BASE/src" "$NAMES" <<'EOF'
import os, sys
root, names = sys.argv[1], int(sys.argv[2])
for i in range(names):
    d = os.path.join(root, f"d{i // 1000:02d}")
    if i % 1000 == 0:
        os.makedirs(d)
    path = os.path.join(d, f"f{i:05d}")
    with open(path, "wb") as f:
        f.write(b"one content, many names\n")
    os.chmod(path, 0o444)
EOF

expect_status 0 ts --json snapshot "$BASE/src" --name many
jq_assert "$OUT" '.new_objects == 1 and .new_bytes == 24' "one content object"

step "hardlink restore of $NAMES names"
expect_status 0 ts --json restore many "$BASE/out" --strategy hardlink
jq_assert "$OUT" ".strategies.hardlink.files == $NAMES and .fallback_count == 0" "every name linked, no fallback"

step "link counts: below $link_max on every store inode, all names accounted for"
mapfile -t sources < <(find "$STORE/objects" "$STORE/variants" -type f -links +1 -printf '%n %i %P\n' | sort -n)
((${#sources[@]} >= 2)) || fail "expected the names to span at least two store inodes, got: ${sources[*]}"
total=0
for s in "${sources[@]}"; do
  read -r n _ _ <<<"$s"
  ((n < link_max)) || fail "a store inode reached the limit: $s (LINK_MAX $link_max)"
  total=$((total + n - 1)) # minus the store's own name
done
assert_eq "$total" "$NAMES" "restored names linked to store inodes"
assert_eq "$(find "$BASE/out" -type f | wc -l)" "$NAMES" "files in the restored tree"
assert_eq "$(cat "$BASE/out/d65/f65999")" "one content, many names" "content of the last name"

step "a second restore links on without EMLINK"
expect_status 0 ts --json restore many "$BASE/out2" --strategy hardlink
jq_assert "$OUT" ".strategies.hardlink.files == $NAMES and .fallback_count == 0" "second restore fully linked"
