#!/usr/bin/env bash
# push and pull through a loopback docker-registry, beside tar + skopeo copy of the same tree as
# one tar layer in an OCI layout (the path a user would otherwise take).
#
#   bash bench/registry.sh                       # Python stdlib + 2 x 1 GiB random files
#   TREES=python BIG_MB=64 bash bench/registry.sh  # quicker
#
# Environment: TREESNAP_BIN (default build/treesnap), TREES ("python big"), BIG_MB (1024),
# JOBS (4), OUT (markdown report; stdout when empty). Needs docker-registry, skopeo, jq, python3.
# Every run starts from empty stores and an empty registry; the page cache is warm throughout
# (the numbers measure the protocol and the CPU, not the disk).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(realpath "${TREESNAP_BIN:-$REPO_ROOT/build/treesnap}")
TREES=${TREES:-python big}
BIG_MB=${BIG_MB:-1024}
JOBS=${JOBS:-4}
OUT=${OUT:-}
for tool in docker-registry skopeo jq python3 tar; do
  command -v "$tool" >/dev/null || { echo "bench/registry.sh: $tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/treesnap-bench-registry.XXXXXX")
REGISTRY_PID=
cleanup() {
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$WORK/registry" "$PORT" >"$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
HOST=127.0.0.1:$PORT

now() { date +%s.%N; }
registry_bytes() { mkdir -p "$WORK/registry"; find "$WORK/registry" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%d", n }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0) ? b / s / 1e6 : 0 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

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

ROWS=()
row() { ROWS+=("| $* |"); }

bench_tree() { # NAME DIR
  local name=$1 tree=$2 files bytes t0 t1 j r0 r1
  files=$(find "$tree" -type f | wc -l)
  bytes=$(find "$tree" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%d", n }')
  echo "== $name: $files files, $(mb "$bytes") MB" >&2
  local a=$WORK/store-a-$name b=$WORK/store-b-$name ref=oci://$HOST/bench/$name:v1
  "$BIN" --store "$a" --sync none -q snapshot "$tree" --name "$name:v1"

  r0=$(registry_bytes)
  j=$("$BIN" --store "$a" --json push --jobs "$JOBS" "$name:v1" "$ref")
  r1=$(registry_bytes)
  local s req
  s=$(jq .seconds <<<"$j"); req=$(jq .requests <<<"$j")
  row "$name | treesnap push | $(jq -r .seconds <<<"$j" | xargs printf '%.2f') | $(mbps "$bytes" "$s") | $req | $(awk -v r="$req" -v f="$files" 'BEGIN{printf "%.3f", r/f}') | $(mb "$(jq .http_bytes_sent <<<"$j")") sent, registry +$(mb $((r1 - r0)))"

  j=$("$BIN" --store "$b" --sync none --json pull --jobs "$JOBS" "$ref")
  s=$(jq .seconds <<<"$j"); req=$(jq .requests <<<"$j")
  row "$name | treesnap pull (empty store) | $(printf '%.2f' "$s") | $(mbps "$bytes" "$s") | $req | $(awk -v r="$req" -v f="$files" 'BEGIN{printf "%.3f", r/f}') | $(mb "$(jq .http_bytes_received <<<"$j")") received"

  t0=$(now)
  "$BIN" --store "$b" -q restore "bench/$name:v1" "$WORK/restored-$name" --strategy copy
  t1=$(now)
  row "$name | treesnap restore (copy, after pull) | $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') | | | |"

  # One file changed: a small one, appended to.
  local changed
  changed=$(find "$tree" -type f -size -64k -size +1k | sort | sed -n 1p)
  echo "# changed by bench/registry.sh" >>"$changed"
  "$BIN" --store "$a" --sync none -q snapshot "$tree" --name "$name:v2"
  r0=$(registry_bytes)
  j=$("$BIN" --store "$a" --json push --jobs "$JOBS" "$name:v2" "$ref")
  r1=$(registry_bytes)
  row "$name | treesnap incremental push (1 file) | $(jq .seconds <<<"$j" | xargs printf '%.2f') | | $(jq .requests <<<"$j") | | $(mb "$(jq .http_bytes_sent <<<"$j")") sent ($(jq .objects_moved <<<"$j") object), registry +$(mb $((r1 - r0)))"
  j=$("$BIN" --store "$b" --sync none --json pull --force --jobs "$JOBS" "$ref")
  row "$name | treesnap incremental pull (1 file) | $(jq .seconds <<<"$j" | xargs printf '%.2f') | | $(jq .requests <<<"$j") | | $(mb "$(jq .http_bytes_received <<<"$j")") received ($(jq .objects_moved <<<"$j") object)"

  # The same tree as one tar layer.
  t0=$(now)
  make_layout "$tree" "$WORK/layout-$name"
  t1=$(now)
  local tar_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  r0=$(registry_bytes)
  t0=$(now)
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout-$name" "docker://$HOST/bench/tar-$name:v1"
  t1=$(now)
  r1=$(registry_bytes)
  local copy_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  row "$name | tar + OCI layout | $tar_s | | | | "
  row "$name | skopeo copy (push) | $copy_s | $(mbps "$bytes" "$copy_s") | | | registry +$(mb $((r1 - r0)))"
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$HOST/bench/tar-$name:v1" "oci:$WORK/pulled-$name"
  t1=$(now)
  local pull_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  row "$name | skopeo copy (pull) | $pull_s | $(mbps "$bytes" "$pull_s") | | | "
  mkdir "$WORK/untar-$name"
  t0=$(now)
  local layer
  # skopeo gzips the layer on its way to a registry: the largest blob is it.
  layer=$(find "$WORK/pulled-$name/blobs/sha256" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
  tar -C "$WORK/untar-$name" -xf "$layer"
  t1=$(now)
  row "$name | tar -x (after pull) | $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') | | | |"
  rm -rf "$WORK/layout-$name" "$WORK/pulled-$name" "$WORK/untar-$name" "$WORK/restored-$name"
  # The incremental case of the tar path: the whole layer again.
  row "$name | tar path, incremental (1 file) | | | | | whole layer again: $(mb "$bytes")+ MB"
}

for t in $TREES; do
  case $t in
    python)
      stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
      mkdir -p "$WORK/python"
      # site-packages is not the standard library; __pycache__ stays (it is part of the tree).
      tar -C "$stdlib" --exclude=./site-packages -cf - . | tar -C "$WORK/python" -xf -
      bench_tree python "$WORK/python"
      ;;
    big)
      mkdir -p "$WORK/big"
      head -c $((BIG_MB << 20)) /dev/urandom >"$WORK/big/a.bin"
      head -c $((BIG_MB << 20)) /dev/urandom >"$WORK/big/b.bin"
      echo "a small file that changes" >"$WORK/big/notes.txt"
      head -c 4000 /dev/urandom >>"$WORK/big/notes.txt"
      bench_tree big "$WORK/big"
      ;;
  esac
done

{
  echo "| tree | step | seconds | MB/s | requests | requests/file | bytes moved |"
  echo "|---|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
} | if [[ -n $OUT ]]; then tee "$OUT"; else cat; fi
