#!/usr/bin/env bash
# push, pull and restore oci://… through the binary against Debian's docker-registry on loopback:
# --json summaries, trees compared with diff -r and bsdtar mtree listings, an incremental push
# that sends one file, xxh3-128 stores both ways across algorithms, --mount-from and mirrors
# counted in the registries' access logs, repair --from oci://… healing content lost everywhere
# locally (and failing cleanly when the registry lacks it too), and a hostile reference refused
# with the documented error line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v docker-registry >/dev/null || skip "docker-registry is not installed (scripts/install-deps.sh)"
command -v jq >/dev/null || skip "jq is not installed"
command -v bsdtar >/dev/null || skip "bsdtar is not installed (libarchive-tools)"

# start_registry NAME: docker-registry on a free loopback port with its data in $WORK/NAME and its
# access log (one line per request: "METHOD URI HTTP/1.1" STATUS) in $WORK/NAME.log; sets PORT.
start_registry() {
  local name=$1
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$WORK/$name.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/$name
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
YAML
  docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  at_exit "kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true"
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null || fail "docker-registry did not start: $(cat "$WORK/$name.log")"
}

# log_since LOG MARK: the lines of LOG after its first MARK lines.
log_since() { tail -n "+$(($2 + 1))" "$1"; }
# count_lines PATTERN: lines of stdin matching the extended regex (0 when none).
count_lines() { grep -cE "$1" || true; }

start_registry registry
REF=oci://127.0.0.1:$PORT/team/envs

# Bytes of the registry's files (directories left out: each new blob adds a few of 4 KiB).
registry_bytes() {
  find "$WORK/registry" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'
}

step "a tree with small and large files, a symlink, a hardlink and a sparse file"
SRC=$WORK/src
mkdir -p "$SRC/lib/pkg"
for i in $(seq 1 120); do head -c $((i * 37)) /dev/urandom >"$SRC/lib/pkg/m$i.py"; done
random_file "$SRC/big.bin" 3M
ln -s lib/pkg "$SRC/link"
ln "$SRC/lib/pkg/m1.py" "$SRC/hard"
truncate -s 16M "$SRC/sparse"
echo tail >>"$SRC/sparse"
chmod 0444 "$SRC/lib/pkg/m2.py"

step "push --json"
ts -q snapshot "$SRC" --name env:v1
expect_status 0 ts --json push env:v1 "$REF:v1"
jq_assert "$OUT" '.objects == .objects_moved and .objects > 100 and .packs_new >= 1 and .standalone_objects == 2' "push summary"
jq_assert "$OUT" '.reference | startswith("oci://127.0.0.1:")' "pinned reference"

step "pull into an empty store, restore, compare"
STORE2=$WORK/store2
expect_status 0 "$TREESNAP_BIN" --store "$STORE2" --json pull "$REF:v1"
jq_assert "$OUT" '.objects_moved == .objects and .name == "team/envs:v1"' "pull summary"
expect_status 0 "$TREESNAP_BIN" --store "$STORE2" restore team/envs:v1 "$WORK/out1"
diff -r "$SRC" "$WORK/out1" || fail "restored tree differs"
mtree_of "$SRC" >"$WORK/src.mtree"
mtree_of "$WORK/out1" >"$WORK/out1.mtree"
assert_same_listing "$WORK/src.mtree" "$WORK/out1.mtree" "mtree listings"

step "restore oci://… into a third, empty store in one step"
STORE3=$WORK/store3
expect_status 0 "$TREESNAP_BIN" --store "$STORE3" --json restore "$REF:v1" "$WORK/out2"
jq_assert "$OUT" '.pull.objects_moved == .pull.objects and .restore.entries > 100' "restore oci:// summary"
mtree_of "$WORK/out2" >"$WORK/out2.mtree"
assert_same_listing "$WORK/src.mtree" "$WORK/out2.mtree" "mtree listings"

step "incremental push of one changed file sends about that file"
before=$(registry_bytes)
head -c 5000 /dev/urandom >"$SRC/lib/pkg/m50.py"
ts -q snapshot "$SRC" --name env:v2
expect_status 0 ts --json push env:v2 "$REF:v1"
jq_assert "$OUT" '.objects_moved == 1 and .bytes_moved == 5000 and .packs_reused >= 1 and .packs_new == 1' "incremental push"
after=$(registry_bytes)
((after - before < 5000 + 20000)) || fail "registry grew by $((after - before)) bytes for one 5000-byte file"

step "restore oci://… again: the local name follows the tag, one object fetched"
expect_status 0 "$TREESNAP_BIN" --store "$STORE3" --json restore "$REF:v1" "$WORK/out3"
jq_assert "$OUT" '.pull.objects_moved == 1' "incremental pull"
diff -r "$SRC" "$WORK/out3" || fail "restored tree differs after the incremental pull"

step "xxh3-128 stores: push, pull into xxh3-128 and sha256 stores, and sha256 into xxh3-128"
XA=$WORK/xa XB=$WORK/xb
mtree_of "$SRC" >"$WORK/src2.mtree"
expect_status 0 "$TREESNAP_BIN" --store "$XA" init --digest xxh3-128
expect_status 0 "$TREESNAP_BIN" --store "$XB" init --digest xxh3-128
"$TREESNAP_BIN" --store "$XA" -q snapshot "$SRC" --name xenv:v1
expect_status 0 "$TREESNAP_BIN" --store "$XA" --json push xenv:v1 "$REF:x1"
# The large files are there already, and so is the config: the manifest translated to sha256 is
# env:v2's manifest object byte for byte (same tree).
jq_assert "$OUT" '.objects == .objects_moved + .objects_skipped and .blobs_skipped == 3 and .standalone_objects == 2' "xxh3-128 push summary"
XID=$(jq -r .id "$OUT")
expect_status 0 "$TREESNAP_BIN" --store "$XB" --json restore "$REF:x1" "$WORK/out-xx"
jq_assert "$OUT" ".pull.objects_moved == .pull.objects and .pull.id == \"$XID\"" "xxh3-128 → xxh3-128, same id"
mtree_of "$WORK/out-xx" >"$WORK/out-xx.mtree"
assert_same_listing "$WORK/src2.mtree" "$WORK/out-xx.mtree" "mtree listings (xxh3-128 → xxh3-128)"
expect_status 0 "$TREESNAP_BIN" --store "$STORE2" --json restore "$REF:x1" "$WORK/out-xs"
mtree_of "$WORK/out-xs" >"$WORK/out-xs.mtree"
assert_same_listing "$WORK/src2.mtree" "$WORK/out-xs.mtree" "mtree listings (xxh3-128 → sha256)"
expect_status 0 "$TREESNAP_BIN" --store "$XB" --json pull "$REF:v1" --name fromsha:v1
jq_assert "$OUT" '.objects > 100' "sha256 → xxh3-128 pull"
expect_status 0 "$TREESNAP_BIN" --store "$XB" restore fromsha:v1 "$WORK/out-sx"
diff -r "$SRC" "$WORK/out-sx" || fail "sha256 → xxh3-128: restored tree differs"
expect_status 0 "$TREESNAP_BIN" --store "$XB" --json verify
jq_assert "$OUT" '(.bad | length) == 0' "the xxh3-128 store verifies clean after both pulls"

step "push to another repository with --mount-from: every blob mounted (201), none uploaded"
mark=$(wc -l <"$WORK/registry.log")
expect_status 0 ts --json push env:v2 "oci://127.0.0.1:$PORT/team/copy:v1" --mount-from team/envs
# The reused packs and indexes of team/envs:v1 (2 + 2), the two large files and the config.
jq_assert "$OUT" '.blobs_mounted == 7 and .blobs_uploaded == 0 and .objects_moved == 0' "push --mount-from summary"
requests=$(log_since "$WORK/registry.log" "$mark")
mounts=$(count_lines '"POST /v2/team/copy/blobs/uploads/\?mount=sha256%3A[0-9a-f]{64}&from=team%2Fenvs HTTP/1.1" 201' <<<"$requests")
assert_eq "$mounts" 7 "POST ?mount= answered 201 in the registry's log"
assert_eq "$(count_lines '"(PUT|PATCH) /v2/team/copy/blobs/' <<<"$requests")" 0 "blob PUTs or PATCHes to team/copy"
expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-copy" restore "oci://127.0.0.1:$PORT/team/copy:v1" "$WORK/out-copy"
diff -r "$SRC" "$WORK/out-copy" || fail "the mounted copy restores another tree"

# team/lost:v1 is a copy of team/envs:v1 (packs A, the first push's, and B, m50.py's) that then
# loses blobs through the registry's DELETE: A's pack, and later B's index. A mount of a blob the
# source repository lacks is answered 202 with an upload session, never 201.
step "push --mount-from a repository that lost a pack: the refused mount falls back to uploads"
expect_status 0 ts push env:v2 "oci://127.0.0.1:$PORT/team/lost:v1" --mount-from team/envs
lost_layers=$(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$PORT/v2/team/lost/manifests/v1") || fail "no manifest for team/lost:v1"
# layer_digest MEDIA_TYPE N: the digest of the Nth layer of that type (0: pack A, 1: pack B).
layer_digest() { jq -r --arg t "$1" "[.layers[] | select(.mediaType == \$t)][$2].digest" <<<"$lost_layers"; }
delete_blob() {
  curl -fs -X DELETE "http://127.0.0.1:$PORT/v2/team/lost/blobs/$1" >/dev/null || fail "DELETE of blob $1"
}
pack_a=$(layer_digest application/vnd.treesnap.pack.v1 0)
index_b=$(layer_digest application/vnd.treesnap.pack-index.v1+zstd 1)
[[ "$pack_a" == sha256:* && "$index_b" == sha256:* ]] || fail "team/lost:v1 lacks two packs: $lost_layers"
delete_blob "$pack_a"
mark=$(wc -l <"$WORK/registry.log")
expect_status 0 ts --json push env:v2 "oci://127.0.0.1:$PORT/team/refused:v1" --mount-from team/lost
# Mounted: B and its index, A's index (before A was refused), the two large files, the config.
# Uploaded: A's objects in one new pack, with its index.
jq_assert "$OUT" '.blobs_mounted == 6 and .blobs_uploaded == 2 and .packs_reused == 1 and .packs_new == 1' \
  "push --mount-from with a refused mount"
requests=$(log_since "$WORK/registry.log" "$mark")
# A's pack, then the new pack and its index (put_blob tries a mount first, then uses the session).
assert_eq "$(count_lines '"POST /v2/team/refused/blobs/uploads/\?mount=[^ ]* HTTP/1.1" 202' <<<"$requests")" 3 \
  "mounts answered 202"
assert_eq "$(count_lines '"PUT /v2/team/refused/blobs/uploads/[^ ]* HTTP/1.1" 201' <<<"$requests")" 2 "blob uploads"
assert_eq "$(count_lines '"DELETE /v2/team/refused/blobs/uploads/[^ ]* HTTP/1.1" 204' <<<"$requests")" 1 \
  "the session opened for A's pack, cancelled"
expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-refused" restore "oci://127.0.0.1:$PORT/team/refused:v1" \
  "$WORK/out-refused"
diff -r "$SRC" "$WORK/out-refused" || fail "the push with a refused mount restores another tree"
mtree_of "$WORK/out-refused" >"$WORK/out-refused.mtree"
assert_same_listing "$WORK/src2.mtree" "$WORK/out-refused.mtree" "mtree listings (refused mount)"

step "push --mount-from a repository that also lost a pack index: that pack is not reused"
delete_blob "$index_b"
expect_status 0 ts --json push env:v2 "oci://127.0.0.1:$PORT/team/refused2:v1" --mount-from team/lost
# Every small object goes into one new pack; A's index is mounted before A is refused.
jq_assert "$OUT" '.blobs_mounted == 4 and .blobs_uploaded == 2 and .packs_reused == 0 and .packs_new == 1' \
  "push --mount-from with a lost index"
expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-refused2" restore "oci://127.0.0.1:$PORT/team/refused2:v1" \
  "$WORK/out-refused2"
diff -r "$SRC" "$WORK/out-refused2" || fail "the push with a lost index restores another tree"

step "mirrors from the store's config: blobs from the mirror, from the registry when it lacks them"
PRIMARY=$PORT
start_registry mirror
MIRROR=$PORT
PORT=$PRIMARY
expect_status 0 ts --json push env:v1 "oci://127.0.0.1:$PRIMARY/team/mirrored:m1"
R1=$(jq -r .reference "$OUT")
expect_status 0 ts push env:v1 "oci://127.0.0.1:$MIRROR/team/mirrored:m1"
expect_status 0 ts --json push env:v2 "oci://127.0.0.1:$PRIMARY/team/mirrored:m1"
R2=$(jq -r .reference "$OUT")
jq_assert "$OUT" '.packs_new == 1 and .packs_reused == 1' "env:v2 on the primary: one new pack"
for s in m1 m2; do
  expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-$s" init
  printf '[registry."127.0.0.1:%s"]\nmirrors = ["http://127.0.0.1:%s"]\n' "$PRIMARY" "$MIRROR" >>"$WORK/store-$s/treesnap.toml"
done
blob_gets='"GET /v2/team/mirrored/blobs/sha256:[0-9a-f]{64} HTTP/1.1"'

# env:v1 is whole on the mirror: the primary serves no blob.
p_mark=$(wc -l <"$WORK/registry.log") m_mark=$(wc -l <"$WORK/mirror.log")
expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-m1" --json restore "$R1" "$WORK/out-m1"
assert_eq "$(log_since "$WORK/registry.log" "$p_mark" | count_lines "$blob_gets")" 0 "blob GETs at the primary"
# The config, the pack index, the pack (its 120 objects in one coalesced range), 2 large files.
assert_eq "$(log_since "$WORK/mirror.log" "$m_mark" | count_lines "$blob_gets 20[06]")" 5 "blob GETs served by the mirror"
mtree_of "$WORK/out-m1" >"$WORK/out-m1.mtree"
assert_same_listing "$WORK/src.mtree" "$WORK/out-m1.mtree" "mtree listings (pulled through the mirror)"

# env:v2: its new pack, index and config are on the primary only; the rest on the mirror.
p_mark=$(wc -l <"$WORK/registry.log") m_mark=$(wc -l <"$WORK/mirror.log")
expect_status 0 "$TREESNAP_BIN" --store "$WORK/store-m2" --json restore "$R2" "$WORK/out-m2"
primary=$(log_since "$WORK/registry.log" "$p_mark" | count_lines "$blob_gets 20[06]")
mirror_404=$(log_since "$WORK/mirror.log" "$m_mark" | count_lines "$blob_gets 404")
mirror_ok=$(log_since "$WORK/mirror.log" "$m_mark" | count_lines "$blob_gets 20[06]")
assert_eq "$primary" 3 "blob GETs at the primary (config, new index, new pack)"
assert_eq "$mirror_404" 3 "the mirror's 404s for what it lacks"
assert_eq "$mirror_ok" 4 "blob GETs served by the mirror (the old index and pack, 2 large files)"
diff -r "$SRC" "$WORK/out-m2" || fail "restored tree differs (mirror and primary mixed)"

step "repair --from oci://…: the setup, a store of its own, pushed"
# A store of its own, so that the damage below touches nothing the other steps use.
HSTORE=$WORK/heal-store
hs() { "$TREESNAP_BIN" --store "$HSTORE" "$@"; }
HREF=${REF%/team/envs}/team/heal  # the primary registry ($PORT is the mirror's now)
HSRC=$WORK/heal-src
HLIB=lib/libpython.so
mkdir -p "$HSRC/lib" "$HSRC/other"
random_file "$HSRC/$HLIB" 300K
ln "$HSRC/$HLIB" "$HSRC/lib/libpython.so.1"
echo 'config' >"$HSRC/site.cfg"
chmod 0444 "$HSRC/$HLIB" "$HSRC/site.cfg"
echo 'unrelated' >"$HSRC/other/readme"
HGOOD=$(sha256sum <"$HSRC/$HLIB")
HDIGEST=sha256:${HGOOD%% *}
hs -q snapshot "$HSRC" --name heal:v1
expect_status 0 hs push heal:v1 "$HREF:v1"
# A snapshot on the registry without libpython.so's content, for the case the remote lacks it too.
mkdir -p "$WORK/heal-other"
echo 'something else' >"$WORK/heal-other/f"
hs -q snapshot "$WORK/heal-other" --name heal:other
expect_status 0 hs push heal:other "$HREF:other"
hs -q restore heal:v1 "$WORK/healA" --strategy hardlink
hs -q restore heal:v1 "$WORK/healB" --strategy hardlink
hs -q restore heal:v1 "$WORK/healC" --strategy copy
# An unrelated local store, to mix --from STORE with --from oci://…: it lacks the content.
"$TREESNAP_BIN" --store "$WORK/heal-side" -q snapshot "$WORK/heal-other" --name side

heal_names() { echo "$WORK/healA/$HLIB" "$WORK/healA/lib/libpython.so.1" "$WORK/healB/$HLIB" "$WORK/healB/lib/libpython.so.1"; }
heal_links() { for f in $(heal_names); do echo "$(inode_of "$f"):$(links_of "$f")"; done; }
HBEFORE=$(heal_links)
no_scratch_left() { # WHAT
  [[ -z "$(find "$HSTORE/tmp" -mindepth 1 -maxdepth 1 -name 'repair-*' -print -quit)" ]] ||
    fail "$1: a scratch store is left in tmp/: $(ls "$HSTORE/tmp")"
}
destroy_locally() {
  # The store's object is the restored inode (hardlink restore): one flipped byte damages every
  # hardlinked name. The copy and the snapshot's source go too.
  local obj="$HSTORE/objects/${HGOOD:0:2}/${HGOOD%% *}"
  [[ -f "$obj" ]] || fail "no object $obj"
  flip_byte "$obj" 100
  chmod u+w "$WORK/healC/$HLIB" && echo changed >"$WORK/healC/$HLIB"
  rm -rf "$HSRC"
}

step "repair without the registry: the content is lost everywhere locally"
destroy_locally
expect_status 1 hs --json repair "$WORK/healA" --from "$WORK/heal-side"
jq_assert "$OUT" "(.lost | length) == 1 and .lost[0].digest == \"$HDIGEST\" and (.complete | not)" "lost report"

step "repair --from a registry that lacks the content too: lost, named, exit 1, nothing left behind"
mark=$(wc -l <"$WORK/registry.log")
expect_status 1 hs repair "$WORK/healA" --from "$HREF:other" --from "$WORK/heal-side"
grep -q "LOST: $HDIGEST: no intact copy anywhere" "$OUT" || fail "the lost content is not named: $(cat "$OUT")"
grep -q "needed here by $HLIB" "$OUT" || fail "the path that needs it is not named: $(cat "$OUT")"
[[ $(log_since "$WORK/registry.log" "$mark" | count_lines 'team/heal/manifests/other') -ge 1 ]] ||
  fail "the registry was not asked"
no_scratch_left "after a pull that did not help"
assert_eq "$(cat "$WORK/healA/other/readme")" unrelated "an undamaged file"

step "repair --from a missing tag: the pull's error, exit 1, nothing left behind"
expect_status 1 hs repair "$WORK/healA" --from "$HREF:nope"
assert_error_line
grep -q "not_found" "$ERR" || fail "a missing tag should be not_found: $(cat "$ERR")"
grep -q "$HREF:nope" "$ERR" || fail "the error names the reference: $(cat "$ERR")"
no_scratch_left "after a failed pull"

step "repair --from oci://… heals every name in place: same inodes and link counts, verify clean"
expect_status 0 hs --json repair "$WORK/healA" --from "$HREF:other" --from "$WORK/heal-side" --from "$HREF:v1"
jq_assert "$OUT" ".complete and (.lost | length) == 0" "repair is complete"
jq_assert "$OUT" "any(.actions[]; .action == \"rewrote in place\" and .source == \"$HREF:v1\")" \
  "the content was rewritten in place from the registry"
for f in $(heal_names); do assert_eq "$(sha256sum <"$f")" "$HGOOD" "content of $f"; done
assert_eq "$(heal_links)" "$HBEFORE" "inodes and link counts"
no_scratch_left "after a healing pull"
# The copy is a tree of its own: healed from the store, now intact again.
expect_status 0 hs repair "$WORK/healC"
assert_eq "$(sha256sum <"$WORK/healC/$HLIB")" "$HGOOD" "content of the copy"
expect_status 0 hs verify
expect_status 0 hs status "$WORK/healA" --verify
expect_status 0 hs status "$WORK/healB" --verify

step "a second repair --from oci://… changes nothing and asks no registry"
mark=$(wc -l <"$WORK/registry.log")
expect_status 0 hs --json repair "$WORK/healA" --from "$HREF:v1"
jq_assert "$OUT" '.actions | length == 0' "a second repair does nothing"
assert_eq "$(log_since "$WORK/registry.log" "$mark" | count_lines 'team/heal')" 0 "registry requests"
assert_eq "$(heal_links)" "$HBEFORE" "inodes and link counts after the second repair"
expect_status 0 hs repair --help
grep -q "oci://" "$OUT" || fail "repair --help names the oci:// form of --from"

step "errors: no tag to push to, a missing tag, plain --help"
expect_status 1 ts push env:v1 "$REF"
assert_error_line
expect_status 1 "$TREESNAP_BIN" --store "$STORE2" pull "$REF:nope"
assert_error_line
grep -q not_found "$ERR" || fail "a missing tag should be not_found: $(cat "$ERR")"
expect_status 0 "$TREESNAP_BIN" push --help
grep -q "oci://" "$OUT" || fail "push --help names the reference form"
echo "ok"
