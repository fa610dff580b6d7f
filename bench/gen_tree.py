#!/usr/bin/env python3
"""Generate a large synthetic tree for the peak-memory benchmark.

    gen_tree.py DEST [--files N] [--fanout K] [--dup-every D] [--seed S] [--jobs J]

DEST gets ceil(N / K) directories d0000… with K entries each (N in all, default
1,000,000 in 1000 × 1000). Entry kinds, by index i within the whole tree:

  * every 1000th entry is a symlink to a sibling (a few per directory);
  * every 997th is an empty file;
  * every D-th (default 10) is a duplicate: one of 1000 shared ~100-byte contents;
  * everything else is a unique ~100-byte text file (its path plus seeded noise).

The tree is a pure function of the arguments, so two runs give the same digests.
Directories are split over J worker processes (default: number of CPUs); on this
machine's journaled ext4 loop mount 1M files take about a minute. Prints one
JSON line with the counts on stdout.
"""

import argparse
import json
import os
import random
import sys
from multiprocessing import Pool

SHARED_CONTENTS = 1000


def shared_content(k: int, seed: int) -> bytes:
    rng = random.Random(seed * 1_000_003 + k)
    body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(90))
    return f"shared {k:04d} {body}\n".encode()


def make_dir(job):
    dest, d, first, count, dup_every, seed = job
    dname = os.path.join(dest, f"d{d:04d}")
    os.mkdir(dname)
    shared = [shared_content(k, seed) for k in range(SHARED_CONTENTS)]
    rng = random.Random(seed * 7919 + d)
    files = symlinks = empty = dups = 0
    dfd = os.open(dname, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for j in range(count):
            i = first + j
            name = f"f{j:04d}"
            if i % 1000 == 999 and j > 0:
                os.symlink(f"f{j - 1:04d}", name, dir_fd=dfd)
                symlinks += 1
                continue
            if i % 997 == 996:
                data = b""
                empty += 1
            elif i % dup_every == dup_every - 1:
                data = shared[rng.randrange(SHARED_CONTENTS)]
                dups += 1
            else:
                data = f"d{d:04d}/{name} {rng.getrandbits(256):064x} {i:09d} ".ljust(99, "x").encode() + b"\n"
            fd = os.open(name, flags, 0o644, dir_fd=dfd)
            try:
                if data:
                    os.write(fd, data)
            finally:
                os.close(fd)
            files += 1
    finally:
        os.close(dfd)
    return files, symlinks, empty, dups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest")
    ap.add_argument("--files", type=int, default=1_000_000, help="entries in all (default 1,000,000)")
    ap.add_argument("--fanout", type=int, default=1000, help="entries per directory (default 1000)")
    ap.add_argument("--dup-every", type=int, default=10, help="every D-th file is a duplicate (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if args.files < 1 or args.fanout < 1 or args.dup_every < 2:
        ap.error("--files and --fanout must be >= 1, --dup-every >= 2")

    os.makedirs(args.dest, exist_ok=True)
    if os.listdir(args.dest):
        print(f"gen_tree.py: {args.dest} is not empty", file=sys.stderr)
        return 1
    jobs = []
    for d, first in enumerate(range(0, args.files, args.fanout)):
        jobs.append((args.dest, d, first, min(args.fanout, args.files - first), args.dup_every, args.seed))
    with Pool(max(1, args.jobs)) as pool:
        totals = [0, 0, 0, 0]
        for res in pool.imap_unordered(make_dir, jobs, chunksize=4):
            totals = [a + b for a, b in zip(totals, res)]
    files, symlinks, empty, dups = totals
    print(json.dumps({"dirs": len(jobs), "files": files, "symlinks": symlinks,
                      "empty_files": empty, "duplicate_files": dups,
                      "entries": len(jobs) + files + symlinks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
