#!/usr/bin/env bash
# Concurrency soak: several processes share ONE store for SOAK_SECONDS (default 60) and do
# everything at once. Four snapshot workers each own a tree made of files shared with the others
# (copied from one pool, so their content deduplicates across trees) and files of their own; the
# tree mutates between rounds. Each round a worker snapshots its tree (keeping a copy of the tree
# under the snapshot's name), restores a random snapshot of any worker with a random strategy and
# compares it with that copy, and now and then removes a random snapshot. A collector runs `gc`,
# `gc --max-size` (evicting least recently used snapshots), `du`, `gc --dry-run` and
# `verify --fast` in a loop.
#
# Allowed failures (docs/cli.md, "Concurrent use"), each checked by its exact error code:
#   - restore or rm of a snapshot that an rm or an eviction removed first: `not_found`;
#   - nothing else. In particular `busy` never surfaces: writers wait for SQLite's lock.
# At the end: every snapshot still listed restores exactly to the tree it was taken from,
# `verify` is clean, and after a final gc nothing is left to remove (`gc --full --dry-run` finds
# no orphan, no unrecorded file, no staging file) and `du` reports no orphan.
#
# SOAK_SECONDS=600 bash tests/cli/soak.sh runs a longer soak; SOAK_SEED fixes the random choices.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_SEED=${SOAK_SEED:-$RANDOM}
WORKERS=${SOAK_WORKERS:-4}
echo "soak: $WORKERS snapshot workers + 1 collector for ${SOAK_SECONDS}s, seed $SOAK_SEED"

ts init >/dev/null
# Automatic eviction after a snapshot would depend on how full the test machine's disk is.
printf '[gc]\nhigh_watermark = 100\nlow_watermark = 99\n' >"$STORE/treesnap.toml"

COPIES=$WORK/copies   # copies/<name>: the tree a snapshot was taken from
LOGS=$WORK/logs       # one log per process: every command and its outcome
FAILURES=$WORK/failures
mkdir -p "$COPIES" "$LOGS" "$WORK/pool"
: >"$FAILURES"

step "a pool of 120 files the workers' trees share"
for i in $(seq 1 120); do
  head -c $((512 + (i * 97) % 6000)) /dev/urandom >"$WORK/pool/p$i"
done

# run LOG ALLOWED CMD...: runs treesnap; a failure whose error code is not in ALLOWED (a
# space-separated list, may be empty) is recorded in $FAILURES. Returns treesnap's status.
run() {
  local log=$1 allowed=$2 status=0 code
  shift 2
  "$TREESNAP_BIN" --store "$STORE" "$@" >"$log.out" 2>"$log.err" || status=$?
  if ((status == 0)); then
    echo "ok: $*" >>"$log"
    return 0
  fi
  code=$(sed -n 's/^treesnap: error: \([a-z_]*\):.*/\1/p' "$log.err" | head -n 1)
  if [[ -n "$code" && " $allowed " == *" $code "* ]]; then
    echo "allowed $code: $*" >>"$log"
  else
    { echo "status $status: $*"; cat "$log.err"; } >>"$FAILURES"
  fi
  return "$status"
}

# Mutates worker W's tree for round R: swaps some shared files, rewrites unique ones, adds and
# removes files and directories, so consecutive snapshots overlap without being equal.
mutate() { # TREE W R
  local tree=$1 w=$2 r=$3 i
  mkdir -p "$tree/shared" "$tree/own/d$((r % 3))"
  for i in $(seq 1 12); do
    local p=$(((RANDOM % 120) + 1))
    cp "$WORK/pool/p$p" "$tree/shared/p$p"
  done
  # Drop a few shared files again so the trees keep changing shape.
  for i in 1 2 3 4; do
    rm -f "$tree/shared/p$(((RANDOM % 120) + 1))"
  done
  for i in $(seq 1 8); do
    head -c $((RANDOM % 3000)) /dev/urandom >"$tree/own/d$((r % 3))/f$((RANDOM % 20))"
  done
  echo "worker $w round $r" >"$tree/own/round"
  ln -sfn "shared" "$tree/link"
  ((r % 4 == 0)) && rm -rf "$tree/own/d$(((r + 1) % 3))"
  ((r % 5 == 0)) && head -c 300000 /dev/urandom >"$tree/own/big"
  chmod 0640 "$tree/own/round"
  return 0
}

# A snapshot name among the 40 taken last (whether or not it still exists). No pipeline: `head`
# closing early would fail it under pipefail.
any_name() {
  local names pick
  mapfile -t names < <(find "$COPIES" -mindepth 1 -maxdepth 1 -printf '%T@ %f\n' 2>/dev/null | sort -rn)
  ((${#names[@]} > 0)) || return 0
  pick=${names[RANDOM % (${#names[@]} < 40 ? ${#names[@]} : 40)]}
  echo "${pick#* }"
}

snapshot_worker() { # W
  local w=$1 r=0 tree=$WORK/tree$w log=$LOGS/worker$1 name target strategies=(auto hardlink reflink copy)
  local deadline=$((SECONDS + SOAK_SECONDS))
  RANDOM=$((SOAK_SEED + w))
  mkdir -p "$tree"
  while ((SECONDS < deadline)); do
    r=$((r + 1))
    mutate "$tree" "$w" "$r"
    name="w${w}r$r"
    # The copy first: once the snapshot exists another worker may restore it and compare.
    cp -a "$tree" "$WORK/copying$w" && mv "$WORK/copying$w" "$COPIES/$name"
    run "$log" "" snapshot "$tree" --name "$name:v1" || continue

    name=$(any_name)
    target=$WORK/out$w
    local strategy=${strategies[RANDOM % 4]}
    if run "$log" "not_found" restore "$name:v1" "$target" --strategy "$strategy"; then
      if ! diff <(mtree_of "$COPIES/$name") <(mtree_of "$target") >"$log.diff"; then
        { echo "restore $name:v1 --strategy $strategy differs from its source:"; head -n 20 "$log.diff"; } >>"$FAILURES"
      fi
    fi
    # No chmod first: a hardlinked file is the store's inode, whose mode verify checks.
    rm -rf "$target"

    if ((RANDOM % 4 == 0)); then
      run "$log" "not_found" rm "$(any_name):v1" || true
    fi
  done
}

collector() {
  local log=$LOGS/collector deadline=$((SECONDS + SOAK_SECONDS)) bytes
  RANDOM=$SOAK_SEED
  while ((SECONDS < deadline)); do
    run "$log" "" gc || true
    run "$log" "" --json du || true
    if ((RANDOM % 4 == 0)) && bytes=$(jq .store_bytes "$log.out" 2>/dev/null) && [[ -n "$bytes" ]]; then
      # Evict down to 90% of the store's current size: a few least recently used snapshots.
      run "$log" "" gc --max-size $((bytes * 9 / 10 + 4096)) || true
    fi
    run "$log" "" gc --dry-run || true
    # verify beside gc and snapshots: an object collected mid-way is gone, not damaged.
    ((RANDOM % 3 == 0)) && { run "$log" "" verify --fast || true; }
    sleep 0.$((RANDOM % 5))
  done
}

step "$WORKERS workers and a collector on one store for ${SOAK_SECONDS}s"
pids=()
for w in $(seq 1 "$WORKERS"); do
  snapshot_worker "$w" &
  pids+=($!)
done
collector &
pids+=($!)
# A failing check must not leave the other processes running on the removed work directory.
at_exit 'kill "${pids[@]}" 2>/dev/null || true; wait || true'
for pid in "${pids[@]}"; do
  wait "$pid" || fail "process $pid of the soak exited with status $? (see $LOGS)"
done

ops=$(cat "$LOGS"/worker* "$LOGS"/collector | wc -l)
allowed=$(cat "$LOGS"/worker* "$LOGS"/collector | grep -c '^allowed' || true)
echo "soak: $ops commands, $allowed allowed not_found, $(find "$COPIES" -mindepth 1 -maxdepth 1 | wc -l) snapshots taken"
if [[ -s "$FAILURES" ]]; then
  head -n 60 "$FAILURES" >&2
  fail "$(grep -c '' "$FAILURES") lines of unexpected failures (seed $SOAK_SEED)"
fi
((ops > 20)) || fail "only $ops commands ran: the soak did not do anything"

step "every snapshot still listed restores exactly to its source"
expect_status 0 ts --json list
mapfile -t names < <(jq -r '.[].name' "$OUT" | sed 's/:v1$//')
((${#names[@]} > 0)) || fail "no snapshot survived the soak"
for name in "${names[@]}"; do
  [[ -d "$COPIES/$name" ]] || fail "listed snapshot $name was never taken"
  ts -q restore "$name:v1" "$WORK/final-$name" --strategy copy
  diff <(mtree_of "$COPIES/$name") <(mtree_of "$WORK/final-$name") >&2 ||
    fail "$name does not restore to the tree it was taken from"
  rm -rf "$WORK/final-$name"
done
echo "${#names[@]} snapshots restored exactly"

step "verify is clean, and after a final gc nothing is left to remove"
expect_status 0 ts verify
expect_status 0 ts --json gc
expect_status 0 ts --json gc --full --dry-run
jq_assert "$OUT" '.objects_removed == 0 and .unrecorded_removed == 0 and .staging_removed == 0 and .variants_removed == 0' \
  "nothing orphaned after the final gc"
expect_status 0 ts --json du
jq_assert "$OUT" '.orphan_objects == 0 and .orphan_bytes == 0' "du after the final gc"
jq_assert "$OUT" "(.snapshots | length) == ${#names[@]}" "du sees every listed snapshot"
recorded=$(jq .objects "$OUT")
on_disk=$(find "$STORE/objects" -type f | wc -l)
assert_eq "$on_disk" "$recorded" "object files on disk vs recorded objects"
echo "soak passed: $ops commands, ${#names[@]} snapshots checked, $recorded objects"
