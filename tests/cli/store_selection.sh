#!/usr/bin/env bash
# Which store a command uses, the digest algorithm, and the bookkeeping commands (list, show,
# rm) with their documented JSON; the stat cache on an unchanged tree; duplicate names.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The binary with a controlled environment: no TREESNAP_STORE, HOME and XDG_DATA_HOME in $WORK.
bare() {
  env -u TREESNAP_STORE HOME="$WORK/home" XDG_DATA_HOME="$WORK/xdg" "$@"
}
mkdir "$WORK/home" "$WORK/xdg"

is_store() { [[ -f "$1/treesnap.db" && -d "$1/objects" ]]; }

step "--store wins over TREESNAP_STORE, which wins over the default"
expect_status 0 bare env TREESNAP_STORE="$WORK/by-env" "$TREESNAP_BIN" --json --store "$WORK/by-flag" init
jq_assert "$OUT" '.digest == "sha256"' "init JSON digest"
assert_eq "$(realpath "$(jq -r .store "$OUT")")" "$WORK/by-flag" "init JSON store"
is_store "$WORK/by-flag" || fail "--store did not create $WORK/by-flag"
[[ ! -e "$WORK/by-env" ]] || fail "TREESNAP_STORE was used although --store was given"

expect_status 0 bare env TREESNAP_STORE="$WORK/by-env" "$TREESNAP_BIN" --json init
assert_eq "$(realpath "$(jq -r .store "$OUT")")" "$WORK/by-env" "store from TREESNAP_STORE"
is_store "$WORK/by-env" || fail "TREESNAP_STORE did not create $WORK/by-env"
[[ -z $(ls -A "$WORK/xdg") && -z $(ls -A "$WORK/home") ]] || fail "the default store was created too"

# The per-user default applies to non-root users only. As root, run it as nobody when nobody
# can reach the binary; never create /var/lib/treesnap on the test machine.
as_user=()
if is_root; then
  chmod 0755 "$WORK"
  chown 65534:65534 "$WORK/home" "$WORK/xdg"
  if setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$TREESNAP_BIN"; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  else
    as_user=(skip-default)
  fi
fi
if [[ "${as_user[*]}" == skip-default ]]; then
  echo "note: root, and user nobody cannot execute $TREESNAP_BIN: default-path checks not run"
else
  step "default store: \$XDG_DATA_HOME/treesnap, else ~/.local/share/treesnap (non-root)"
  expect_status 0 bare "${as_user[@]}" "$TREESNAP_BIN" --json init
  assert_eq "$(realpath "$(jq -r .store "$OUT")")" "$WORK/xdg/treesnap" "default store with XDG_DATA_HOME"
  is_store "$WORK/xdg/treesnap" || fail "no store in \$XDG_DATA_HOME/treesnap"
  expect_status 0 env -u TREESNAP_STORE -u XDG_DATA_HOME HOME="$WORK/home" "${as_user[@]}" "$TREESNAP_BIN" --json init
  assert_eq "$(realpath "$(jq -r .store "$OUT")")" "$WORK/home/.local/share/treesnap" "default store with HOME"
  is_store "$WORK/home/.local/share/treesnap" || fail "no store in ~/.local/share/treesnap"
fi

step "init --digest xxh3-128: manifests carry that algorithm; the other algorithm is refused"
SRC=$WORK/src/proj
mkdir -p "$SRC/sub"
printf 'alpha' >"$SRC/a.txt"
printf 'bravo!' >"$SRC/b.txt"
printf 'charlie' >"$SRC/sub/c.txt"
ln -s a.txt "$SRC/link"
# Old mtimes and a pause, so no file is "racily clean" (changed within the timestamp
# granularity of the snapshot) and the stat cache can trust all of them.
touch -d '2020-01-01 00:00:00' "$SRC"/*.txt "$SRC/sub/c.txt"
sleep 2

STORE=$WORK/xxh
expect_status 0 ts --json init --digest xxh3-128
jq_assert "$OUT" '.digest == "xxh3-128"' "init xxh3-128"
expect_status 0 ts --json snapshot "$SRC"
jq_assert "$OUT" '(.manifest | startswith("xxh3-128:")) and .manifest == "xxh3-128:" + .id' "xxh3 manifest"
expect_status 0 ts init --digest xxh3-128 # same algorithm again: nothing to do
expect_status 1 ts init --digest sha256
assert_error_line

step "snapshot JSON fields and counts"
STORE=$WORK/main
expect_status 0 ts --json snapshot "$SRC"
cp "$OUT" "$WORK/v1.json"
jq_assert "$WORK/v1.json" '[.name, .id, .manifest, .entries, .files, .bytes, .new_objects, .new_bytes,
  .hashed_files, .seconds] | map(. != null) | all' "snapshot JSON has every documented field"
jq_assert "$WORK/v1.json" '.name == "proj:latest" and (.id | test("^[0-9a-f]{64}$"))
  and .manifest == "sha256:" + .id' "name, id and manifest"
# new_* may count the manifest object too, hence >=.
jq_assert "$WORK/v1.json" '.files == 3 and .bytes == 18 and .hashed_files == 3 and .new_bytes >= 18
  and .new_objects >= 3' "counts of the first snapshot"
ID1=$(jq -r .id "$WORK/v1.json")

step "an unchanged tree is not re-read and adds nothing"
expect_status 0 ts --json snapshot "$SRC" --name proj:v2
cp "$OUT" "$WORK/v2.json"
jq_assert "$WORK/v2.json" '.name == "proj:v2" and .hashed_files == 0 and .new_objects == 0
  and .new_bytes == 0 and .files == 3' "second snapshot of an unchanged tree"
jq_assert "$WORK/v2.json" ".id == \"$ID1\"" "same tree, same manifest, same id"

step "one changed file is the only one hashed"
printf 'bravo, changed' >"$SRC/b.txt"
expect_status 0 ts --json snapshot "$SRC" --name proj:v3
cp "$OUT" "$WORK/v3.json"
jq_assert "$WORK/v3.json" '.hashed_files == 1 and .new_objects >= 1 and .new_bytes >= 14' "changed file"
ID3=$(jq -r .id "$WORK/v3.json")
[[ "$ID3" != "$ID1" ]] || fail "a changed tree kept its id"

step "duplicate names need --force"
expect_status 1 ts snapshot "$SRC"
assert_error_line
expect_status 0 ts --json snapshot "$SRC" --force
jq_assert "$OUT" ".name == \"proj:latest\" and .id == \"$ID3\"" "--force repoints proj:latest"

step "list"
expect_status 0 ts --json list
jq_assert "$OUT" 'length == 3 and ([.[].name] == ["proj:latest", "proj:v2", "proj:v3"])' "list names, sorted"
jq_assert "$OUT" 'all(.[]; [.name, .id, .manifest, .entries, .files, .bytes, .created, .last_used]
  | map(. != null) | all)' "list JSON fields"
RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$'
jq_assert "$OUT" "all(.[]; (.created | test(\"$RFC3339\")) and (.last_used | test(\"$RFC3339\")))" \
  "created and last_used are RFC 3339 UTC"
expect_status 0 ts list
grep -Eq "^proj:v2 +${ID1:0:12} " "$OUT" || fail "human list has no 'proj:v2  ${ID1:0:12} ...' line: $(cat "$OUT")"
assert_eq "$(grep -c '^proj:' "$OUT")" 3 "lines of the human list"

step "show, by name and by id prefix"
expect_status 0 ts --json show proj:v3
jq_assert "$OUT" ".id == \"$ID3\" and .files == 3 and .entries_list == null" "show proj:v3"
expect_status 0 ts --json show "${ID1:0:12}" # only proj:v2 has this id now
jq_assert "$OUT" ".id == \"$ID1\" and .name == \"proj:v2\"" "show by id prefix"
# Two names (proj:latest, proj:v3) share ID3, yet the prefix matches one snapshot id only.
expect_status 0 ts --json restore "${ID3:0:12}" "$WORK/by-id"
jq_assert "$OUT" ".id == \"$ID3\"" "restore by an id prefix that two names share"
cmp "$SRC/b.txt" "$WORK/by-id/b.txt" || fail "restore by id prefix: b.txt differs"
expect_status 0 ts --json show proj # no tag means :latest
jq_assert "$OUT" ".name == \"proj:latest\"" "show NAME means NAME:latest"

step "show --entries"
expect_status 0 ts --json show proj:v3 --entries
cp "$OUT" "$WORK/entries.json"
jq_assert "$WORK/entries.json" '(.entries_list | length) == .entries' "entries_list has every entry"
jq_assert "$WORK/entries.json" 'all(.entries_list[]; has("path") and has("type") and has("mode")
  and has("uid") and has("gid") and has("mtime_ns") and has("size"))' "entry fields"
C_HEX=$(printf 'charlie' | sha256sum | cut -d' ' -f1)
C_MTIME=$(($(stat -c %Y "$SRC/sub/c.txt") * 1000000000))
jq_assert "$WORK/entries.json" "any(.entries_list[]; (.path | endswith(\"sub/c.txt\")) and .size == 7
  and (.digest | endswith(\"$C_HEX\")) and .mtime_ns == $C_MTIME and .uid == $(id -u))" "entry of sub/c.txt"
jq_assert "$WORK/entries.json" 'any(.entries_list[]; (.path | endswith("link")) and .target == "a.txt")' \
  "symlink entry"
expect_status 0 ts show proj:v3 --entries
grep -E 'sub/c\.txt$' "$OUT" | grep -q "${C_HEX:0:12}" ||
  fail "human show --entries has no line for sub/c.txt with its digest: $(cat "$OUT")"

step "rm"
expect_status 0 ts rm proj:v2
expect_status 1 ts show proj:v2
assert_error_line
expect_status 1 ts rm proj:v2 # already gone
expect_status 0 ts --json list
jq_assert "$OUT" '[.[].name] == ["proj:latest", "proj:v3"]' "list after rm"
# The content stays until garbage collection: the store is still whole.
expect_status 0 ts --json verify
jq_assert "$OUT" '.bad == []' "verify after rm"

echo "PASS: store_selection"
