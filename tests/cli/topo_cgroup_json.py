#!/usr/bin/python3
"""tests/cli/topo_cgroup_json.py NUMAHEAP: `numaheap topo --json` inside a
fake cgroup tree (the test-only root NUMAHEAP_TEST_CGROUP_ROOT) whose group
name holds a quote, a backslash, a tab, a non-ASCII letter and a byte that is
not UTF-8: the output is one valid JSON document and names the group (the
stray byte as U+FFFD), with the limit and the cpuset read from the tree."""
import json
import os
import subprocess
import sys
import tempfile

cli = sys.argv[1]
name = b'/job "q" \\b\ts\xc3\xa9\xff'
with tempfile.TemporaryDirectory() as root:
    r = os.fsencode(root)

    def put(rel, text):
        path = os.path.join(r, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(text)

    put(b"proc/self/cgroup", b"0::" + name + b"\n")
    put(b"proc/self/mountinfo",
        b"30 20 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    group = b"sys/fs/cgroup" + name
    put(group + b"/memory.max", b"67108864\n")
    put(group + b"/memory.current", b"1048576\n")
    put(group + b"/cpuset.mems.effective", b"0\n")
    put(group + b"/cpuset.cpus.effective", b"0-1\n")
    env = dict(os.environ, NUMAHEAP_TEST_CGROUP_ROOT=root, NUMAHEAP_CONFIG="")
    res = subprocess.run([cli, "topo", "--json"], env=env, check=True, capture_output=True)
out = res.stdout.decode("utf-8")  # strict: the output must be UTF-8
doc = json.loads(out)
cg = doc["cgroup"]
want = name[:-1].decode("utf-8") + "\ufffd"
assert cg["path"] == want, (cg["path"], want)
assert cg["version"] == 2 and cg["max"] == 64 << 20, cg
assert cg["mems"] == "0" and cg["cpus"] == "0-1", cg
assert res.stderr == b"", res.stderr
print("topo --json: the group", repr(cg["path"]), "escaped; limit and cpuset read")
