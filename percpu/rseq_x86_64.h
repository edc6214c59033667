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
 *     +0                int32 node     the node this CPU's cache holds blocks of
 *     +NH_RSEQ_TOP_OFF  word[class]    the commit word: hits << 16 | count
 *     +NH_RSEQ_BND_OFF  bounds[class]  8 bytes each: u16 lo, u16 hi
 * count is the absolute index (in 8-byte slots from the region's start) of
 * the first free slot of the class's slab, so a slot is addressed from the
 * region alone; lo and hi are absolute too. A pop needs count > lo and
 * commits word + 0xffff (count - 1, hits + 1: the hit counter costs no
 * instruction of its own), a push needs count < hi and commits word + 1.
 * Normal: lo = the class's first slot, hi = lo + capacity. Stopped (a
 * drainer owns the slabs, see pcpu.c): lo = 0xffff, hi = 0, so every
 * sequence fails without a store.
 */
#ifndef NH_PERCPU_RSEQ_X86_64_H
#define NH_PERCPU_RSEQ_X86_64_H

#include <stddef.h>
#include <stdint.h>

#include "percpu/rseq.h"

/* The descriptor (32-byte aligned: version 0, flags 0, start, length, abort)
 * and the abort handler, preceded by the signature as the operand of a ud1
 * so that a disassembler stays in step. Labels: 1 start, 2 post-commit,
 * 3 descriptor, 4 abort, 5 arm; `fail` is where a CPU outside the table
 * goes. The CPU's region is base + (cpu << NH_RSEQ_STRIDE_SHIFT): a shift
 * by a constant, one cycle (a multiplication by a stride read from memory
 * took three, on the path every sequence waits for: a malloc+free pair was
 * 25% slower in a test of the two sequences alone). */
#define NH_RSEQ_PROLOGUE_TO(fail)                                         \
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
  "jae " fail "\n\t"                                                      \
  "shlq $" NH_RSEQ_STR(NH_RSEQ_STRIDE_SHIFT) ", %[reg]\n\t"                 \
  "addq %[base], %[reg]\n\t"
#define NH_RSEQ_PROLOGUE NH_RSEQ_PROLOGUE_TO("6f")

#define NH_RSEQ_IN                                                        \
  [rs] "r"(nh_rseq_g.rseq_off), [nslots] "m"(nh_rseq_g.nslots),           \
  [base] "m"(nh_rseq_g.base)

#define NH_RSEQ_STR2(x) #x
#define NH_RSEQ_STR(x) NH_RSEQ_STR2(x)
#define NH_RSEQ_WORD(cls) NH_RSEQ_STR(NH_RSEQ_TOP_OFF) "(%[reg],%[" cls "],8)"
#define NH_RSEQ_LO(cls) NH_RSEQ_STR(NH_RSEQ_BND_OFF) "(%[reg],%[" cls "],8)"
#define NH_RSEQ_HI(cls) NH_RSEQ_STR(NH_RSEQ_BND_OFF) "+2(%[reg],%[" cls "],8)"

/* Pops the top block of (current CPU, cls). NULL when the slab is empty or
 * stopped. asm goto: the empty case branches straight out, the common case
 * falls through with no test. */
static inline __attribute__((always_inline)) void *nh_rseq_pop(uint64_t cls) {
  void *p;
  uint64_t reg, w, cnt;
  __asm__ __volatile__ goto(NH_RSEQ_PROLOGUE_TO("%l[empty]")
                            "movq " NH_RSEQ_WORD("cls") ", %[w]\n\t"
                            "movzwl %w[w], %k[cnt]\n\t"
                            "cmpw " NH_RSEQ_LO("cls") ", %w[cnt]\n\t"
                            "jbe %l[empty]\n\t"
                            "movq -8(%[reg],%[cnt],8), %[p]\n\t"
                            "addq $0xffff, %[w]\n\t" /* count - 1, hits + 1 */
                            "movq %[w], " NH_RSEQ_WORD("cls") "\n" /* commit */
                            "2:\n\t"
                            : [p] "=&r"(p), [reg] "=&r"(reg), [w] "=&r"(w), [cnt] "=&r"(cnt)
                            : NH_RSEQ_IN, [cls] "r"(cls)
                            : "memory", "cc"
                            : empty);
  if (p == NULL) __builtin_unreachable(); /* slots hold blocks: the caller need not test */
  return p;
empty:
  return NULL;
}

/* Pushes p on (current CPU, cls) if that CPU's region holds blocks of node
 * and the slab has room. 1 done, 0 not, -1 p is already the slab's top
 * block (freed twice: the last free on this CPU's slab was of p). */
static inline __attribute__((always_inline)) int nh_rseq_push(void *p, uint64_t cls, int32_t node) {
  uint64_t reg, w, cnt;
  __asm__ __volatile__ goto(NH_RSEQ_PROLOGUE_TO("%l[no]")
                            "cmpl %[node], " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg])\n\t"
                            "jne %l[no]\n\t"
                            "movq " NH_RSEQ_WORD("cls") ", %[w]\n\t"
                            "movzwl %w[w], %k[cnt]\n\t"
                            "cmpw " NH_RSEQ_HI("cls") ", %w[cnt]\n\t"
                            "jae %l[no]\n\t"
                            "cmpw " NH_RSEQ_LO("cls") ", %w[cnt]\n\t"
                            "jbe 8f\n\t" /* empty: the slot below is not this slab's */
                            "cmpq %[p], -8(%[reg],%[cnt],8)\n\t"
                            "je %l[dup]\n"
                            "8:\n\t"
                            "movq %[p], (%[reg],%[cnt],8)\n\t"
                            "incq %[w]\n\t"
                            "movq %[w], " NH_RSEQ_WORD("cls") "\n" /* commit */
                            "2:\n\t"
                            : [reg] "=&r"(reg), [w] "=&r"(w), [cnt] "=&r"(cnt)
                            : NH_RSEQ_IN, [cls] "r"(cls), [p] "r"(p), [node] "r"(node)
                            : "memory", "cc"
                            : no, dup);
  return 1;
no:
  return 0;
dup:
  return -1;
}

/* Copies up to n pointers from src into the free slots of (current CPU, cls)
 * and commits the new count. node >= 0: only if the CPU's region holds
 * blocks of node. Returns how many were pushed (0: wrong node, stopped,
 * full). */
static inline size_t nh_rseq_push_batch(void *const *src, uint64_t n, uint64_t cls, int32_t node) {
  uint64_t reg, w, cnt, m, i, y, s;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "testl %[node], %[node]\n\t"
                       "js 8f\n\t"
                       "cmpl %[node], " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg])\n\t"
                       "jne 6f\n"
                       "8:\n\t"
                       "movq " NH_RSEQ_WORD("cls") ", %[w]\n\t"
                       "movzwl %w[w], %k[cnt]\n\t"
                       "movzwl " NH_RSEQ_HI("cls") ", %k[m]\n\t"
                       "subl %k[cnt], %k[m]\n\t" /* room = hi - count */
                       "jbe 6f\n\t"
                       "cmpq %[n], %[m]\n\t"
                       "cmovaq %[n], %[m]\n\t" /* m = min(room, n) */
                       "testq %[m], %[m]\n\t"
                       "jz 6f\n\t"
                       "leaq (%[reg],%[cnt],8), %[s]\n\t" /* first free slot */
                       "xorl %k[i], %k[i]\n"
                       "9:\n\t"
                       "movq (%[src],%[i],8), %[y]\n\t"
                       "movq %[y], (%[s],%[i],8)\n\t"
                       "incq %[i]\n\t"
                       "cmpq %[m], %[i]\n\t"
                       "jb 9b\n\t"
                       "addq %[m], %[w]\n\t"
                       "movq %[w], " NH_RSEQ_WORD("cls") "\n" /* commit */
                       "2:\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %k[m], %k[m]\n"
                       "7:\n"
                       : [m] "=&r"(m), [reg] "=&r"(reg), [w] "=&r"(w), [cnt] "=&r"(cnt),
                         [i] "=&r"(i), [y] "=&r"(y), [s] "=&r"(s)
                       : NH_RSEQ_IN, [cls] "r"(cls), [src] "r"(src), [n] "r"(n), [node] "r"(node)
                       : "memory", "cc");
  return (size_t)m;
}

/* Moves up to n pointers from the top of (current CPU, cls) into out and
 * commits the lower count; *node gets the node of the region they came from.
 * Returns how many (0: empty or stopped). */
static inline size_t nh_rseq_pop_batch(void **out, uint64_t n, uint64_t cls, int32_t *node) {
  uint64_t reg, w, cnt, m, i, y, x;
  __asm__ __volatile__(NH_RSEQ_PROLOGUE
                       "movq " NH_RSEQ_WORD("cls") ", %[w]\n\t"
                       "movzwl %w[w], %k[cnt]\n\t"
                       "movzwl " NH_RSEQ_LO("cls") ", %k[y]\n\t"
                       "movl %k[cnt], %k[m]\n\t"
                       "subl %k[y], %k[m]\n\t" /* available = count - lo */
                       "jbe 6f\n\t"
                       "cmpq %[n], %[m]\n\t"
                       "cmovaq %[n], %[m]\n\t"
                       "testq %[m], %[m]\n\t"
                       "jz 6f\n\t"
                       "subq %[m], %[cnt]\n\t" /* new count: slots [cnt, cnt + m) leave */
                       "leaq (%[reg],%[cnt],8), %[y]\n\t"
                       "xorl %k[i], %k[i]\n"
                       "9:\n\t"
                       "movq (%[y],%[i],8), %[x]\n\t"
                       "movq %[x], (%[out],%[i],8)\n\t"
                       "incq %[i]\n\t"
                       "cmpq %[m], %[i]\n\t"
                       "jb 9b\n\t"
                       "subq %[m], %[w]\n\t"
                       "movq %[w], " NH_RSEQ_WORD("cls") "\n" /* commit */
                       "2:\n\t"
                       "movl " NH_RSEQ_STR(NH_RSEQ_NODE_OFF) "(%[reg]), %k[reg]\n\t"
                       "jmp 7f\n"
                       "6:\n\t"
                       "xorl %k[m], %k[m]\n"
                       "7:\n"
                       : [m] "=&r"(m), [reg] "=&r"(reg), [w] "=&r"(w), [cnt] "=&r"(cnt),
                         [i] "=&r"(i), [y] "=&r"(y), [x] "=&r"(x)
                       : NH_RSEQ_IN, [cls] "r"(cls), [out] "r"(out), [n] "r"(n)
                       : "memory", "cc");
  *node = m ? (int32_t)reg : -1;
  return (size_t)m;
}

#endif
