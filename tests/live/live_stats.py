#!/usr/bin/env python3
"""tests/live/live_stats.py NUMAHEAP PUB_CHILD CASE: `numaheap stats` and
`numaheap top` read a running process (tests/live/pub_child.c) on a simulated
two-node topology. CASE is one of:

  pattern     the figures the command reads live are the child's own
              (nh_stats_get), and the pattern's deltas are exact (100 remote
              frees, 104 blocks, a fallback, an appdomain failure on node 1)
  grow        counters (Prometheus TYPE counter) only grow while the child churns
  prometheus  the --prometheus output passes prom_check.py, line by line
  list        `numaheap stats` without PID lists the child; --json too
  permission  another uid (nobody) is refused with exit 5; root reads nobody's
  stale       a child killed with SIGKILL: exit 3, absent from the list, and the
              next process publishes normally
  fork        a forked child publishes its own region, the parent's still updates
  closefds    the program closes every descriptor: a new region within an interval,
              and the program's own descriptors are left alone
  version     a region of an unknown layout version: exit 6
  off         [stats] publish = no: exit 4
  exit        a clean exit removes the region (exit 3 once reaped)
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

NUMAHEAP, CHILD, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NUMAHEAP_") and k != "LD_PRELOAD"}
ENV.update({
    "NUMAHEAP_TOPOLOGY_SYNTHETIC": "numa:2 core:1 pu:1",
    "NUMAHEAP_HEAP_BUDGET": "256M",
    "NUMAHEAP_NODE1_BUDGET": "32M",
    "NUMAHEAP_STATS_PUBLISH_INTERVAL": "20",
})
COUNTED = ["allocs", "frees", "remote_frees", "fallback_in", "fallback_out", "failures_task",
           "failures_appdomain", "failures_process", "committed", "in_use"]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Child:
    def __init__(self, env=ENV, user=None):
        self.p = subprocess.Popen([CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env, universal_newlines=True, bufsize=1, user=user)
        self.pid = self.p.pid
        self.expect("hello")

    def expect(self, word):
        line = self.p.stdout.readline().strip()
        if not line.startswith(word):
            fail("child said %r, expected %s" % (line, word))
        return line[len(word):].strip()

    def do(self, cmd):
        """Sends cmd; returns the child's own counters printed after it."""
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        if cmd == "start":
            node = int(self.expect("node"))
            if node != 0:
                fail("the child pinned to CPU 0 runs on node %d, not 0" % node)
        if cmd == "fork":
            return int(self.expect("child"))
        return json.loads(self.expect("stats"))

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def stats(pid, *args, user=None):
    p = subprocess.run([NUMAHEAP, "stats"] + ([str(pid)] if pid else []) + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=30, user=user, env=ENV)
    return p.returncode, p.stdout, p.stderr


def stats_json(pid):
    rc, out, err = stats(pid, "--json")
    if rc != 0:
        fail("numaheap stats %d --json: exit %d: %s" % (pid, rc, err))
    return json.loads(out)


def wait_region(pid, timeout=10):
    """Polls until the process has published a region (its first snapshot
    comes up to 200 ms after start-up: api/publish.c)."""
    deadline = time.time() + timeout
    while stats(pid)[0] == 4:
        if time.time() > deadline:
            fail("process %d published nothing in %d s" % (pid, timeout))
        time.sleep(0.05)


def published_matches(pid, own, timeout=10):
    """Polls until the published node counters equal the child's own (and
    until the child has a region at all: its thread may not have run yet)."""
    deadline = time.time() + timeout
    while True:
        rc, out, err = stats(pid, "--json")
        if rc == 4 and time.time() < deadline:
            time.sleep(0.05)
            continue
        if rc != 0:
            fail("numaheap stats %d --json: exit %d: %s" % (pid, rc, err))
        got = json.loads(out)
        diffs = [(n["node"], k, n[k], got["nodes"][i][k]) for i, n in enumerate(own["nodes"])
                 for k in COUNTED if got["nodes"][i][k] != n[k]]
        if not diffs and len(got["nodes"]) == len(own["nodes"]):
            return got
        if time.time() > deadline:
            fail("published figures differ from the child's own (node, field, own, published): %s"
                 % diffs)
        time.sleep(0.05)


def case_pattern():
    c = Child()
    try:
        before = c.do("start")
        published_matches(c.pid, before)
        after = c.do("pattern")
        got = published_matches(c.pid, after)
        n0b, n1b = before["nodes"]
        n0, n1 = got["nodes"]
        want = {"remote_frees": 100, "allocs": 104, "frees": 100, "fallback_out": 1, "failures_appdomain": 1,
                "failures_task": 0, "failures_process": 0, "fallback_in": 0}
        for k, d in want.items():
            if n1[k] - n1b[k] != d:
                fail("node 1 %s grew by %d, expected %d" % (k, n1[k] - n1b[k], d))
        if n0["fallback_in"] - n0b["fallback_in"] != 1:
            fail("node 0 fallback_in grew by %d, expected 1" % (n0["fallback_in"] - n0b["fallback_in"]))
        if n1["in_use"] - n1b["in_use"] != 4 << 20:
            fail("node 1 in_use grew by %d, expected 4 MiB (the kept large blocks)"
                 % (n1["in_use"] - n1b["in_use"]))
        if got["pid"] != c.pid or got["layout"] != 1 or got["cache_mode"] != "percpu":
            fail("header: %r" % {k: got[k] for k in ("pid", "layout", "cache_mode")})
        rc, out, err = stats(c.pid)
        if rc != 0 or "node 1 os_node" not in out or "remote_frees %d" % n1["remote_frees"] not in out:
            fail("text output: exit %d\n%s%s" % (rc, out, err))
    finally:
        c.close()


def prom_samples(text):
    """{series: value} of the counter samples of a Prometheus text."""
    counters, out = set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            if kind == "counter":
                counters.add(name)
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] in counters:
                out[series] = float(value)
    return out


def case_grow():
    c = Child()
    try:
        c.do("start")
        wait_region(c.pid)
        c.p.stdin.write("churn 1.5\n")
        c.p.stdin.flush()
        scrapes, t0 = [], time.time()
        # at least 1.2 s and 3 scrapes (a loaded machine scrapes slower), at most 20 s
        while (time.time() - t0 < 1.2 or len(scrapes) < 3) and time.time() - t0 < 20:
            rc, out, err = stats(c.pid, "--prometheus")
            if rc != 0:
                fail("scrape: exit %d %s" % (rc, err))
            scrapes.append(prom_samples(out))
            time.sleep(0.1)
        c.expect("stats")
        if len(scrapes) < 3:
            fail("only %d scrapes in 20 s" % len(scrapes))
        for a, b in zip(scrapes, scrapes[1:]):
            for series, v in a.items():
                if b.get(series, -1) < v:
                    fail("counter %s went from %g to %s" % (series, v, b.get(series)))
        first, last = scrapes[0], scrapes[-1]
        moved = [s for s in first if last[s] > first[s]]
        if not any(s.startswith("numaheap_allocs_total") for s in moved):
            fail("allocations did not grow during the churn: %s" % moved)
        print("%d scrapes, %d counter series, %d grew" % (len(scrapes), len(first), len(moved)))
    finally:
        c.close()


def case_prometheus():
    c = Child()
    try:
        own = c.do("start")
        own = c.do("pattern")
        published_matches(c.pid, own)
        rc, out, err = stats(c.pid, "--prometheus")
        if rc != 0:
            fail("exit %d: %s" % (rc, err))
        p = subprocess.run([sys.executable, os.path.join(HERE, "prom_check.py")], input=out,
                           universal_newlines=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(p.stdout, end="")
        if p.returncode != 0:
            fail("prom_check.py refused the output")
        for want in (r'numaheap_failures_total\{node="1",os_node="\d+",level="appdomain"\} 1$',
                     r'numaheap_fallback_in_total\{node="0",os_node="\d+"\} 1$'):
            if not any(re.match(want, l) for l in out.splitlines()):
                fail("no line %r in:\n%s" % (want, "\n".join(l for l in out.splitlines()
                                                         if "fail" in l or "fallback" in l)))
    finally:
        c.close()


def case_list():
    c = Child()
    try:
        published_matches(c.pid, c.do("start"))
        rc, out, err = stats(None)
        rows = [l.split() for l in out.splitlines()[1:]]
        if rc != 0 or not out.startswith("PID") or not any(r[0] == str(c.pid) for r in rows):
            fail("list: exit %d, pid %d missing:\n%s%s" % (rc, c.pid, out, err))
        rc, out, err = stats(None, "--json")
        if rc != 0 or c.pid not in [p["pid"] for p in json.loads(out)]:
            fail("list --json: exit %d, pid %d missing:\n%s%s" % (rc, c.pid, out, err))
        rc, out, err = stats(None, "--prometheus")
        if rc != 2 or "--prometheus needs a PID" not in err:
            fail("list --prometheus: exit %d %s" % (rc, err))
    finally:
        c.close()


def case_permission():
    if os.geteuid() != 0:
        print("not root: skipping the other-uid case")
        return
    mine = Child()
    theirs = Child(user=65534)
    try:
        published_matches(mine.pid, mine.do("start"))
        published_matches(theirs.pid, theirs.do("start"))  # root reads nobody's process
        rc, out, refusal = stats(mine.pid, user=65534)
        if rc != 5 or "belongs to user root" not in refusal or out:
            fail("nobody reading root's process: exit %d, stderr %r" % (rc, refusal))
        rc, out, err = stats(None, user=65534)
        rows = [l.split()[0] for l in out.splitlines()[1:]]
        if rc != 0 or str(mine.pid) in rows or str(theirs.pid) not in rows:
            fail("nobody's list shows root's process or misses its own: %s" % out)
        print("refused: " + refusal.strip())
    finally:
        mine.close()
        theirs.close()


def case_stale():
    c = Child()
    published_matches(c.pid, c.do("start"))
    os.kill(c.pid, signal.SIGKILL)
    time.sleep(0.2)
    rc, out, err = stats(c.pid)  # a zombie until reaped
    if rc != 3 or "has exited" not in err:
        fail("killed, not reaped: exit %d %r" % (rc, err))
    c.p.wait()
    rc, out, err = stats(c.pid)
    if rc != 3 or "no process %d" % c.pid not in err:
        fail("killed and reaped: exit %d %r" % (rc, err))
    rc, out, err = stats(None)
    if str(c.pid) in [l.split()[0] for l in out.splitlines()[1:]]:
        fail("the killed process is still listed")
    n = Child()
    try:
        published_matches(n.pid, n.do("start"))
    finally:
        n.close()


def case_fork():
    c = Child()
    try:
        published_matches(c.pid, c.do("start"))
        kid = c.do("fork")
        deadline = time.time() + 10
        while True:
            rc, out, err = stats(kid, "--json")
            if rc == 0:
                break
            if time.time() > deadline:
                fail("the forked child %d publishes nothing: exit %d %s" % (kid, rc, err))
            time.sleep(0.05)
        if json.loads(out)["pid"] != kid:
            fail("the child's region names pid %s" % json.loads(out)["pid"])
        s1 = stats_json(c.pid)["snapshots"]
        time.sleep(0.2)
        s2 = stats_json(c.pid)["snapshots"]
        if s2 <= s1:
            fail("the parent's region stopped updating after the fork (%d, %d)" % (s1, s2))
        os.kill(kid, signal.SIGKILL)
    finally:
        c.close()


def case_closefds():
    """The program closes every descriptor (numaheap's memfd too) and fills
    the numbers with /dev/null: the publisher notices within an interval,
    publishes a new region, and never closes the program's files."""
    c = Child()
    try:
        published_matches(c.pid, c.do("start"))
        own = c.do("closefds")
        before = set(os.listdir("/proc/%d/fd" % c.pid))
        published_matches(c.pid, own)
        after = set(os.listdir("/proc/%d/fd" % c.pid))
        if not before <= after:
            fail("descriptors of the program were closed: %s" % sorted(before - after, key=int))
        c.do("churn 0.1")  # the program still runs
    finally:
        c.close()


def case_version():
    fd = os.memfd_create("numaheap-stats")
    header = b"NHSTATS\0" + (99).to_bytes(4, "little") + (64).to_bytes(4, "little")
    os.write(fd, header + bytes(4096 - len(header)))
    rc, out, err = stats(os.getpid())
    os.close(fd)
    if rc != 6 or "layout version 99" not in err:
        fail("unknown version: exit %d %r" % (rc, err))
    print(err.strip())


def case_off():
    env = dict(ENV, NUMAHEAP_STATS_PUBLISH="no")
    c = Child(env=env)
    try:
        c.do("start")
        time.sleep(0.6)  # past the first snapshot's delay (200 ms) and more
        rc, out, err = stats(c.pid)
        if rc != 4 or "is not on numaheap" not in err:
            fail("publish = no: exit %d %r" % (rc, err))
    finally:
        c.close()


def case_exit():
    c = Child()
    published_matches(c.pid, c.do("start"))
    c.p.stdin.write("exit\n")
    c.p.stdin.flush()
    if c.p.wait() != 0:
        fail("the child exited with %d" % c.p.returncode)
    rc, out, err = stats(c.pid)
    if rc != 3:
        fail("after exit: exit %d %r" % (rc, err))


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}
if CASE not in CASES:
    fail("no case %r (cases: %s)" % (CASE, ", ".join(CASES)))
CASES[CASE]()
print("ok:", CASE)
