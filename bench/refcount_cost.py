#!/usr/bin/env python3
"""The cost of keeping refcounts on a first snapshot's commit (docs/BENCHMARKS.md, "GC at scale").

    python3 bench/refcount_cost.py TREESNAP_BINARY [FILES] [ROUNDS]

Makes a store with `treesnap init`, then in its database, per round and rolled back afterwards:
inserts FILES object rows and one snapshot, and adds the snapshot's FILES refs either row by row
through the refs_added trigger (treesnap before the bulk path) or with the trigger dropped and the
three set statements of Database::add_snapshot_refs (meta/database.cpp). Prints the median time of
the refs step of each. Python's sqlite3 cannot turn triggers off per connection as the C++ code
does, so the bulk variant drops the trigger inside the transaction; the statements are the same.
"""
import os, sqlite3, statistics, subprocess, sys, tempfile, time

BULK = [
    "UPDATE snapshots SET unique_objects = unique_objects - x.n, unique_bytes = unique_bytes - x.b "
    "FROM (SELECT other.snapshot AS id, count(*) AS n, sum(o.disk_bytes) AS b FROM refs r "
    "JOIN objects o ON o.digest = r.digest AND o.refcount = 1 "
    "JOIN refs other ON other.digest = r.digest AND other.snapshot != r.snapshot "
    "WHERE r.snapshot = ?1 GROUP BY other.snapshot) AS x WHERE snapshots.id = x.id",
    "UPDATE objects SET refcount = refcount + 1 WHERE digest IN (SELECT digest FROM refs WHERE snapshot = ?1)",
    "UPDATE snapshots SET (unique_objects, unique_bytes) = (SELECT count(*), coalesce(sum(o.disk_bytes), 0) "
    "FROM refs r JOIN objects o ON o.digest = r.digest WHERE r.snapshot = ?1 AND o.refcount = 1) WHERE id = ?1",
]

def one(db, files, bulk):
    db.execute("BEGIN IMMEDIATE")
    digests = [os.urandom(32) for _ in range(files)]
    db.executemany("INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) VALUES(?, 100, 1, 1, 4096)",
                   [(d,) for d in digests])
    db.execute("INSERT INTO snapshots(name, tag, manifest, created_ns, last_used_ns, entries, files, bytes, "
               "new_objects, new_bytes) VALUES('s', 'latest', x'00', 1, 1, 0, 0, 0, 0, 0)")
    sid = db.execute("SELECT last_insert_rowid()").fetchone()[0]
    if bulk:
        db.execute("DROP TRIGGER refs_added")
    start = time.perf_counter()
    db.executemany("INSERT OR IGNORE INTO refs(snapshot, digest) VALUES(?, ?)", [(sid, d) for d in digests])
    if bulk:
        for s in BULK:
            db.execute(s, (sid,))
    took = time.perf_counter() - start
    unique = db.execute("SELECT unique_objects FROM snapshots WHERE id = ?", (sid,)).fetchone()[0]
    assert unique == files, (unique, files)
    db.execute("ROLLBACK")
    return took

def main():
    binary, files, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 57582, int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "--store", tmp + "/s", "init"], check=True, stdout=subprocess.DEVNULL)
        db = sqlite3.connect(tmp + "/s/treesnap.db", isolation_level=None)
        db.execute("PRAGMA cache_size=-65536")
        times = {False: [], True: []}
        for _ in range(rounds):
            for bulk in (False, True):
                times[bulk].append(one(db, files, bulk))
        t, b = statistics.median(times[False]), statistics.median(times[True])
        print(f"{files} refs: trigger per row {t:.3f} s (min {min(times[False]):.3f}), "
              f"bulk {b:.3f} s (min {min(times[True]):.3f}), {t / b:.1f}x")

main()
