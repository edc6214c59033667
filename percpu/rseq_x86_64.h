/*
 * percpu/rseq_x86_64.h: the restartable sequences of the per-CPU caches, for
 * x86-64. Everything architecture-specific lives here (see docs/percpu.md);
 * include percpu/rseq.h, which picks the architecture's file.
 *
 * The thread's rseq area is the one glibc registers (struct rseq at
 * %fs:__rseq_offset): cpu_id at +4, rseq_cs at +8. A sequence
 *   1. stores the address of its descriptor (section __rseq_cs) in rseq_cs,
 *   2. reads cpu_id and computes that CPU's region: base + (cpu << shift),
 *   3. loads and checks; writes only to slots the count does not cover yet,
 *   4. commits with one store: the class's count.
 * The kernel sends the thread to the abort handler (section __rseq_failure,
 * the signature 0x53053053 just before it), which jumps back to step 1, if
 * the thread is preempted, migrated or takes a signal before the commit.
 * Step 3 may run any number of times: nothing it writes is visible before the
 * commit, and no input register is modified. A CPU id >= nslots (a thread
 * glibc could not register has a negative cpu_id; a CPU outside the table)
 * fails the sequence at once.
 *
 * A CPU's region (pcpu.c) starts with a fixed header the sequences address
 * by constant offsets:
 *     +0   int32 node      the node this CPU's cache holds blocks of
 *     +8   uint64 hits     pops that hit (written only inside sequences)
 *     +64  hdr[class]      8 bytes each: u16 count, u16 pad, u16 lo, u16 hi
 * A pop needs count > lo, a push count < hi. Normal: lo = 0, hi = capacity.
 * Stopped (a drainer owns the slabs, see pcpu.c): lo = 0xffff, hi = 0, so
 * every sequence fails without a store. Slots of a class: soff bytes from
 * the region, count entries in use.
 */
#ifndef NH_PERCPU_RSEQ_X86_64_H
#define NH_PERCPU_RSEQ_X86_64_H

#include <stddef.h>
#include <stdint.h>

#include "percpu/rseq.h"

/* The descriptor (32-byte aligned: version 0, flags 0, start, length, abort)
 * and the abort handler, preceded by the signature as the operand of a ud1
 * so that a disassembler stays in step. Labels: 1 start, 2 post-commit,
 * 3 descriptor, 4 abort, 5 arm, 6 fail. */
#define NH_RSEQ_PROLOGUE                                                  \
  ".pushsection __rseq_cs, \"aw\"\n\t"                                    \
  ".balign 32\n"                                                          \
  "3:\n\t"                                                                \
  ".long 0, 0\n\t"                                                        \
  ".quad 1f, 2f - 1f, 4f\n\t"                                             \
  ".popsection\n\t"                                                       \
  ".pushsection __rseq_failure, \"ax\"\n\t"                               \
  ".byte 0x0f, 0xb9, 0x3d\n\t"                                            \
  ".long 0x53053053\n"                                                    \
  "4:\n\t"                                                                \
  "jmp 5f\n\t"                                                            \
  ".popsection\n"                                                         \
  "5:\n\t"                                                                \
  "leaq 3b(%%rip), %[reg]\n\t"                                            \
  "movq %[reg], %%fs:8(%[rs])\n"                                          \
  "1:\n\t"                                                                \
  "movslq %%fs:4(%[rs]), %[reg]\n\t"                                      \
  "cmpq %[nslots], %[reg]\n\t"                                            \
  "jae 6f\n\t"                                                            \
  "shlq %%cl, %[reg]\n\t"                                                 \
  "addq %[base], %[reg]\n\t"

#define NH_RSEQ_IN                                                        \
  [rs] "r"(nh_rseq_g.rseq_off), [nslots] "m"(nh_rseq_g.nslots),           \
  [base] "m"(nh_rseq_g.base), "c"(nh_rseq_g.shift)

#define NH_RSEQ_STR2(x) #x
#define NH_RSEQ_STR(x) NH_RSEQ_STR2(x)
#define NH_RSEQ_COUNT(cls) NH_RSEQ_STR(NH_RSEQ_HDR_OFF) "(%[reg],%[" cls "],8)"
#define NH_RSEQ_LO(cls) NH_RSEQ_STR(NH_RSEQ_HDR_OFF) "+4(%[reg],%[" cls "],8)"
#define NH_RSEQ_HI(cls) NH_RSEQ_STR(NH_RSEQ_HDR_OFF) "+6(%[reg],%[" cls "],8)"

/* Pops the top block of (current CPU, cls), slots at soff. NULL when the
 * slab is empty or stopped. Counts a hit in the region (before the commit: a
 * pop aborted between the two counts twice). */
static inline __attribute__((always_inline)) void *nh_rseq_pop(uint64_t cls, uint64_t soff) {
  void *p;
  uint64_t reg, cnt, tmp;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "movzwl " NH_RSEQ_COUNT("cls") ", %k[cnt]\n\t"
                       "movzwl " NH_RSEQ_LO("cls") ", %k[tmp]\n\t"
                       "cmpl %k[tmp], %k[cnt]\n\t"
                       "jbe 6f\n\t"
                       "leaq (%[reg],%[soff]), %[tmp]\n\t"
                       "movq -8(%[tmp],%[cnt],8), %[p]\n\t"
                       "incq " NH_RSEQ_STR(NH_RSEQ_HITS_OFF) "(%[reg])\n\t"
                       "decl %k[cnt]\n\t"
                       "movw %w[cnt], " NH_RSEQ_COUNT("cls") "\n" /* commit */
                       "2:\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %k[p], %k[p]\n"
                       "7:\n"
                       : [p] "=&r"(p), [reg] "=&r"(reg), [cnt] "=&r"(cnt), [tmp] "=&r"(tmp)
                       : NH_RSEQ_IN, [cls] "r"(cls), [soff] "r"(soff)
                       : "memory", "cc");
  return p;
}

/* Pushes p on (current CPU, cls) if that CPU's region holds blocks of node
 * and the slab has room. 1 done, 0 not. */
static inline __attribute__((always_inline)) int nh_rseq_push(void *p, uint64_t cls, uint64_t soff,
                                                             int32_t node) {
  int ok;
  uint64_t reg, cnt, tmp;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "cmpl %[node], " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg])\n\t"
                       "jne 6f\n\t"
                       "movzwl " NH_RSEQ_COUNT("cls") ", %k[cnt]\n\t"
                       "movzwl " NH_RSEQ_HI("cls") ", %k[tmp]\n\t"
                       "cmpl %k[tmp], %k[cnt]\n\t"
                       "jae 6f\n\t"
                       "leaq (%[reg],%[soff]), %[tmp]\n\t"
                       "movq %[p], (%[tmp],%[cnt],8)\n\t"
                       "incl %k[cnt]\n\t"
                       "movw %w[cnt], " NH_RSEQ_COUNT("cls") "\n" /* commit */
                       "2:\n\t"
                       "movl $1, %[ok]\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %[ok], %[ok]\n"
                       "7:\n"
                       : [ok] "=&r"(ok), [reg] "=&r"(reg), [cnt] "=&r"(cnt), [tmp] "=&r"(tmp)
                       : NH_RSEQ_IN, [cls] "r"(cls), [soff] "r"(soff), [p] "r"(p), [node] "r"(node)
                       : "memory", "cc");
  return ok;
}

/* Copies up to n pointers from src into the free slots of (current CPU, cls)
 * and commits the new count. node >= 0: only if the CPU's region holds
 * blocks of node. Returns how many were pushed (0: wrong node, stopped,
 * full). */
static inline size_t nh_rseq_push_batch(void *const *src, uint64_t n, uint64_t cls, uint64_t soff,
                                        int32_t node) {
  uint64_t reg, h, cnt, m, i, y;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "testl %[node], %[node]\n\t"
                       "js 8f\n\t"
                       "cmpl %[node], " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg])\n\t"
                       "jne 6f\n"
                       "8:\n\t"
                       "leaq " NH_RSEQ_COUNT("cls") ", %[h]\n\t"
                       "movzwl (%[h]), %k[cnt]\n\t"
                       "movzwl 6(%[h]), %k[m]\n\t"
                       "subl %k[cnt], %k[m]\n\t" /* room = hi - count */
                       "jbe 6f\n\t"
                       "cmpq %[n], %[m]\n\t"
                       "cmovaq %[n], %[m]\n\t" /* m = min(room, n) */
                       "testq %[m], %[m]\n\t"
                       "jz 6f\n\t"
                       "addq %[soff], %[reg]\n\t"
                       "leaq (%[reg],%[cnt],8), %[reg]\n\t" /* first free slot */
                       "xorl %k[i], %k[i]\n"
                       "9:\n\t"
                       "movq (%[src],%[i],8), %[y]\n\t"
                       "movq %[y], (%[reg],%[i],8)\n\t"
                       "incq %[i]\n\t"
                       "cmpq %[m], %[i]\n\t"
                       "jb 9b\n\t"
                       "addl %k[m], %k[cnt]\n\t"
                       "movw %w[cnt], (%[h])\n" /* commit */
                       "2:\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %k[m], %k[m]\n"
                       "7:\n"
                       : [m] "=&r"(m), [reg] "=&r"(reg), [h] "=&r"(h), [cnt] "=&r"(cnt),
                         [i] "=&r"(i), [y] "=&r"(y)
                       : NH_RSEQ_IN, [cls] "r"(cls), [soff] "r"(soff), [src] "r"(src), [n] "r"(n),
                         [node] "r"(node)
                       : "memory", "cc");
  return (size_t)m;
}

/* Moves up to n pointers from the top of (current CPU, cls) into out and
 * commits the lower count; *node gets the node of the region they came from.
 * Returns how many (0: empty or stopped). */
static inline size_t nh_rseq_pop_batch(void **out, uint64_t n, uint64_t cls, uint64_t soff,
                                       int32_t *node) {
  uint64_t reg, h, cnt, m, i, y, x;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "leaq " NH_RSEQ_COUNT("cls") ", %[h]\n\t"
                       "movzwl (%[h]), %k[cnt]\n\t"
                       "movzwl 4(%[h]), %k[y]\n\t"
                       "movl %k[cnt], %k[m]\n\t"
                       "subl %k[y], %k[m]\n\t" /* available = count - lo */
                       "jbe 6f\n\t"
                       "cmpq %[n], %[m]\n\t"
                       "cmovaq %[n], %[m]\n\t"
                       "testq %[m], %[m]\n\t"
                       "jz 6f\n\t"
                       "subl %k[m], %k[cnt]\n\t" /* new count: slots [cnt, cnt + m) leave */
                       "leaq (%[reg],%[soff]), %[i]\n\t"
                       "leaq (%[i],%[cnt],8), %[i]\n\t"
                       "movl " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg]), %k[reg]\n\t"
                       "movq %[i], %[y]\n\t"
                       "xorl %k[i], %k[i]\n"
                       "9:\n\t"
                       "movq (%[y],%[i],8), %[x]\n\t"
                       "movq %[x], (%[out],%[i],8)\n\t"
                       "incq %[i]\n\t"
                       "cmpq %[m], %[i]\n\t"
                       "jb 9b\n\t"
                       "movw %w[cnt], (%[h])\n" /* commit */
                       "2:\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %k[m], %k[m]\n"
                       "7:\n"
                       : [m] "=&r"(m), [reg] "=&r"(reg), [h] "=&r"(h), [cnt] "=&r"(cnt),
                         [i] "=&r"(i), [y] "=&r"(y), [x] "=&r"(x)
                       : NH_RSEQ_IN, [cls] "r"(cls), [soff] "r"(soff), [out] "r"(out), [n] "r"(n)
                       : "memory", "cc");
  *node = m ? (int32_t)reg : -1;
  return (size_t)m;
}

#endif
