#!/usr/bin/python3
"""tests/cli/topo_json.py NUMAHEAP CONFIG: `numaheap topo --json --config
CONFIG` on tests/data/config/full.ini (4 simulated nodes in 2 packages;
task spills within the package, appdomain anywhere, process nowhere; node 1
has its own budget and reserve) gives every node, the distance matrix, and
per node and level the limit and the fallback order that configuration means."""
import json
import subprocess
import sys

cli, config = sys.argv[1], sys.argv[2]
out = subprocess.run([cli, "topo", "--json", "--config", config], check=True,
                     capture_output=True, text=True).stdout
doc = json.loads(out)
topo, nodes = doc["topology"], doc["nodes"]
assert len(topo["nodes"]) == 4 and len(nodes) == 4, out
assert len(topo["distances"]) == 4 and all(len(r) == 4 for r in topo["distances"]), out
assert all(topo["distances"][i][i] == 10 for i in range(4)), out
expect = {0: {"task": [0, 1], "appdomain": [0, 1, 2, 3], "process": [0]},
          1: {"task": [1, 0], "appdomain": [1, 0, 2, 3], "process": [1]},
          2: {"task": [2, 3], "appdomain": [2, 3, 0, 1], "process": [2]},
          3: {"task": [3, 2], "appdomain": [3, 2, 0, 1], "process": [3]}}
for n in nodes:
    for level, order in expect[n["node"]].items():
        assert n[level]["order"] == order, (n["node"], level, n[level]["order"], order)
    assert n["task"]["limit"] <= n["appdomain"]["limit"] <= n["process"]["limit"] == n["budget"], n
assert nodes[1]["budget"] == 512 << 20 and nodes[1]["reserve"] == 16 << 20, nodes[1]
assert nodes[1]["appdomain"]["limit"] == (512 - 16) << 20, nodes[1]
assert doc["huge_pages"]["mode"] == "hugetlb" and doc["huge_pages"]["why"], doc["huge_pages"]
assert all(n["free_hugepages"] >= 0 for n in nodes), nodes
print("topo --json: 4 nodes, fallback orders and limits as configured")
