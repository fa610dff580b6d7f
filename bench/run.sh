#!/usr/bin/env bash
# treesnap against its peers (cp, rsync, ostree) on loop-mounted ext4, XFS and btrfs.
#
#   sudo bash bench/run.sh                          # everything: ~1-2 h
#   QUICK=1 FS=ext4 bash bench/run.sh               # smoke run, a few minutes
#   FS="xfs btrfs" WORKLOADS=python ROUNDS=3 OUT=/tmp/bench.md bash bench/run.sh
#
# Settings (environment): see bench/README.md, which also explains every table row.
# Progress goes to stderr; the markdown report goes to $OUT, or to stdout when OUT is empty.
#
# Why loop mounts: the root ext4 here has no journal, and without one ext4 skips inodes freed in
# the last 60 s, so recreating 100k files right after deleting them takes 5-10x longer
# (research/baselines.md, caveats). Each file system is a fresh sparse image in a mktemp -d
# folder, attached with losetup --direct-io=on so data is cached once; everything is unmounted,
# detached and removed on exit, including Ctrl-C and TERM.

set -uo pipefail
# Job control: every long command runs as its own background job (run_job), so that an INT or
# TERM handler can stop it at once instead of waiting for it to finish.
set -m
shopt -s nullglob

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-3}
    PY_MAX_FILES=${PY_MAX_FILES:-12000}
    SHARE_MAX_FILES=${SHARE_MAX_FILES:-8000}
    BIG_FILE_MB=${BIG_FILE_MB:-64}
    BIG_SPARSE_MB=${BIG_SPARSE_MB:-256}
    MEM_FILES=${MEM_FILES:-50000}
    IMG_SIZE=${IMG_SIZE:-8G}
else
    ROUNDS=${ROUNDS:-5}
    PY_MAX_FILES=${PY_MAX_FILES:-120000}
    SHARE_MAX_FILES=${SHARE_MAX_FILES:-0}   # 0: all of /usr/share
    BIG_FILE_MB=${BIG_FILE_MB:-1024}
    BIG_SPARSE_MB=${BIG_SPARSE_MB:-4096}
    MEM_FILES=${MEM_FILES:-1000000}
    IMG_SIZE=${IMG_SIZE:-40G}
fi
FS=${FS:-ext4 xfs btrfs}
WORKLOADS=${WORKLOADS-python usr_share big}   # empty: memory section only
TREESNAP=${TREESNAP:-$REPO_ROOT/build/treesnap}
OUT=${OUT:-}
RAW=${RAW:-}                     # directory to keep the raw per-round results in
MEM=${MEM:-1}
MEM_FS=${MEM_FS:-ext4}
MEM_ROUNDS=${MEM_ROUNDS:-1}
MEM_OSTREE=${MEM_OSTREE:-0}      # ostree commit of 1M files takes ~5 min, so off by default
CHECK=${CHECK:-1}                # compare each restored tree's listing with the source
TS_DIGEST=${TS_DIGEST:-}         # e.g. xxh3-128: `treesnap init --digest` before each new store
CASE_TIMEOUT=${CASE_TIMEOUT:-1800}
BIG_REGION_MB=4
BIG_REGIONS=4
TMP_PARENT=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

WORK=""          # mktemp -d folder: images, mount points, results
RES=""           # $WORK/results
CHILD=""         # process group of the running job
CUR_MNT="" CUR_LOOP="" CUR_IMG=""
REPORTED=0

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
one_line() { tr '\t\n\r' '   ' | cut -c1-300; }

# run_job OUT ERR CMD... -- runs CMD as a background job in its own process group and waits.
run_job() {
    local out=$1 err=$2 rc
    shift 2
    "$@" >"$out" 2>"$err" </dev/null &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=""
    return "$rc"
}

# quiet JOB: run_job with output to a log, shown when it fails.
quiet() {
    if ! run_job "$WORK/job.out" "$WORK/job.err" "$@"; then
        log "command failed: $*"
        tail -n 5 "$WORK/job.err" >&2
        return 1
    fi
}

teardown_fs() {
    [[ -n $CUR_MNT ]] || return 0
    cd / || true
    if mountpoint -q "$CUR_MNT"; then
        umount "$CUR_MNT" 2>/dev/null || { sleep 1; umount "$CUR_MNT" 2>/dev/null; } ||
            { log "umount $CUR_MNT busy, detaching lazily"; umount -l "$CUR_MNT"; }
    fi
    [[ -n $CUR_LOOP ]] && losetup -d "$CUR_LOOP" 2>/dev/null
    [[ -n $CUR_IMG ]] && rm -f "$CUR_IMG"
    rmdir "$CUR_MNT" 2>/dev/null
    CUR_MNT="" CUR_LOOP="" CUR_IMG=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n $CHILD ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    if ((${#G_TOOLS[@]})); then
        flush_group "run interrupted: partial rounds" 2>/dev/null
    fi
    teardown_fs
    if [[ -n $RES && -s $RES/cases.tsv && $REPORTED == 0 ]]; then
        log "run stopped early; report of what was measured:"
        emit_report || true
    fi
    [[ -n $WORK ]] && rm -rf --one-file-system "$WORK"
    exit "$rc"
}

on_signal() {
    log "interrupted ($1), cleaning up"
    exit 130
}

# ---------------------------------------------------------------- file systems

# setup_fs NAME [mem]: fresh image, loop device and mount; sets CUR_* and M. "mem" is for the
# memory section: its 1M-file tree, a store of as many objects and as many link variants need
# ~3M inodes, more than mkfs.ext4's default of one per 16 KiB gives a 40G image.
setup_fs() {
    local fs=$1 purpose=${2:-} mkfs_cmd=() mnt_opts="" dio
    CUR_IMG="$WORK/$fs.img"
    CUR_MNT="$WORK/mnt-$fs"
    mkdir -p "$CUR_MNT"
    truncate -s "$IMG_SIZE" "$CUR_IMG" || return 1
    case $fs in
        # lazy_itable_init=0: no ext4lazyinit thread zeroing inode tables during the runs
        ext4) mkfs_cmd=(mkfs.ext4 -q -F -E "lazy_itable_init=0,lazy_journal_init=0") ;;
        xfs) mkfs_cmd=(mkfs.xfs -q -f -m reflink=1) ;;
        btrfs) mkfs_cmd=(mkfs.btrfs -q -f) ;;
        *) log "unknown file system $fs"; return 1 ;;
    esac
    [[ $fs == ext4 && $purpose == mem ]] && mkfs_cmd+=(-i 4096)
    CUR_LOOP=$(losetup --find --show --direct-io=on "$CUR_IMG" 2>"$WORK/losetup.err") ||
        CUR_LOOP=$(losetup --find --show "$CUR_IMG") || return 1
    dio=$(cat "/sys/block/${CUR_LOOP#/dev/}/loop/dio" 2>/dev/null || echo "?")
    quiet "${mkfs_cmd[@]}" "$CUR_LOOP" || return 1
    mount "$CUR_LOOP" "$CUR_MNT" || return 1
    mnt_opts=$(findmnt -no OPTIONS "$CUR_MNT")
    M=$CUR_MNT
    [[ $purpose == mem ]] || printf '%s\t%s\t%s\t%s\t%s\n' "$fs" "${mkfs_cmd[*]}" "$mnt_opts" "$dio" "$IMG_SIZE" >>"$RES/fs.tsv"
    [[ $purpose == mem ]] && printf '%s\n' "${mkfs_cmd[*]}" >"$RES/mem_fs.txt"
    log "$fs: ${mkfs_cmd[*]} on $CUR_LOOP (direct-io=$dio), mounted at $M ($mnt_opts)"
}

# ---------------------------------------------------------------- workloads

count_entries() { find "$1" ! -type d 2>/dev/null | wc -l; }

# pick_greedy LIMIT DIR... : prints the DIRs to take, largest first, while the total number of
# files and symlinks stays within LIMIT; the smallest DIR if none fits.
pick_greedy() {
    local limit=$1 d n total=0 smallest="" smallest_n=-1
    shift
    local -a rows=()
    for d in "$@"; do
        n=$(count_entries "$d")
        rows+=("$n $d")
        if ((smallest_n < 0 || n < smallest_n)); then smallest_n=$n smallest=$d; fi
    done
    local picked=0
    while read -r n d; do
        [[ -n $d ]] || continue
        if ((total + n <= limit)); then
            printf '%s\n' "$d"
            total=$((total + n))
            picked=1
        fi
    done < <(printf '%s\n' "${rows[@]}" | sort -rn)
    ((picked)) || printf '%s\n' "$smallest"
}

# The python workload: the largest Python tree(s) on the machine within PY_MAX_FILES (all of
# ~/.pyenv when it fits, as in research/baselines.md w1), else system stdlib + dist-packages.
pick_python_sources() {
    local pyenv=${PYENV_ROOT:-$HOME/.pyenv} stdlib
    if [[ -n ${PY_SRC:-} ]]; then
        read -ra PY_SOURCES <<<"$PY_SRC"
        return
    fi
    if [[ -d $pyenv ]] && (($(count_entries "$pyenv") <= PY_MAX_FILES)); then
        PY_SOURCES=("$pyenv")
        return
    fi
    local -a cands=("$pyenv"/versions/*/)
    stdlib=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])' 2>/dev/null)
    [[ -n $stdlib && -d $stdlib ]] && cands+=("$(realpath "$stdlib")")
    [[ -d /usr/lib/python3/dist-packages ]] && cands+=(/usr/lib/python3/dist-packages)
    ((${#cands[@]})) || die "no Python tree found for the python workload (set PY_SRC)"
    mapfile -t PY_SOURCES < <(pick_greedy "$PY_MAX_FILES" "${cands[@]%/}")
}

pick_share_sources() {
    if ((SHARE_MAX_FILES == 0)); then
        SHARE_SOURCES=(/usr/share)
    else
        mapfile -t SHARE_SOURCES < <(pick_greedy "$SHARE_MAX_FILES" /usr/share/*/)
        SHARE_SOURCES=("${SHARE_SOURCES[@]%/}")
    fi
}

# copy_sources DEST DIR... : DEST/<unique name per DIR>
copy_sources() {
    local dest=$1 d name
    shift
    mkdir -p "$dest"
    for d in "$@"; do
        name=$(printf '%s' "${d#/}" | tr '/' '_')
        quiet cp -a --reflink=never "$d" "$dest/$name" || return 1
    done
}

# random_bytes N: N deterministic pseudo-random bytes (AES-CTR keystream; /dev/urandom without
# openssl), so every file system gets the same big workload.
random_bytes() {
    local n=$1 seed=$2
    if have openssl; then
        { openssl enc -aes-128-ctr -pbkdf2 -nosalt -pass "pass:treesnap-bench-$seed" \
            -in /dev/zero 2>/dev/null || true; } | head -c "$n"
    else
        head -c "$n" /dev/urandom
    fi
}

build_big() {
    local dest=$1 i mb=$((1024 * 1024)) step
    mkdir -p "$dest" || return 1
    for i in 1 2; do
        random_bytes $((BIG_FILE_MB * mb)) "rand$i" >"$dest/random$i.bin" || return 1
    done
    # The microVM checkpoint case: a mostly-hole disk image with a few written regions.
    truncate -s $((BIG_SPARSE_MB * mb)) "$dest/disk.img" || return 1
    step=$((BIG_SPARSE_MB / BIG_REGIONS))
    for ((i = 0; i < BIG_REGIONS; i++)); do
        random_bytes $((BIG_REGION_MB * mb)) "region$i" |
            dd of="$dest/disk.img" bs=1M seek=$((i * step)) iflag=fullblock conv=notrunc status=none ||
            return 1
    done
}

build_workload() {
    local wl=$1 dest=$2
    case $wl in
        python) copy_sources "$dest" "${PY_SOURCES[@]}" ;;
        usr_share) copy_sources "$dest" "${SHARE_SOURCES[@]}" ;;
        big) build_big "$dest" ;;
        mem) quiet python3 "$BENCH_DIR/gen_tree.py" "$dest" --files "$MEM_FILES" ;;
        *) log "unknown workload $wl"; return 1 ;;
    esac
}

# tree_listing DIR: type, mode, owner, size (not for dirs) and path of every entry, sorted.
tree_listing() {
    (cd "$1" && {
        find . ! -type d -printf '%y %m %U:%G %s %P\n'
        find . -type d -printf '%y %m %U:%G - %P\n'
    } | LC_ALL=C sort)
}

record_workload() {
    local fs=$1 wl=$2 src=$3 files links dirs apparent alloc
    files=$(find "$src" -type f | wc -l)
    links=$(find "$src" -type l | wc -l)
    dirs=$(find "$src" -mindepth 1 -type d | wc -l)
    apparent=$(du -s --apparent-size -B1 "$src" | cut -f1)
    alloc=$(du -s -B1 "$src" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fs" "$wl" "$files" "$links" "$dirs" "$apparent" "$alloc" \
        >>"$RES/workloads.tsv"
    log "$fs/$wl: $files files, $links symlinks, $dirs dirs, $apparent bytes ($alloc allocated)"
}

# ---------------------------------------------------------------- cases
#
# A case is a tool id. For the current workload (globals FS_NAME, WL, SRC, STORE, REPO, DST):
# avail_case says whether it can run, prep_case undoes the previous round (untimed), set_cmd puts
# the timed command in CMD, after_case adds notes once its last round has run.

op_of() {
    case $1 in
        ts_snap | ostree_commit) echo snapshot ;;
        ts_resnap | ostree_recommit) echo resnapshot ;;
        ts_hardlink | cp_al | ostree_checkout) echo restore_hardlink ;;
        ts_reflink | cp_reflink) echo restore_reflink ;;
        ts_copy | cp_copy | rsync | ostree_copy) echo restore_copy ;;
        ts_auto) echo restore_auto ;;
    esac
}

# Prints the reason and returns 1 (SKIPPED) or 2 (FAIL) when the case cannot run.
avail_case() {
    case $1 in
        ts_*)
            [[ -x $TREESNAP ]] || { echo "no treesnap binary at $TREESNAP"; return 1; } ;;
        ostree_*)
            have ostree || { echo "ostree not installed"; return 1; } ;;
        rsync)
            have rsync || { echo "rsync not installed"; return 1; } ;;
        cp_reflink)
            [[ $FS_NAME != ext4 ]] || { echo "ext4 has no reflink"; return 1; } ;;
    esac
    case $1 in
        ts_snap | ostree_commit) ;;
        ts_*) ((TS_SNAP_OK)) || { echo "no snapshot to work from (treesnap snapshot failed)"; return 2; } ;;
        ostree_*) ((OSTREE_OK)) || { echo "no ostree commit to work from"; return 2; } ;;
    esac
    return 0
}

prep_case() {
    case $1 in
        ts_snap)
            rm -rf "$STORE" || return 1
            if [[ -n $TS_DIGEST ]]; then
                "$TREESNAP" --store "$STORE" init --digest "$TS_DIGEST" >/dev/null || return 1
            fi ;;
        ostree_commit) rm -rf "$REPO" || return 1 ;;
        ts_resnap | ostree_recommit) ;;
        *) rm -rf "$DST" || return 1 ;;
    esac
    sync
}

set_cmd() {
    local ts=("$TREESNAP" --store "$STORE" --json)
    case $1 in
        ts_snap | ts_resnap) CMD=("${ts[@]}" snapshot "$SRC" --name "$WL") ;;
        # Like cp -al and ostree checkout, the hardlink row links writable files too.
        ts_hardlink) CMD=("${ts[@]}" restore "$WL" "$DST" --strategy hardlink --hardlink-writable) ;;
        ts_reflink | ts_copy | ts_auto)
            CMD=("${ts[@]}" restore "$WL" "$DST" --strategy "${1#ts_}") ;;
        ostree_commit)
            # shellcheck disable=SC2016 # $1 and $2 are for the inner sh
            CMD=(sh -c 'ostree --repo="$1" init --mode=bare && exec ostree --repo="$1" commit --branch=b --tree=dir="$2"'
                sh "$REPO" "$SRC") ;;
        ostree_recommit) CMD=(ostree --repo="$REPO" commit --branch=b --tree=dir="$SRC") ;;
        ostree_checkout) CMD=(ostree --repo="$REPO" checkout b "$DST") ;;
        ostree_copy) CMD=(ostree --repo="$REPO" checkout -U --force-copy b "$DST") ;;
        cp_al) CMD=(cp -al "$SRC" "$DST") ;;
        cp_reflink) CMD=(cp -a --reflink=always "$SRC" "$DST") ;;
        cp_copy) CMD=(cp -a --reflink=never "$SRC" "$DST") ;;
        rsync) CMD=(rsync -a "$SRC/" "$DST/") ;;
    esac
    [[ $1 == ts_resnap ]] && CMD+=(--force)
    return 0
}

# Notes from treesnap's --json output, the store/repo sizes and the restored tree's listing.
after_case() {
    local id=$1 out=$2 note="" n
    case $id in
        ts_snap)
            note=$(jq -r '"entries \(.entries), files \(.files), new objects \(.new_objects), new bytes \(.new_bytes)"' \
                "$out" 2>/dev/null)
            note+="; store $(du -s -B1 "$STORE" | cut -f1) bytes on disk" ;;
        ts_resnap)
            note=$(jq -r '"hashed files \(.hashed_files), new objects \(.new_objects)"' "$out" 2>/dev/null) ;;
        ostree_commit)
            note="repo $(du -s -B1 "$REPO" | cut -f1) bytes on disk" ;;
        ts_hardlink | ts_reflink | ts_copy | ts_auto)
            note=$(jq -r '[(.strategies // {} | to_entries[] | select(.value.files > 0) | "\(.key) \(.value.files)"),
                    "fallbacks \(.fallback_count // 0)"] | join(", ")' "$out" 2>/dev/null) ;;
    esac
    if [[ $CHECK == 1 && $(op_of "$id") == restore_* && -d $DST ]]; then
        tree_listing "$DST" >"$WORK/dst.list"
        if ! cmp -s "$WORK/src.list" "$WORK/dst.list"; then
            n=$(diff "$WORK/src.list" "$WORK/dst.list" | grep -c '^[<>]')
            note+="${note:+; }LISTING DIFFERS from source ($n lines; first: $(diff "$WORK/src.list" "$WORK/dst.list" |
                grep -m1 '^[<>]'))"
        fi
    fi
    printf '%s' "$note"
}

record_case() {  # fs wl op tool status times rss note
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" \
        "$(printf '%s' "$8" | one_line)" >>"$RES/cases.tsv"
}

# run_group ROUNDS TOOL... : every round runs each tool once, in turn, so slow drift on this shared
# machine hits all tools alike. Median and min-max come later (report.py). The group's state is
# global so that a run stopped half-way still records the rounds it finished (flush_group).
G_TOOLS=()
declare -A G_TIMES=() G_RSS=() G_STATUS=() G_NOTES=()

run_group() {
    local rounds=$1 t r rc reason t0 t1 rss
    shift
    G_TOOLS=() G_TIMES=() G_RSS=() G_STATUS=() G_NOTES=()
    for t in "$@"; do
        reason=$(avail_case "$t")
        rc=$?
        case $rc in
            0) G_TOOLS+=("$t") G_STATUS[$t]=ok G_TIMES[$t]="" G_RSS[$t]="" G_NOTES[$t]="" ;;
            1) record_case "$FS_NAME" "$WL" "$(op_of "$t")" "$t" SKIPPED "" "" "$reason" ;;
            *) record_case "$FS_NAME" "$WL" "$(op_of "$t")" "$t" FAIL "" "" "$reason" ;;
        esac
    done
    for ((r = 1; r <= rounds; r++)); do
        for t in "${G_TOOLS[@]}"; do
            [[ ${G_STATUS[$t]} == ok ]] || continue
            if ! prep_case "$t" >"$WORK/prep.err" 2>&1; then
                G_STATUS[$t]=FAIL
                G_NOTES[$t]="prepare failed: $(head -n 3 "$WORK/prep.err")"
                continue
            fi
            set_cmd "$t"
            t0=$EPOCHREALTIME
            run_job "$WORK/case.out" "$WORK/case.err" \
                /usr/bin/time -f %M -o "$WORK/case.rss" timeout --foreground -k 10 "$CASE_TIMEOUT" "${CMD[@]}"
            rc=$?
            t1=$EPOCHREALTIME
            if ((rc != 0)); then
                G_STATUS[$t]=FAIL
                if ((rc == 124)); then
                    G_NOTES[$t]="timed out after ${CASE_TIMEOUT}s (round $r)"
                else
                    G_NOTES[$t]="exit $rc (round $r): $(grep -v '^Command exited' "$WORK/case.err" | head -n 3)"
                fi
                log "$FS_NAME/$WL $t FAILED: ${G_NOTES[$t]}"
                continue
            fi
            rss=$(tail -n 1 "$WORK/case.rss")
            G_TIMES[$t]+="${G_TIMES[$t]:+,}$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
            G_RSS[$t]+="${G_RSS[$t]:+,}$rss"
            log "$FS_NAME/$WL round $r/$rounds $t: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s, ${rss} KB"
            if ((r == rounds)); then
                G_NOTES[$t]=$(after_case "$t" "$WORK/case.out")
            fi
        done
    done
    flush_group ""
    rm -rf "$DST"
    return 0
}

# flush_group NOTE: record the current group's rows (NOTE added to those still running).
flush_group() {
    local t note
    for t in "${G_TOOLS[@]}"; do
        note=${G_NOTES[$t]}
        [[ -n $1 && ${G_STATUS[$t]} == ok ]] && note+="${note:+; }$1"
        record_case "$FS_NAME" "$WL" "$(op_of "$t")" "$t" "${G_STATUS[$t]}" "${G_TIMES[$t]}" "${G_RSS[$t]}" "$note"
        case $t in
            ts_snap) [[ ${G_STATUS[$t]} == ok ]] && TS_SNAP_OK=1 ;;
            ostree_commit) [[ ${G_STATUS[$t]} == ok ]] && OSTREE_OK=1 ;;
        esac
    done
    G_TOOLS=()
}

# ---------------------------------------------------------------- driver

bench_workload() {
    local wl=$1 rounds=$ROUNDS t0
    WL=$wl SRC="$M/src/$wl" STORE="$M/ts-store" REPO="$M/ostree-repo" DST="$M/out"
    TS_SNAP_OK=0 OSTREE_OK=0
    rm -rf "$SRC" "$STORE" "$REPO" "$DST"
    log "$FS_NAME/$wl: building workload"
    t0=$EPOCHREALTIME
    if ! build_workload "$wl" "$SRC"; then
        record_case "$FS_NAME" "$wl" build - FAIL "" "" "could not build the workload"
        rm -rf "$SRC"
        return 0
    fi
    [[ $wl == mem ]] && log "mem: generated in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s: $(cat "$WORK/job.out")"
    record_workload "$FS_NAME" "$wl" "$SRC"
    [[ $CHECK == 1 ]] && tree_listing "$SRC" >"$WORK/src.list"
    # Warm cache: read every file once.
    # shellcheck disable=SC2016
    quiet sh -c 'find "$1" -type f -print0 | xargs -0 -r -n 256 -P 2 cat >/dev/null' sh "$SRC"
    sync

    if [[ $wl == mem ]]; then
        rounds=$MEM_ROUNDS
        local -a snap=(ts_snap) rest=(ts_hardlink ts_auto cp_al rsync)
        [[ $MEM_OSTREE == 1 ]] && snap+=(ostree_commit)
        run_group "$rounds" "${snap[@]}"
        run_group "$rounds" "${rest[@]}"
    else
        run_group "$rounds" ts_snap ostree_commit
        run_group "$rounds" ts_resnap ostree_recommit
        run_group "$rounds" ts_hardlink cp_al ostree_checkout ts_reflink cp_reflink \
            ts_copy cp_copy rsync ostree_copy ts_auto
    fi
    rm -rf "$SRC" "$STORE" "$REPO" "$DST"
    sync
}

write_header() {
    local model mem ts_version ts_rev wl
    model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    if [[ -x $TREESNAP ]]; then
        ts_version=$("$TREESNAP" --version 2>/dev/null | head -n 1)
        ts_version="\`$TREESNAP\`${ts_version:+ ($ts_version)}"
    else
        ts_version="not found at \`$TREESNAP\` (its rows are SKIPPED)"
    fi
    ts_rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    if [[ -n $(git -C "$REPO_ROOT" status --porcelain -- src include 2>/dev/null) ]]; then
        ts_rev+=" + uncommitted changes"
    fi
    {
        echo "# treesnap benchmark"
        echo
        echo "* **Date**: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "* **Machine**: $(nproc) CPUs ($model), $mem RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "* **treesnap**: $ts_version, source $ts_rev"
        echo "* **Peers**: $(cp --version | head -n 1), $(rsync --version 2>/dev/null | head -n 1 | awk '{ print "rsync " $3 }'), ostree $(ostree --version 2>/dev/null | awk -F"'" '/Version/ { print $2 }')"
        echo "* **Protocol**: warm cache, $ROUNDS rounds per row (memory section: $MEM_ROUNDS), tools interleaved round by round; median and min–max wall time; output removed and \`sync\` before each round, untimed; no sync inside the timed command. Source, store/repo and target on the same loop-mounted file system."
        [[ $QUICK == 1 ]] && echo "* **QUICK mode**: reduced workloads and rounds, a smoke test, not for publication."
        local -a src=()
        for wl in $WORKLOADS; do
            case $wl in
                python) src+=("python = ${PY_SOURCES[*]}") ;;
                usr_share) src+=("usr_share = ${SHARE_SOURCES[*]}") ;;
                big) src+=("big = 2 × ${BIG_FILE_MB} MiB random + ${BIG_SPARSE_MB} MiB sparse image with ${BIG_REGIONS} × ${BIG_REGION_MB} MiB written") ;;
            esac
        done
        [[ $MEM == 1 ]] && src+=("memory section = bench/gen_tree.py --files $MEM_FILES on $MEM_FS")
        local IFS=';'
        echo "* **Workloads**: ${src[*]}" | sed 's/;/; /g'
    } >"$RES/header.md"
}

emit_report() {
    REPORTED=1
    if [[ -n $RAW ]]; then
        mkdir -p "$RAW" && cp "$RES"/*.tsv "$RES/header.md" "$RAW/" && log "raw results in $RAW"
    fi
    if [[ -n $OUT ]]; then
        python3 "$BENCH_DIR/report.py" "$RES" >"$OUT" && log "report written to $OUT"
    else
        python3 "$BENCH_DIR/report.py" "$RES"
    fi
}

main() {
    ((EUID == 0)) || die "needs root (mkfs, losetup, mount)"
    local t fs wl
    for t in losetup mount umount findmnt truncate python3 jq timeout; do
        have "$t" || die "$t is missing"
    done
    [[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
    [[ $ROUNDS =~ ^[1-9][0-9]*$ && $MEM_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and MEM_ROUNDS must be positive integers"
    for wl in $WORKLOADS; do
        [[ $wl =~ ^(python|usr_share|big)$ ]] || die "unknown workload '$wl' (python usr_share big)"
    done
    [[ $TREESNAP == /* ]] || TREESNAP=$PWD/$TREESNAP
    [[ -x $TREESNAP ]] || log "no treesnap binary at $TREESNAP: its rows will be SKIPPED"

    WORK=$(mktemp -d "$TMP_PARENT/treesnap-bench.XXXXXX") || die "mktemp failed"
    RES=$WORK/results
    mkdir -p "$RES"
    : >"$RES/cases.tsv"
    trap cleanup EXIT
    trap 'on_signal INT' INT
    trap 'on_signal TERM' TERM
    trap 'on_signal HUP' HUP
    log "work folder $WORK; FS='$FS' WORKLOADS='$WORKLOADS' ROUNDS=$ROUNDS QUICK=$QUICK MEM=$MEM"

    PY_SOURCES=() SHARE_SOURCES=()
    [[ " $WORKLOADS " == *" python "* ]] && pick_python_sources
    [[ " $WORKLOADS " == *" usr_share "* ]] && pick_share_sources
    write_header

    for fs in $FS; do
        FS_NAME=$fs
        if ! have "mkfs.$fs"; then
            record_case "$fs" - fs - SKIPPED "" "" "mkfs.$fs not installed"
            continue
        fi
        if [[ -n ${WORKLOADS// /} ]]; then
            if setup_fs "$fs"; then
                for wl in $WORKLOADS; do
                    bench_workload "$wl"
                done
            else
                record_case "$fs" - fs - FAIL "" "" "could not create and mount the $fs image: $(one_line <"$WORK/losetup.err")"
            fi
            teardown_fs
        fi
        # The memory section gets a file system of its own (see setup_fs).
        if [[ $MEM == 1 && $fs == "$MEM_FS" ]]; then
            if setup_fs "$fs" mem; then
                bench_workload mem
            else
                record_case "$fs" mem fs - FAIL "" "" "could not create and mount the $fs image for the memory section"
            fi
            teardown_fs
        fi
    done
    if [[ $MEM == 1 && " $FS " != *" $MEM_FS "* ]]; then
        log "memory section skipped: MEM_FS=$MEM_FS is not in FS='$FS'"
    fi
    emit_report
}

main "$@"
