/*
 * numa/track.h: telling ASan and Valgrind what numaheap's blocks are, so a
 * use-after-free or an overflow in a program running on numaheap is reported
 * by those tools as it would be on glibc (mimalloc's track.h is the model).
 *
 *   nh_track_alloc(p, size)   p is a live block of size usable bytes
 *   nh_track_free(p, size)    p's block is free: any access is an error
 *   nh_track_open(p, n)       the allocator itself is about to touch n bytes
 *                             of a free block (its link words)
 *   nh_track_close(p, n)      ...and is done with them
 *   nh_track_unmapped(p)      p's block is freed by unmapping it (huge blocks)
 *
 * ASan is on when the library is compiled with -fsanitize=address; Valgrind
 * when it is configured with -DNH_VALGRIND=ON (client requests cost a few
 * instructions, so release builds leave them out). Otherwise all are no-ops.
 */
#ifndef NH_NUMA_TRACK_H
#define NH_NUMA_TRACK_H

#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NH_TRACK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NH_TRACK_ASAN 1
#endif

#if defined(NH_TRACK_ASAN)
#include <sanitizer/asan_interface.h>
#define nh_track_alloc(p, size) ASAN_UNPOISON_MEMORY_REGION((p), (size))
#define nh_track_free(p, size) ASAN_POISON_MEMORY_REGION((p), (size))
#define nh_track_open(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define nh_track_close(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define nh_track_unmapped(p) ((void)(p)) /* unmapped: the next touch faults anyway */
#define NH_TRACKING 1
#elif defined(NH_VALGRIND)
#include <valgrind/memcheck.h>
#define nh_track_alloc(p, size) VALGRIND_MALLOCLIKE_BLOCK((p), (size), 0, 0)
#define nh_track_free(p, size) VALGRIND_FREELIKE_BLOCK((p), 0)
#define nh_track_open(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#define nh_track_close(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define nh_track_unmapped(p) VALGRIND_FREELIKE_BLOCK((p), 0)
#define NH_TRACKING 1
#else
#define nh_track_alloc(p, size) ((void)(p), (void)(size))
#define nh_track_free(p, size) ((void)(p), (void)(size))
#define nh_track_open(p, n) ((void)(p), (void)(n))
#define nh_track_close(p, n) ((void)(p), (void)(n))
#define nh_track_unmapped(p) ((void)(p))
#define NH_TRACKING 0
#endif

#endif
