/*
 * api/cxx_new.c: C++ operator new and operator delete, every replaceable
 * form, so that a C++ program's `new` and `delete` take the same inline fast
 * paths as malloc and free instead of going through libstdc++'s wrappers.
 *
 * Written in C under the Itanium C++ ABI's mangled names (asm labels), so the
 * library does not depend on libstdc++. The forms (docs/dropin.md):
 *
 *   new:    plain, array, nothrow, aligned (std::align_val_t), aligned +
 *           nothrow, each as operator new and operator new[];
 *   delete: plain, nothrow, sized, aligned, aligned + nothrow, sized +
 *           aligned, each as operator delete and operator delete[].
 *
 * A failed new keeps C++'s rules: while std::get_new_handler() returns a
 * handler, call it and try again; with none, throw std::bad_alloc (the
 * nothrow forms return NULL). An alignment that is not a power of two is a
 * failure at once, without the handler loop: no handler can make it valid.
 * std::get_new_handler and std::__throw_bad_alloc are weak references: they
 * are there whenever the process has loaded libstdc++ (every C++ program
 * has). If a throwing new fails without them, the process stops with a
 * message. A handler that throws out of a nothrow new is not caught here
 * (C has no catch): the exception leaves the nothrow new.
 *
 * Deletes do every check free does (foreign pointer, interior pointer,
 * double free) under the name "operator delete" or "operator delete[]"; the
 * sizes and alignments given to delete are not used: the block's own
 * metadata says what it is, and a size-keyed shortcut would skip the checks.
 *
 * Built with -fexceptions (api/CMakeLists.txt), so that std::bad_alloc and a
 * throwing new_handler unwind through these frames.
 */
#include <stdbool.h>
#include <stddef.h>

#include "api/internal.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*nh_new_handler)(void);

/* libstdc++'s std::get_new_handler() and std::__throw_bad_alloc(). */
extern nh_new_handler nh_cxx_get_new_handler(void) __asm__("_ZSt15get_new_handlerv")
    __attribute__((weak));
extern _Noreturn void nh_cxx_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv")
    __attribute__((weak));

static bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

static nh_new_handler current_handler(void) {
  return nh_cxx_get_new_handler ? nh_cxx_get_new_handler() : NULL;
}

static _Noreturn void throw_bad_alloc(const char *call, size_t size) {
  if (nh_cxx_throw_bad_alloc) nh_cxx_throw_bad_alloc();
  nh_fatal("%s(%zu): out of memory, and no C++ runtime (libstdc++'s std::__throw_bad_alloc) "
           "is loaded to throw std::bad_alloc", call, size);
}

/* Everything but the fast path: the new_handler loop, then the failure. */
static __attribute__((noinline, cold)) void *new_full(size_t size, size_t align, bool nothrow,
                                                       const char *call) {
  if (is_pow2(align)) {
    for (;;) {
      void *p = nh_alloc_level(size, align, nh_default_level);
      if (p) return p;
      nh_new_handler h = current_handler();
      if (!h) break;
      h();
    }
  }
  if (nothrow) return NULL;
  throw_bad_alloc(call, size);
}

/* The unaligned forms: malloc's fast path. */
static inline void *new_plain(size_t size, bool nothrow, const char *call) {
  void *p = nh_alloc_fast(size);
  return __builtin_expect(p != NULL, 1) ? p : new_full(size, NH_MIN_ALIGN, nothrow, call);
}

/* The aligned forms: aligned_alloc's path (inline for align <= NH_MIN_ALIGN). */
static inline void *new_aligned(size_t size, size_t align, bool nothrow, const char *call) {
  void *p = is_pow2(align) ? nh_alloc_level(size, align, nh_default_level) : NULL;
  return __builtin_expect(p != NULL, 1) ? p : new_full(size, align, nothrow, call);
}

/* ---- operator new ------------------------------------------------------------ */

void *nh_cxx_new(size_t size) __asm__("_Znwm");
void *nh_cxx_new_array(size_t size) __asm__("_Znam");
void *nh_cxx_new_nothrow(size_t size, const void *tag) __asm__("_ZnwmRKSt9nothrow_t");
void *nh_cxx_new_array_nothrow(size_t size, const void *tag) __asm__("_ZnamRKSt9nothrow_t");
void *nh_cxx_new_aligned(size_t size, size_t align) __asm__("_ZnwmSt11align_val_t");
void *nh_cxx_new_array_aligned(size_t size, size_t align) __asm__("_ZnamSt11align_val_t");
void *nh_cxx_new_aligned_nothrow(size_t size, size_t align, const void *tag)
    __asm__("_ZnwmSt11align_val_tRKSt9nothrow_t");
void *nh_cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *tag)
    __asm__("_ZnamSt11align_val_tRKSt9nothrow_t");

EXPORT void *nh_cxx_new(size_t size) { return new_plain(size, false, "operator new"); }
EXPORT void *nh_cxx_new_array(size_t size) { return new_plain(size, false, "operator new[]"); }
EXPORT void *nh_cxx_new_nothrow(size_t size, const void *tag) {
  return new_plain(size, true, "operator new");
}
EXPORT void *nh_cxx_new_array_nothrow(size_t size, const void *tag) {
  return new_plain(size, true, "operator new[]");
}
EXPORT void *nh_cxx_new_aligned(size_t size, size_t align) {
  return new_aligned(size, align, false, "operator new");
}
EXPORT void *nh_cxx_new_array_aligned(size_t size, size_t align) {
  return new_aligned(size, align, false, "operator new[]");
}
EXPORT void *nh_cxx_new_aligned_nothrow(size_t size, size_t align, const void *tag) {
  return new_aligned(size, align, true, "operator new");
}
EXPORT void *nh_cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *tag) {
  return new_aligned(size, align, true, "operator new[]");
}

/* ---- operator delete ------------------------------------------------------------ */

void nh_cxx_delete(void *p) __asm__("_ZdlPv");
void nh_cxx_delete_array(void *p) __asm__("_ZdaPv");
void nh_cxx_delete_nothrow(void *p, const void *tag) __asm__("_ZdlPvRKSt9nothrow_t");
void nh_cxx_delete_array_nothrow(void *p, const void *tag) __asm__("_ZdaPvRKSt9nothrow_t");
void nh_cxx_delete_sized(void *p, size_t size) __asm__("_ZdlPvm");
void nh_cxx_delete_array_sized(void *p, size_t size) __asm__("_ZdaPvm");
void nh_cxx_delete_aligned(void *p, size_t align) __asm__("_ZdlPvSt11align_val_t");
void nh_cxx_delete_array_aligned(void *p, size_t align) __asm__("_ZdaPvSt11align_val_t");
void nh_cxx_delete_aligned_nothrow(void *p, size_t align, const void *tag)
    __asm__("_ZdlPvSt11align_val_tRKSt9nothrow_t");
void nh_cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *tag)
    __asm__("_ZdaPvSt11align_val_tRKSt9nothrow_t");
void nh_cxx_delete_sized_aligned(void *p, size_t size, size_t align)
    __asm__("_ZdlPvmSt11align_val_t");
void nh_cxx_delete_array_sized_aligned(void *p, size_t size, size_t align)
    __asm__("_ZdaPvmSt11align_val_t");

EXPORT void nh_cxx_delete(void *p) { nh_free_named(p, "operator delete"); }
EXPORT void nh_cxx_delete_array(void *p) { nh_free_named(p, "operator delete[]"); }
EXPORT void nh_cxx_delete_nothrow(void *p, const void *tag) { nh_free_named(p, "operator delete"); }
EXPORT void nh_cxx_delete_array_nothrow(void *p, const void *tag) {
  nh_free_named(p, "operator delete[]");
}
EXPORT void nh_cxx_delete_sized(void *p, size_t size) { nh_free_named(p, "operator delete"); }
EXPORT void nh_cxx_delete_array_sized(void *p, size_t size) {
  nh_free_named(p, "operator delete[]");
}
EXPORT void nh_cxx_delete_aligned(void *p, size_t align) { nh_free_named(p, "operator delete"); }
EXPORT void nh_cxx_delete_array_aligned(void *p, size_t align) {
  nh_free_named(p, "operator delete[]");
}
EXPORT void nh_cxx_delete_aligned_nothrow(void *p, size_t align, const void *tag) {
  nh_free_named(p, "operator delete");
}
EXPORT void nh_cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *tag) {
  nh_free_named(p, "operator delete[]");
}
EXPORT void nh_cxx_delete_sized_aligned(void *p, size_t size, size_t align) {
  nh_free_named(p, "operator delete");
}
EXPORT void nh_cxx_delete_array_sized_aligned(void *p, size_t size, size_t align) {
  nh_free_named(p, "operator delete[]");
}
