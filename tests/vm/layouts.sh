# shellcheck shell=bash disable=SC2034
# tests/vm/layouts.sh: the VM layouts, sourced by run-vm.sh.
#
# Each layout is one function pair:
#   layout_qemu_<name>    prints the qemu arguments for memory, CPUs and NUMA;
#   layout_expect_<name>  prints what the guest kernel must show, as the
#                         expectation string the in-VM tests take (--expect):
#     cpus=<node0>/<node1>/...  CPU list of each node ("none": CPU-less)
#     mem=<MiB0>/<MiB1>/...     memory of each node in MiB, as configured
#     dist=<row0>/<row1>/...    each row: comma-separated distances
# Node ids are the OS ids 0..n-1 in that order. Keep the two functions of a
# layout in agreement: vm_layout checks the kernel against the second.
#
# Distances: 10 is local (the kernel's convention). Without -numa dist the
# firmware has no SLIT and Linux uses 10 local / 20 remote.

NHVM_LAYOUTS="2node 4node 8node cpuless memless"

# nhvm_mem_nodes SIZE_MIB COUNT: one RAM backend per node, m0..m<COUNT-1>.
nhvm_mem_nodes() {
  local i
  for ((i = 0; i < $2; i++)); do
    printf -- '-object memory-backend-ram,id=m%d,size=%dM ' "$i" "$1"
  done
}

# nhvm_dist SRC DST VAL...: -numa dist arguments (qemu mirrors each pair).
nhvm_dist() {
  while (($# >= 3)); do
    printf -- '-numa dist,src=%d,dst=%d,val=%d ' "$1" "$2" "$3"
    shift 3
  done
}

# 2node: two nodes of 256 MiB, two CPUs each, one package per node.
layout_qemu_2node() {
  printf -- '-m 512M -smp 4,sockets=2,cores=2,threads=1 '
  nhvm_mem_nodes 256 2
  printf -- '-numa node,nodeid=0,cpus=0-1,memdev=m0 '
  printf -- '-numa node,nodeid=1,cpus=2-3,memdev=m1 '
}
layout_expect_2node() {
  echo 'cpus=0-1/2-3;mem=256/256;dist=10,20/20,10'
}

# 4node: four nodes of 256 MiB in two packages (nodes 0,1 on socket 0; 2,3 on
# socket 1), two CPUs each, asymmetric distances: the nearest node of 0 is 1
# (12, same package), then 2 (21), then 3 (31).
layout_qemu_4node() {
  printf -- '-m 1024M -smp 8,sockets=2,cores=4,threads=1 '
  nhvm_mem_nodes 256 4
  printf -- '-numa node,nodeid=0,cpus=0-1,memdev=m0 '
  printf -- '-numa node,nodeid=1,cpus=2-3,memdev=m1 '
  printf -- '-numa node,nodeid=2,cpus=4-5,memdev=m2 '
  printf -- '-numa node,nodeid=3,cpus=6-7,memdev=m3 '
  nhvm_dist 0 1 12  0 2 21  0 3 31  1 2 31  1 3 21  2 3 12
}
layout_expect_4node() {
  echo 'cpus=0-1/2-3/4-5/6-7;mem=256/256/256/256;dist=10,12,21,31/12,10,31,21/21,31,10,12/31,21,12,10'
}

# 8node: eight nodes of 256 MiB, one CPU (one socket) each, no SLIT.
layout_qemu_8node() {
  local i
  printf -- '-m 2048M -smp 8,sockets=8,cores=1,threads=1 '
  nhvm_mem_nodes 256 8
  for ((i = 0; i < 8; i++)); do
    printf -- '-numa node,nodeid=%d,cpus=%d,memdev=m%d ' "$i" "$i" "$i"
  done
}
layout_expect_8node() {
  local rows="" i j sep
  for ((i = 0; i < 8; i++)); do
    sep=""
    [[ -n $rows ]] && rows+="/"
    for ((j = 0; j < 8; j++)); do
      rows+="$sep$( ((i == j)) && echo 10 || echo 20)"
      sep=","
    done
  done
  echo "cpus=0/1/2/3/4/5/6/7;mem=256/256/256/256/256/256/256/256;dist=$rows"
}

# cpuless: two nodes with two CPUs each, plus node 2: memory only (no CPUs),
# nearer to node 0 (15) than to node 1 (25).
layout_qemu_cpuless() {
  printf -- '-m 768M -smp 4,sockets=2,cores=2,threads=1 '
  nhvm_mem_nodes 256 3
  printf -- '-numa node,nodeid=0,cpus=0-1,memdev=m0 '
  printf -- '-numa node,nodeid=1,cpus=2-3,memdev=m1 '
  printf -- '-numa node,nodeid=2,memdev=m2 '
  nhvm_dist 0 1 20  0 2 15  1 2 25
}
layout_expect_cpuless() {
  echo 'cpus=0-1/2-3/none;mem=256/256/256;dist=10,20,15/20,10,25/15,25,10'
}

# memless: node 1 has CPUs but no memory, between node 0 and node 2 that
# have memory and CPUs; node 1 is nearer to node 2 (12) than to node 0 (21),
# so its CPUs' local memory is node 2's.
layout_qemu_memless() {
  printf -- '-m 512M -smp 6,sockets=3,cores=2,threads=1 '
  nhvm_mem_nodes 256 2
  printf -- '-numa node,nodeid=0,cpus=0-1,memdev=m0 '
  printf -- '-numa node,nodeid=1,cpus=2-3 '
  printf -- '-numa node,nodeid=2,cpus=4-5,memdev=m1 '
  nhvm_dist 0 1 21  0 2 31  1 2 12
}
layout_expect_memless() {
  echo 'cpus=0-1/2-3/4-5;mem=256/0/256;dist=10,21,31/21,10,12/31,12,10'
}
