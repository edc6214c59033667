# bench/text_order.py: prints the functions of libnumaheap.so that a program
# runs, in the order they first run: the list cmake/text-order.ld places first
# (docs/benchmarks.md, "Footprint of a small program"). A gdb script:
#
#   NH_LIB=$PWD/build/libnumaheap.so gdb -q -batch -x bench/text_order.py --args ls /usr
#
# One breakpoint per function of the library, each removed at its first hit
# (slow start-up under gdb, then full speed). Prints "TEXT-ORDER name" lines,
# then how many bytes of the library's code ran.
import os
import subprocess

import gdb

LIB = os.path.realpath(os.environ["NH_LIB"])
FUNCS = []  # (offset, size, name)
for line in subprocess.check_output(["nm", "-S", LIB], text=True).splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tT":
        FUNCS.append((int(f[0], 16), int(f[1], 16), f[3]))
ran = []


class First(gdb.Breakpoint):
    def __init__(self, addr, name):
        super().__init__("*0x%x" % addr, internal=True)
        self.fn = name

    def stop(self):
        ran.append(self.fn)
        self.enabled = False
        return False


def lib_base():
    for line in gdb.execute("info proc mappings", to_string=True).splitlines():
        f = line.split()
        if len(f) >= 5 and os.path.realpath(f[-1]) == LIB:
            return int(f[0], 16) - int(f[3], 16)
    return None


gdb.execute("set startup-with-shell off")
gdb.execute("set environment LD_PRELOAD=" + LIB)
gdb.execute("starti")
gdb.execute("set stop-on-solib-events 1")
base = None
while base is None:
    gdb.execute("continue")
    base = lib_base()
gdb.execute("set stop-on-solib-events 0")
for off, size, name in FUNCS:
    First(base + off, name)
gdb.execute("continue")
for name in ran:
    print("TEXT-ORDER", name)
sizes = {name: size for off, size, name in FUNCS}
print("ran %d of %d bytes of code" % (sum(sizes[n] for n in set(ran)), sum(sizes.values())))
