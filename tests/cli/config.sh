#!/usr/bin/env bash
# Settings through the CLI: `treesnap config` reports each value and its source, and a restore
# really follows the precedence flag > TREESNAP_* > the store's treesnap.toml > default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

unset TREESNAP_STRATEGY TREESNAP_HARDLINK_WRITABLE TREESNAP_STRICT_METADATA TREESNAP_NO_COPY_FALLBACK \
  TREESNAP_PARALLELISM TREESNAP_GC_HIGH_WATERMARK TREESNAP_GC_LOW_WATERMARK
SRC=$WORK/src
mkdir "$SRC"
echo "read only" >"$SRC/ro" && chmod 0444 "$SRC/ro"
echo "writable" >"$SRC/rw"
expect_status 0 ts snapshot "$SRC" --name t

step "a new store: defaults, watermarks from its treesnap.toml"
expect_status 0 ts --json config
jq_assert "$OUT" '.strategy.value == "auto" and .strategy.source == "default"' "default strategy"
jq_assert "$OUT" '.["gc.high_watermark"].value == 90 and .["gc.high_watermark"].source == "store file"' "watermark from the file"
expect_status 0 ts config
grep -q '^strategy  *auto  *default$' "$OUT" || fail "text output: $(cat "$OUT")"

step "the store's file sets the strategy; a restore follows it"
sed -i 's/^# strategy = "auto"$/strategy = "copy"/' "$STORE/treesnap.toml"
grep -q '^strategy = "copy"$' "$STORE/treesnap.toml" || fail "the default file has no commented strategy line"
expect_status 0 ts --json config
jq_assert "$OUT" '.strategy.value == "copy" and .strategy.source == "store file"' "strategy from the file"
expect_status 0 ts --json restore t "$WORK/out-file"
jq_assert "$OUT" '.strategies.copy.files == 2 and .strategies.hardlink.files == 0' "restore by the file's strategy"

step "the environment beats the file"
expect_status 0 env TREESNAP_STRATEGY=hardlink "$TREESNAP_BIN" --store "$STORE" --json config
jq_assert "$OUT" '.strategy.value == "hardlink" and .strategy.source == "environment" and .strategy.origin == "TREESNAP_STRATEGY"' "env strategy"
expect_status 0 env TREESNAP_STRATEGY=hardlink "$TREESNAP_BIN" --store "$STORE" --json restore t "$WORK/out-env"
jq_assert "$OUT" '.strategies.hardlink.files == 1' "restore by the environment's strategy"
assert_same_inode "$WORK/out-env/ro" "$(store_paths_of "$WORK/out-env/ro" | head -n 1)"

step "a flag beats the environment"
expect_status 0 env TREESNAP_STRATEGY=hardlink TREESNAP_HARDLINK_WRITABLE=1 \
  "$TREESNAP_BIN" --store "$STORE" --json restore t "$WORK/out-flag" --strategy copy --no-hardlink-writable
jq_assert "$OUT" '.strategies.copy.files == 2' "the flag's strategy"
expect_status 0 env TREESNAP_PARALLELISM=5 "$TREESNAP_BIN" --store "$STORE" --threads 2 --json config
jq_assert "$OUT" '.parallelism.value == 2 and .parallelism.source == "flag"' "--threads beats TREESNAP_PARALLELISM"

step "mistakes are errors that name their origin"
expect_status 1 env TREESNAP_STRATEGY=fastest "$TREESNAP_BIN" --store "$STORE" config
grep -q 'TREESNAP_STRATEGY' "$ERR" || fail "the error must name the variable: $(cat "$ERR")"
echo 'stratgy = "copy"' >>"$STORE/treesnap.toml"
expect_status 1 ts restore t "$WORK/out-typo"
grep -q 'stratgy' "$ERR" || fail "the error must name the unknown key: $(cat "$ERR")"
[[ ! -e $WORK/out-typo ]] || fail "a restore with a broken configuration must not start"
expect_status 2 ts restore t "$WORK/out-usage" --strategy copy --no-copy-fallback

echo "PASS: config"
