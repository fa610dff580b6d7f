#!/usr/bin/env python3
"""Render bench/run.sh's raw results as markdown (for docs/BENCHMARKS.md).

    report.py RESULTS_DIR > report.md

RESULTS_DIR holds what run.sh writes (keep it with RAW=DIR):
  header.md      machine, versions and protocol, printed first;
  fs.tsv         fs, mkfs command, mount options, loop direct-io flag, image size;
  workloads.tsv  fs, workload, files, symlinks, dirs, apparent bytes, allocated bytes;
  cases.tsv      fs, workload, operation, tool, status (ok|FAIL|SKIPPED),
                 seconds per round (comma-separated), max RSS KB per round, note.

Ratios are of medians. Restores: treesnap ÷ peer (below 1: treesnap is faster). Snapshots:
peer ÷ treesnap, written "N× faster than …", as speed-ups read more naturally there.
"""

import csv
import statistics
import sys
from pathlib import Path

OPS = {
    "snapshot": "snapshot, new store",
    "resnapshot": "re-snapshot, unchanged tree",
    "restore_hardlink": "restore, hardlink",
    "restore_reflink": "restore, reflink",
    "restore_copy": "restore, full copy",
    "restore_auto": "restore, auto",
}

TOOLS = {
    "ts_snap": "treesnap snapshot",
    "ostree_commit": "ostree init + commit",
    "ts_resnap": "treesnap snapshot --force",
    "ostree_recommit": "ostree commit (same repo)",
    "ts_hardlink": "treesnap restore --strategy hardlink",
    "cp_al": "cp -al",
    "ostree_checkout": "ostree checkout (bare: hardlinks)",
    "ts_reflink": "treesnap restore --strategy reflink",
    "cp_reflink": "cp -a --reflink=always",
    "ts_copy": "treesnap restore --strategy copy",
    "cp_copy": "cp -a --reflink=never",
    "rsync": "rsync -a",
    "ostree_copy": "ostree checkout -U --force-copy",
    "ts_auto": "treesnap restore --strategy auto",
}

WORKLOADS = {"python": "python", "usr_share": "usr_share", "big": "big", "mem": "generated tree"}

# tool -> list of (kind, [peer candidates, the first that ran wins], peer name or None for its tool label)
RATIOS = {
    "ts_snap": [("speedup", ["ostree_commit"], "ostree commit")],
    "ts_resnap": [("speedup", ["ts_snap"], "the first snapshot"),
                  ("speedup", ["ostree_recommit"], "ostree re-commit")],
    "ostree_recommit": [("speedup", ["ostree_commit"], "ostree's first commit")],
    "ts_hardlink": [("ratio", ["cp_al"], None), ("ratio", ["ostree_checkout"], "ostree checkout")],
    "ts_reflink": [("ratio", ["cp_reflink", "cp_copy"], None)],
    "ts_copy": [("ratio", ["cp_copy"], None)],
    "ts_auto": [("ratio", ["cp_reflink", "cp_copy"], None)],
}


def read_tsv(path: Path):
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def fmt_s(s: float) -> str:
    if s < 0.1:
        return f"{s:.3f}"
    if s < 10:
        return f"{s:.2f}"
    return f"{s:.1f}"


def fmt_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


class Case:
    def __init__(self, row):
        row = row + [""] * (8 - len(row))
        self.fs, self.wl, self.op, self.tool, self.status = row[:5]
        self.times = [float(x) for x in row[5].split(",") if x]
        self.rss = [int(x) for x in row[6].split(",") if x.isdigit()]
        self.note = row[7].strip()

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def notes(self):
        out = [self.note] if self.note else []
        # A slow first round is not noise when it is the only round that does some one-off work
        # (e.g. treesnap preparing store-side link variants on the first hardlink restore).
        if self.ok and len(self.times) >= 3 and self.times[0] > 2 * self.median:
            out.append(f"round 1 took {fmt_s(self.times[0])} s, over 2× the median "
                       f"(rounds: {', '.join(fmt_s(t) for t in self.times)})")
        return out

    def cells(self):
        if not self.ok:
            return ("not run" if self.status == "ok" else self.status or "FAIL"), "—"
        return fmt_s(self.median), f"{fmt_s(min(self.times))}–{fmt_s(max(self.times))}"


def ordered(cases):
    """Operations in OPS order, tools in TOOLS order (treesnap first, then its peers)."""
    ops, tools = list(OPS), list(TOOLS)
    known = [c for c in cases if c.op in OPS]
    return sorted(known, key=lambda c: (ops.index(c.op), tools.index(c.tool) if c.tool in tools else 99))


def ratio_cells(case: Case, by_tool: dict, fs: str):
    """Texts for the ratio column, and {kind-key: value} for the summary."""
    texts, values = [], {}
    if not case.ok:
        return "", values
    for kind, peers, name in RATIOS.get(case.tool, []):
        peer = next((by_tool[p] for p in peers if p in by_tool and by_tool[p].ok), None)
        if peer is None:
            continue
        name = name or TOOLS[peer.tool]
        if kind == "ratio":
            r = case.median / peer.median
            extra = " (no reflink on ext4)" if peer.tool != peers[0] and fs == "ext4" else ""
            texts.append(f"{r:.2f}× {name}{extra}")
        else:
            r = peer.median / case.median
            texts.append(f"{r:.1f}× faster than {name}" if r >= 1 else f"{1 / r:.1f}× slower than {name}")
        values[(case.tool, peer.tool)] = r
    return "; ".join(texts), values


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    res = Path(sys.argv[1])
    cases = [Case(r) for r in read_tsv(res / "cases.tsv") if r]
    fsinfo = {r[0]: r for r in read_tsv(res / "fs.tsv") if r}
    wlinfo = {(r[0], r[1]): r for r in read_tsv(res / "workloads.tsv") if r}
    out = []
    header = res / "header.md"
    if header.exists():
        out.append(header.read_text().rstrip() + "\n")

    fs_order = list(dict.fromkeys(c.fs for c in cases))
    summary = []
    mem_cases = []
    sections = []
    for fs in fs_order:
        fs_cases = [c for c in cases if c.fs == fs]
        mem_cases += [c for c in fs_cases if c.wl == "mem" and c.op != "fs"]
        fs_cases = [c for c in fs_cases if c not in mem_cases]
        if not fs_cases:
            continue
        lines = [f"## {fs}", ""]
        info = fsinfo.get(fs)
        if info:
            lines.append(f"`{info[1]}`, mounted `{info[2]}`, loop direct-io={info[3]}, {info[4]} sparse image.")
            lines.append("")
        for c in fs_cases:
            if c.op == "fs":
                lines += [f"**{c.status}**: {c.note}", ""]
        wls = list(dict.fromkeys(c.wl for c in fs_cases if c.op != "fs" and c.wl != "mem"))
        if wls:
            lines += ["| workload | files | symlinks | dirs | apparent size | allocated |",
                      "|---|---:|---:|---:|---:|---:|"]
            for wl in wls:
                w = wlinfo.get((fs, wl))
                if w:
                    lines.append(f"| {wl} | {int(w[2]):,} | {int(w[3]):,} | {int(w[4]):,} | "
                                 f"{fmt_bytes(int(w[5]))} | {fmt_bytes(int(w[6]))} |")
            lines += ["", "| operation | tool | median s | min–max | ratio vs peer |",
                      "|---|---|---:|---:|---|"]
        notes = []
        for wl in wls:
            wl_cases = [c for c in fs_cases if c.wl == wl]
            by_tool = {c.tool: c for c in wl_cases}
            srow = {}
            for c in wl_cases:
                if c.op == "build":
                    lines.append(f"| {wl}: build | — | FAIL | — | |")
                    notes.append(f"{wl}: {c.note}")
            for c in ordered(wl_cases):
                med, rng = c.cells()
                text, values = ratio_cells(c, by_tool, fs)
                srow.update(values)
                lines.append(f"| {wl}: {OPS[c.op]} | {TOOLS.get(c.tool, c.tool)} | {med} | {rng} | {text} |")
                for note in c.notes():
                    notes.append(f"{wl}, {TOOLS.get(c.tool, c.tool)}: {note}")
            summary.append((fs, wl, srow))
        if notes:
            lines += ["", "Notes:", ""] + [f"* {n}" for n in notes]
        sections.append("\n".join(lines) + "\n")

    if summary:
        cols = [("hardlink ÷ cp -al", ("ts_hardlink", "cp_al")),
                ("reflink ÷ cp --reflink=always", ("ts_reflink", "cp_reflink")),
                ("copy ÷ cp --reflink=never", ("ts_copy", "cp_copy")),
                ("auto ÷ cp -a", None),
                ("snapshot: ostree ÷ treesnap", ("ts_snap", "ostree_commit")),
                ("re-snapshot: 1st ÷ re", ("ts_resnap", "ts_snap"))]
        out += ["## Summary", "",
                "Ratios of median wall times. Restore columns: treesnap ÷ peer (below 1: treesnap faster). "
                "Snapshot columns: speed-up of treesnap (above 1: treesnap faster). "
                "`auto ÷ cp -a` compares with `cp -a --reflink=always` where the file system "
                "can clone, else `--reflink=never` (what coreutils' default `--reflink=auto` does).", "",
                "| fs | workload | " + " | ".join(c[0] for c in cols) + " |",
                "|---|---|" + "---:|" * len(cols)]
        for fs, wl, v in summary:
            cells = []
            for _, key in cols:
                if key is None:
                    val = v.get(("ts_auto", "cp_reflink"), v.get(("ts_auto", "cp_copy")))
                else:
                    val = v.get(key)
                cells.append("—" if val is None else f"{val:.2f}")
            out.append(f"| {fs} | {wl} | " + " | ".join(cells) + " |")
        out.append("")

    out += sections

    if mem_cases:
        fs = mem_cases[0].fs
        w = wlinfo.get((fs, "mem"))
        desc = (f"{int(w[2]):,} files, {int(w[3]):,} symlinks, {int(w[4]):,} dirs, "
                f"{fmt_bytes(int(w[5]))} apparent" if w else "generated tree")
        lines = [f"## Peak memory ({fs}, bench/gen_tree.py: {desc})", ""]
        mkfs = res / "mem_fs.txt"
        if mkfs.exists():
            lines += [f"On a file system of its own: `{mkfs.read_text().strip()}`.", ""]
        if all(len(c.times) <= 1 for c in mem_cases):
            lines += ["One round each (MEM_ROUNDS=1): the treesnap hardlink restore is a first restore, "
                      "so its time includes creating the store's link variants.", ""]
        lines += ["| operation | tool | median s | min–max | peak RSS MB |", "|---|---|---:|---:|---:|"]
        notes = []
        for c in ordered(mem_cases):
            med, rng = c.cells()
            rss = f"{max(c.rss) / 1024:.0f}" if c.ok and c.rss else "—"
            lines.append(f"| {OPS[c.op]} | {TOOLS.get(c.tool, c.tool)} | {med} | {rng} | {rss} |")
            for note in c.notes():
                notes.append(f"{TOOLS.get(c.tool, c.tool)}: {note}")
        if notes:
            lines += ["", "Notes:", ""] + [f"* {n}" for n in notes]
        out.append("\n".join(lines) + "\n")

    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
