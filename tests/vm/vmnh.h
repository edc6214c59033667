/*
 * tests/vm/vmnh.h: what the in-VM programs that link libnumaheap (vm_place,
 * vm_host, vm_huge, vm_cgroup) share: numaheap's view of where memory is,
 * checked against the kernel's (move_pages), and its statistics. vmtest.h
 * is the part every in-VM program shares, numaheap or not.
 */
#ifndef NH_VMNH_H
#define NH_VMNH_H

#include <stddef.h>

#include <numaheap/numaheap.h>

#include "vmtest.h"

/* Logical node of the calling thread by the kernel (t: its view); fails
 * check when nh_current_node() disagrees. */
int vm_nh_here_node(const vm_topo *t, const char *check);

/* Checks that every page of [p, p + size) (touched) is on logical node want
 * of t; what names the range in the failure. */
void vm_nh_pages_on(const vm_topo *t, const char *check, const char *what, const void *p,
                    size_t size, int want);

/* Touches block p (NULL fails check, with nh_last_error), checks that its
 * pages are on logical node want and that nh_ptr_node agrees. */
void vm_nh_block_on(const vm_topo *t, const char *check, const char *what, void *p, size_t size,
                    int want);

/* nh_stats_get into *st (size and version filled); a failure fails the
 * check "stats". */
void vm_nh_stats(nh_stats *st);

/* Fails the check "topology" unless the kernel (t), the layout's
 * expectation (a) and numaheap see the same number of nodes. */
void vm_nh_same_nodes(const vm_topo *t, const vm_args *a);

#endif
