#!/usr/bin/python3
"""Reads the statistics numaheap printed at exit (NUMAHEAP_STATS=json, or
`numaheap run --stats=json`) from a captured stderr file: one JSON object per
process that ran on numaheap, possibly after other output on the same line.

usage: check_stats.py FILE MIN_ALLOCS [MIN_PROCESSES]

Passes (exit 0) when at least MIN_PROCESSES processes reported (default 1) and
the blocks numaheap gave them (the caches' hits plus the blocks taken from the
heaps, total.allocs, summed: how many of each depends on the caches' sizing)
are at least MIN_ALLOCS. Prints one line per process and the sums."""
import json
import sys


def reports(text):
    dec = json.JSONDecoder()
    out = []
    pos = 0
    while True:
        i = text.find('{"version":', pos)
        if i < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError as e:
            sys.exit(f"check_stats: malformed statistics at offset {i}: {e}")
        out.append(obj)
        pos = end


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path, min_allocs = sys.argv[1], int(sys.argv[2])
    min_procs = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    with open(path, encoding="utf-8", errors="replace") as f:
        objs = reports(f.read())
    allocs = hits = 0
    for k, o in enumerate(objs):
        t, c = o["total"], o["cache"]
        print(f"process {k}: allocs {t['allocs']} frees {t['frees']} committed {t['committed']} "
              f"peak {t['peak_committed']} cache hits {c['hits']} misses {c['misses']} "
              f"nodes {len(o['nodes'])}")
        allocs += t["allocs"]
        hits += c["hits"]
    print(f"{len(objs)} processes on numaheap: {allocs} blocks from the heaps, {hits} cache hits")
    if len(objs) < min_procs:
        sys.exit(f"check_stats: {len(objs)} processes reported statistics, expected at least {min_procs}")
    if allocs + hits < min_allocs:
        sys.exit(f"check_stats: {allocs + hits} blocks allocated, expected at least {min_allocs}")


main()
