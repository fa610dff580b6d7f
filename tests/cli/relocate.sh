#!/usr/bin/env bash
# Relocations as a new user meets them: a real venv (`python3 -m venv`, pip from ensurepip) is
# snapshotted with --relocatable, deleted, restored under another path with --relocate, and its
# bin/python and bin/pip run from there and report the new location. Under a longer path text
# relocation works, and a binary file holding the path is refused by name with nothing written.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

python3 -c 'import venv, ensurepip' 2>/dev/null || skip "python3 cannot make a venv with pip (Debian: python3-venv)"

# A shorter path first. The venv's .pyc caches hold the path too but are not rewritten: Python
# corrects their file names on import, and NUL padding would corrupt their marshal strings.
ENV=$WORK/envs/original
NEW=$WORK/envs/moved

step "a real venv with pip inside, snapshotted with --relocatable"
python3 -m venv "$ENV" >/dev/null
"$ENV/bin/pip" --version | grep -qF "$ENV/lib" || fail "pip of the fresh venv does not report $ENV"
expect_status 0 ts --json snapshot "$ENV" --name venv --relocatable
jq_assert "$OUT" ".relocation_root == \"$ENV\" and .relocated_files > 3" "relocation records"
expect_status 0 ts snapshot "$ENV" --name venv-text-check --relocatable
grep -q "relocatable: [0-9]* files hold $ENV" "$OUT" || fail "text summary: $(cat "$OUT")"
rm -rf "$ENV"

step "restored under another path with --relocate: python and pip report it"
expect_status 0 ts --json restore venv "$NEW" --relocate
jq_assert "$OUT" ".relocation.from == \"$ENV\" and .relocation.to == \"$NEW\" and .relocation.files > 3" "relocation summary"
jq_assert "$OUT" '.probe.hardlink.ok == true and (.probe.store_fs | length) > 0' "probe in the summary"
prefix=$("$NEW/bin/python" -c 'import sys; print(sys.prefix)')
assert_eq "$prefix" "$NEW" "sys.prefix of the restored venv"
"$NEW/bin/pip" --version >"$WORK/pip.out" 2>&1 || fail "bin/pip of the restored venv fails: $(cat "$WORK/pip.out")"
grep -qF "from $NEW/lib/" "$WORK/pip.out" || fail "pip reports $(cat "$WORK/pip.out"), not $NEW"
[[ $(head -n 1 "$NEW/bin/pip") == "#!$NEW/bin/python"* ]] || fail "shebang: $(head -n 1 "$NEW/bin/pip")"
if grep -rlaF --exclude='*.pyc' "$ENV" "$NEW" >"$WORK/stale"; then fail "files still name the old path: $(head "$WORK/stale")"; fi
"$NEW/bin/python" -c 'import pip._internal.cli.main as m, sys; sys.exit(0 if m.main.__code__.co_filename.startswith(sys.prefix) else 1)' ||
  fail "code loaded from a moved .pyc does not name the new path"
assert_eq "$(links_of "$NEW/bin/pip")" 1 "links of a relocated file (a private copy)"

step "a longer path: text files relocate"
ENV2=$WORK/e2
LONG=$WORK/a/much/longer/path/than/before/e2
python3 -m venv "$ENV2" >/dev/null
expect_status 0 ts --json snapshot "$ENV2" --name venv2 --relocatable
rm -rf "$ENV2"
expect_status 0 ts --json restore venv2 "$LONG" --relocate
prefix=$("$LONG/bin/python" -c 'import sys; print(sys.prefix)')
assert_eq "$prefix" "$LONG" "sys.prefix under the longer path"
"$LONG/bin/pip" --version >"$WORK/pip.out" 2>&1 || fail "bin/pip under the longer path fails: $(cat "$WORK/pip.out")"
grep -qF "from $LONG/lib/" "$WORK/pip.out" || fail "pip reports $(cat "$WORK/pip.out"), not $LONG"
[[ $(head -n 1 "$LONG/bin/pip") == "#!$LONG/bin/python"* ]] || fail "shebang: $(head -n 1 "$LONG/bin/pip")"

step "a binary file that holds the path refuses a longer one, by name, before anything is written"
T=$WORK/t3
mkdir -p "$T/lib"
printf '#!%s/bin/sh\n' "$T" >"$T/script"
printf '\177ELF\0\0\0rpath=%s/lib\0more\0' "$T" >"$T/lib/native.so"
expect_status 0 ts snapshot "$T" --name bin --relocatable
expect_status 1 ts restore bin "$WORK/a-longer-target-t3" --relocate
assert_error_line
grep -qF "lib/native.so" "$ERR" || fail "the refusal must list the binary file: $(cat "$ERR")"
grep -qi "binary" "$ERR" || fail "the refusal must say why: $(cat "$ERR")"
[[ ! -e $WORK/a-longer-target-t3 ]] || fail "a refused relocation wrote the target"
if compgen -G "$WORK/.a-longer-target-t3.treesnap-*" >/dev/null; then fail "a refused relocation left a temporary tree"; fi

step "a shorter path: the binary string is NUL-padded, every other byte stays put"
expect_status 0 ts restore bin "$WORK/t" --relocate
assert_eq "$(stat -c %s "$WORK/t/lib/native.so")" "$(stat -c %s "$T/lib/native.so")" "size of the binary file"
want=$(printf '\177ELF\0\0\0rpath=%s/lib' "$WORK/t" | od -An -c)
got=$(head -c "$(printf '\177ELF\0\0\0rpath=%s/lib' "$WORK/t" | wc -c)" "$WORK/t/lib/native.so" | od -An -c)
assert_eq "$got" "$want" "rewritten binary string"
assert_eq "$(tail -c 6 "$WORK/t/lib/native.so" | od -An -c | tr -s ' ')" "$(printf '\0more\0' | od -An -c | tr -s ' ')" "bytes after the string"
assert_eq "$(cat "$WORK/t/script")" "#!$WORK/t/bin/sh" "text file under the shorter path"

step "--relocate of a snapshot taken without --relocatable is a clear error"
mkdir "$WORK/plain" && echo x >"$WORK/plain/f"
expect_status 0 ts snapshot "$WORK/plain" --name plain
expect_status 1 ts restore plain "$WORK/plain-out" --relocate
grep -q -- "--relocatable" "$ERR" || fail "the error must say how to make one: $(cat "$ERR")"
[[ ! -e $WORK/plain-out ]] || fail "target written"

step "treesnap probe reports the pair and records it"
expect_status 0 ts --json probe "$WORK"
jq_assert "$OUT" '.hardlink.ok == true and .fresh == true and (.target_fsid | length) > 0' "probe output"
expect_status 0 ts probe "$WORK"
grep -q "hardlink ok" "$OUT" || fail "probe text: $(cat "$OUT")"

echo "PASS: relocate"
