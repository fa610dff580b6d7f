#!/usr/bin/env bash
# push and pull through a loopback docker-registry, beside tar + skopeo copy of the same tree as
# one tar layer in an OCI layout (the path a user would otherwise take). ROUNDS interleaved
# rounds (every tree once per round, a fresh registry and fresh stores each round); the report
# gives the median of each figure and the round-to-round range of the seconds.
#
#   bash bench/registry.sh                                   # Python stdlib + big files, 3 rounds
#   TREES=python ROUNDS=1 BIG_MB=64 bash bench/registry.sh     # quicker
#
# Trees: "python" is the stdlib (site-packages left out); "big" is one BIG_MB MiB random file, a
# sparse disk image of 2 x BIG_MB MiB with 4 x BIG_MB/32 MiB of random data in it, and a 4 KB
# text file (the one the incremental step changes).
# Environment: TREESNAP_BIN (default build/treesnap), TREES ("python big"), ROUNDS (3), BIG_MB
# (1024), JOBS (4), OUT (markdown report; stdout when empty), RAW (the per-round TSV; kept in
# the work directory otherwise). Needs docker-registry, skopeo, jq, python3, tar.
# The page cache is warm throughout (the numbers measure the protocol and the CPU, not the disk).
# Sums of bytes use awk printf "%.0f": mawk's "%d" stops at 2^31 - 1.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(realpath "${TREESNAP_BIN:-$REPO_ROOT/build/treesnap}")
TREES=${TREES:-python big}
ROUNDS=${ROUNDS:-3}
BIG_MB=${BIG_MB:-1024}
JOBS=${JOBS:-4}
OUT=${OUT:-}
for tool in docker-registry skopeo jq python3 tar; do
  command -v "$tool" >/dev/null || { echo "bench/registry.sh: $tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-bench-registry.XXXXXX")
RAW=${RAW:-$WORK/rounds.tsv}
REGISTRY_PID=
cleanup() {
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh registry (empty storage) for each round.
start_registry() {
  [[ -n $REGISTRY_PID ]] && { kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null || true; }
  rm -rf "$WORK/registry"
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$WORK/registry" "$PORT" >"$WORK/registry.yml"
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
  HOST=127.0.0.1:$PORT
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
registry_bytes() { mkdir -p "$WORK/registry"; find "$WORK/registry" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%.0f", n }'; }

# An OCI layout holding TREE as one uncompressed tar layer, at DIR.
make_layout() { # TREE DIR
  local tree=$1 dir=$2
  mkdir -p "$dir/blobs/sha256"
  tar -C "$tree" -cf "$dir/layer.tar" .
  python3 - "$dir" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
def blob(data_path=None, data=None):
    h = hashlib.sha256()
    if data is None:
        with open(data_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        size = os.path.getsize(data_path)
        os.rename(data_path, os.path.join(d, "blobs/sha256", h.hexdigest()))
    else:
        h.update(data)
        size = len(data)
        open(os.path.join(d, "blobs/sha256", h.hexdigest()), "wb").write(data)
    return {"digest": "sha256:" + h.hexdigest(), "size": size}
layer = blob(os.path.join(d, "layer.tar"))
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode()
cfg = blob(data=config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(cfg, mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode()
m = blob(data=manifest)
json.dump({"schemaVersion": 2, "manifests": [dict(m, mediaType="application/vnd.oci.image.manifest.v1+json")]},
          open(os.path.join(d, "index.json"), "w"))
open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
}

# record ROUND TREE STEP SECONDS REQUESTS BYTES: one line of the raw TSV (empty cells allowed).
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

skopeo_push() { # LAYOUT REPO
  skopeo copy -q --dest-tls-verify=false "oci:$1" "docker://$HOST/$2"
}

bench_tree() { # ROUND NAME DIR
  local round=$1 name=$2 tree=$3 t0 j r0 r1
  local a=$WORK/store-a-$name b=$WORK/store-b-$name ref=oci://$HOST/bench/$name:v1
  rm -rf "$a" "$b"
  "$BIN" --store "$a" --sync none -q snapshot "$tree" --name "$name:v1"

  r0=$(registry_bytes)
  j=$("$BIN" --store "$a" --json push --jobs "$JOBS" "$name:v1" "$ref")
  r1=$(registry_bytes)
  record "$round" "$name" "treesnap push" "$(jq .seconds <<<"$j")" "$(jq .requests <<<"$j")" "$(jq .http_bytes_sent <<<"$j")"
  record "$round" "$name" "treesnap push: registry growth" "" "" $((r1 - r0))

  j=$("$BIN" --store "$b" --sync none --json pull --jobs "$JOBS" "$ref")
  record "$round" "$name" "treesnap pull (empty store)" "$(jq .seconds <<<"$j")" "$(jq .requests <<<"$j")" "$(jq .http_bytes_received <<<"$j")"

  t0=$(now)
  "$BIN" --store "$b" -q restore "bench/$name:v1" "$WORK/restored-$name" --strategy copy
  record "$round" "$name" "treesnap restore --strategy copy (after pull)" "$(since "$t0")" "" ""

  # One file changed: a small one, appended to.
  local changed
  changed=$(find "$tree" -type f -size -64k -size +1k | sort | sed -n 1p)
  echo "# changed by bench/registry.sh, round $round" >>"$changed"
  "$BIN" --store "$a" --sync none -q snapshot "$tree" --name "$name:v2"
  r0=$(registry_bytes)
  j=$("$BIN" --store "$a" --json push --jobs "$JOBS" "$name:v2" "$ref")
  r1=$(registry_bytes)
  record "$round" "$name" "treesnap incremental push (1 file)" "$(jq .seconds <<<"$j")" "$(jq .requests <<<"$j")" "$(jq .http_bytes_sent <<<"$j")"
  record "$round" "$name" "treesnap incremental push: registry growth" "" "" $((r1 - r0))
  j=$("$BIN" --store "$b" --sync none --json pull --force --jobs "$JOBS" "$ref")
  record "$round" "$name" "treesnap incremental pull (1 file)" "$(jq .seconds <<<"$j")" "$(jq .requests <<<"$j")" "$(jq .http_bytes_received <<<"$j")"
  rm -rf "$WORK/restored-$name" "$a" "$b"

  # The same tree as one tar layer.
  t0=$(now)
  make_layout "$tree" "$WORK/layout-$name"
  record "$round" "$name" "tar + OCI layout" "$(since "$t0")" "" ""
  r0=$(registry_bytes)
  t0=$(now)
  skopeo_push "$WORK/layout-$name" "bench/tar-$name:v1"
  record "$round" "$name" "skopeo copy (push)" "$(since "$t0")" "" $(($(registry_bytes) - r0))
  rm -rf "$WORK/layout-$name"
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$HOST/bench/tar-$name:v1" "oci:$WORK/pulled-$name"
  record "$round" "$name" "skopeo copy (pull)" "$(since "$t0")" "" ""
  mkdir "$WORK/untar-$name"
  t0=$(now)
  local layer
  # skopeo gzips the layer on its way to a registry: the largest blob is it.
  layer=$(find "$WORK/pulled-$name/blobs/sha256" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
  tar -C "$WORK/untar-$name" -xf "$layer"
  record "$round" "$name" "tar -x (after skopeo pull)" "$(since "$t0")" "" ""
  rm -rf "$WORK/pulled-$name" "$WORK/untar-$name"

  # The incremental case of the tar path: the file changed once more, tar and push again.
  echo "# changed by bench/registry.sh, round $round, tar path" >>"$changed"
  t0=$(now)
  make_layout "$tree" "$WORK/layout-$name"
  r0=$(registry_bytes)
  skopeo_push "$WORK/layout-$name" "bench/tar-$name:v1"
  record "$round" "$name" "tar + skopeo copy, incremental (1 file)" "$(since "$t0")" "" $(($(registry_bytes) - r0))
  rm -rf "$WORK/layout-$name"
}

# The trees, made once.
declare -A TREE_DIR
for t in $TREES; do
  case $t in
    python)
      stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
      mkdir -p "$WORK/python"
      # site-packages is not the standard library; __pycache__ stays (it is part of the tree).
      tar -C "$stdlib" --exclude=./site-packages -cf - . | tar -C "$WORK/python" -xf -
      TREE_DIR[python]=$WORK/python
      ;;
    big)
      mkdir -p "$WORK/big"
      head -c $((BIG_MB << 20)) /dev/urandom >"$WORK/big/random.bin"
      # A sparse disk image: 2 x BIG_MB MiB, data in four places, holes between.
      truncate -s $((2 * BIG_MB))M "$WORK/big/disk.img"
      for k in 0 1 2 3; do
        head -c $((BIG_MB << 15)) /dev/urandom |
          dd of="$WORK/big/disk.img" bs=1M seek=$((k * BIG_MB / 2)) conv=notrunc status=none iflag=fullblock
      done
      echo "a small file that changes" >"$WORK/big/notes.txt"
      head -c 4000 /dev/urandom | base64 >>"$WORK/big/notes.txt"
      TREE_DIR[big]=$WORK/big
      ;;
    *) echo "bench/registry.sh: unknown tree $t" >&2; exit 1 ;;
  esac
done

: >"$RAW"
for round in $(seq "$ROUNDS"); do
  start_registry
  for t in $TREES; do
    echo "== round $round/$ROUNDS: $t" >&2
    bench_tree "$round" "$t" "${TREE_DIR[$t]}"
  done
done

# Files and logical bytes of each tree (as of the last round).
SIZES=$WORK/sizes.tsv
: >"$SIZES"
for t in $TREES; do
  printf '%s\t%s\t%s\t%s\n' "$t" "$(find "${TREE_DIR[$t]}" -type f | wc -l)" \
    "$(find "${TREE_DIR[$t]}" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%.0f", n }')" \
    "$(du -s --block-size=1 "${TREE_DIR[$t]}" | cut -f1)" >>"$SIZES"
done

python3 - "$RAW" "$SIZES" "$ROUNDS" <<'PY' | if [[ -n $OUT ]]; then tee "$OUT"; else cat; fi
import collections, statistics, sys
raw, sizes, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
trees = {}
for line in open(sizes):
    name, files, logical, disk = line.rstrip("\n").split("\t")
    trees[name] = (int(files), int(logical), int(disk))
rows = collections.OrderedDict()
for line in open(raw):
    _, tree, step, seconds, requests, moved = line.rstrip("\n").split("\t")
    rows.setdefault((tree, step), []).append((seconds, requests, moved))

def med(values):
    v = [float(x) for x in values if x != ""]
    return statistics.median(v) if v else None

def mb(b):
    return f"{b / 1e6:,.1f} MB" if b >= 1e5 else f"{b / 1e3:,.1f} kB"

print(f"Medians of {rounds} interleaved rounds; seconds as median (min–max).")
print()
print("| tree | step | seconds | MB/s | requests | requests/file | bytes moved |")
print("|---|---|---:|---:|---:|---:|---:|")
medians = {}
for (tree, step), samples in rows.items():
    files, logical, _ = trees[tree]
    s = med(x[0] for x in samples)
    r = med(x[1] for x in samples)
    m = med(x[2] for x in samples)
    medians[(tree, step)] = s
    secs = ""
    if s is not None:
        lo = min(float(x[0]) for x in samples)
        hi = max(float(x[0]) for x in samples)
        secs = f"{s:.2f} ({lo:.2f}–{hi:.2f})" if len(samples) > 1 else f"{s:.2f}"
    full = "incremental" not in step and s is not None
    rate = f"{logical / s / 1e6:,.0f}" if full and s > 0 else ""
    reqs = f"{r:.0f}" if r is not None else ""
    per_file = f"{r / files:.3f}" if r is not None and full else ""
    print(f"| {tree} | {step} | {secs} | {rate} | {reqs} | {per_file} | {mb(m) if m is not None else ''} |")
print()
print("| tree | ratio (median seconds) | value |")
print("|---|---|---:|")
for tree in trees:
    g = lambda step: medians.get((tree, step))
    pairs = [
        ("skopeo copy push / treesnap push", g("skopeo copy (push)"), g("treesnap push")),
        ("(tar + layout + skopeo push) / treesnap push",
         (g("tar + OCI layout") or 0) + (g("skopeo copy (push)") or 0), g("treesnap push")),
        ("(skopeo pull + tar -x) / (treesnap pull + restore)",
         (g("skopeo copy (pull)") or 0) + (g("tar -x (after skopeo pull)") or 0),
         (g("treesnap pull (empty store)") or 0) + (g("treesnap restore --strategy copy (after pull)") or 0)),
        ("tar path incremental / treesnap incremental push",
         g("tar + skopeo copy, incremental (1 file)"), g("treesnap incremental push (1 file)")),
    ]
    for label, num, den in pairs:
        if num and den:
            print(f"| {tree} | {label} | {num / den:.1f}x |")
for tree, (files, logical, disk) in trees.items():
    print(f"\n{tree}: {files:,} files, {logical / 1e6:,.1f} MB logical, {disk / 1e6:,.1f} MB allocated")
PY
