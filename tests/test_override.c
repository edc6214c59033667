/*
 * tests/test_override.c: the malloc override, through libnumaheap.so linked
 * as an ordinary library (the way `-lnumaheap` adopts it). Every entry point
 * of api/override.c: its result lands on numaheap, its edge cases follow
 * glibc's contract, and a bad pointer stops the process with a message that
 * names the call and the address (checked in a forked child: SIGABRT and the
 * exact text on stderr).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "numaheap/numaheap.h"

/* Defeats the compiler's knowledge of malloc/free semantics, so calls that
 * are meant to fail are really made. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;

static int is_numaheap(const void *p) { return p != NULL && nh_ptr_node(p) >= 0; }

/* ---- every entry point lands on numaheap ------------------------------------------ */

static void test_entry_points_are_numaheap(void **state) {
  void *p = v_malloc(100);
  assert_true(is_numaheap(p));
  char *s = strdup("numaheap");
  assert_true(is_numaheap(s));
  char *d = NULL;
  assert_true(asprintf(&d, "%d-%s", 42, s) > 0);
  assert_true(is_numaheap(d));
  void *c = v_calloc(10, 10);
  assert_true(is_numaheap(c));
  void *a = NULL;
  assert_int_equal(posix_memalign(&a, 64, 100), 0);
  assert_true(is_numaheap(a));
  void *al = aligned_alloc(128, 256);
  assert_true(is_numaheap(al));
  void *m = memalign(256, 10);
  assert_true(is_numaheap(m));
  void *v = valloc(10);
  assert_true(is_numaheap(v));
  void *pv = pvalloc(10);
  assert_true(is_numaheap(pv));
  void *r = v_realloc(NULL, 50);
  assert_true(is_numaheap(r));
  void *ra = v_reallocarray(NULL, 10, 10);
  assert_true(is_numaheap(ra));
  void *objs[] = {p, s, d, c, a, al, m, v, pv, r, ra};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) v_free(objs[i]);
}

/* glibc's internal names resolve to ours (dlsym finds the first definition). */
static void test_libc_aliases(void **state) {
  void *(*lm)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
  void (*lf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
  void *(*lc)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_calloc");
  void *(*lr)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "__libc_realloc");
  void *(*lma)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_memalign");
  assert_non_null(lm);
  assert_non_null(lf);
  assert_non_null(lc);
  assert_non_null(lr);
  assert_non_null(lma);
  void *p = lm(40);
  assert_true(is_numaheap(p));
  p = lr(p, 4000);
  assert_true(is_numaheap(p));
  lf(p);
  p = lc(3, 5);
  assert_true(is_numaheap(p));
  lf(p);
  p = lma(1024, 3);
  assert_true(is_numaheap(p));
  assert_int_equal((uintptr_t)p % 1024, 0);
  lf(p);
}

/* cfree and C23's sized frees free numaheap blocks, and check them as free does. */
static void test_other_frees(void **state) {
  static const char *const names[] = {"cfree", "free_sized", "free_aligned_sized"};
  for (int i = 0; i < 3; i++) {
    void *f = dlsym(RTLD_DEFAULT, names[i]);
    assert_non_null(f);
    char *p = v_malloc(100), *q = aligned_alloc(64, 128);
    if (i == 0) ((void (*)(void *))f)(p), ((void (*)(void *))f)(q);
    if (i == 1) ((void (*)(void *, size_t))f)(p, 100), ((void (*)(void *, size_t))f)(q, 128);
    if (i == 2)
      ((void (*)(void *, size_t, size_t))f)(p, 16, 100), ((void (*)(void *, size_t, size_t))f)(q, 64, 128);
  }
}

static void do_cfree(void *p) { ((void (*)(void *))dlsym(RTLD_DEFAULT, "cfree"))(p); }
static void do_free_sized(void *p) {
  ((void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized"))(p, 8);
}

/* ---- sizes and contents ------------------------------------------------------------ */

static void test_usable_size_covers_request(void **state) {
  assert_int_equal(malloc_usable_size(NULL), 0);
  for (size_t size = 0; size < ((size_t)8 << 20); size = size < 64 ? size + 1 : size * 5 / 4) {
    unsigned char *p = v_malloc(size);
    assert_non_null(p);
    size_t u = malloc_usable_size(p);
    assert_true(u >= size);
    memset(p, 0xab, u); /* the whole usable size is ours to write */
    assert_int_equal((uintptr_t)p % 16, 0);
    v_free(p);
  }
}

static void test_calloc_zero_and_overflow(void **state) {
  for (size_t n = 1; n < ((size_t)4 << 20); n *= 3) {
    unsigned char *p = v_malloc(n);
    memset(p, 0xff, n); /* dirty a block of this size so calloc must clear it */
    v_free(p);
    unsigned char *z = v_calloc(n, 1);
    assert_non_null(z);
    for (size_t i = 0; i < n; i += 61) assert_int_equal(z[i], 0);
    assert_int_equal(z[n - 1], 0);
    v_free(z);
  }
  errno = 0;
  assert_null(v_calloc(SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
}

static void test_malloc_impossible_size(void **state) {
  errno = 0;
  assert_null(v_malloc(SIZE_MAX - 4096));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(v_malloc((size_t)PTRDIFF_MAX + 1));
  assert_int_equal(errno, ENOMEM);
}

static void test_realloc_keeps_contents(void **state) {
  size_t size = 1;
  unsigned char *p = v_malloc(size);
  p[0] = 1;
  for (size_t next = 3; next < ((size_t)16 << 20); next = next * 3 + 1) {
    p = v_realloc(p, next);
    assert_non_null(p);
    for (size_t i = 0; i < size; i += 97) assert_int_equal(p[i], (unsigned char)(i * 7 + 1));
    for (size_t i = size; i < next; i++) p[i] = (unsigned char)(i * 7 + 1);
    size = next;
  }
  for (size_t next = size / 5; next > 0; next /= 5) { /* shrinking keeps the prefix */
    p = v_realloc(p, next);
    assert_non_null(p);
    for (size_t i = 0; i < next; i += 13) assert_int_equal(p[i], (unsigned char)(i * 7 + 1));
  }
  v_free(p);
}

static void test_realloc_failure_leaves_block(void **state) {
  char *p = v_malloc(32);
  strcpy(p, "still here");
  errno = 0;
  assert_null(v_realloc(p, SIZE_MAX - 100));
  assert_int_equal(errno, ENOMEM);
  assert_string_equal(p, "still here");
  errno = 0;
  assert_null(v_reallocarray(p, SIZE_MAX / 4, 8));
  assert_int_equal(errno, ENOMEM);
  assert_string_equal(p, "still here");
  p = v_reallocarray(p, 100, 10);
  assert_non_null(p);
  assert_string_equal(p, "still here");
  assert_true(malloc_usable_size(p) >= 1000);
  v_free(p);
}

static void test_realloc_zero_frees(void **state) {
  void *p = v_malloc(100);
  void *q = v_realloc(p, 0); /* frees p; a minimal block (or NULL) that free accepts */
  v_free(q);
}

/* ---- alignment entry points ---------------------------------------------------------- */

static void test_posix_memalign(void **state) {
  for (size_t align = sizeof(void *); align <= ((size_t)8 << 20); align *= 2) {
    for (size_t size = 1; size < ((size_t)1 << 20); size = size * 9 + 7) {
      void *p = (void *)1;
      assert_int_equal(posix_memalign(&p, align, size), 0);
      assert_int_equal((uintptr_t)p % align, 0);
      assert_true(malloc_usable_size(p) >= size);
      memset(p, 1, size);
      v_free(p);
    }
  }
  void *untouched = (void *)&untouched;
  assert_int_equal(posix_memalign(&untouched, 0, 8), EINVAL);
  assert_int_equal(posix_memalign(&untouched, 24, 8), EINVAL);
  assert_int_equal(posix_memalign(&untouched, 4, 8), EINVAL); /* not a multiple of sizeof(void *) */
  assert_int_equal(posix_memalign(&untouched, 64, SIZE_MAX - 10), ENOMEM);
  assert_ptr_equal(untouched, (void *)&untouched);
}

static void test_aligned_alloc_memalign(void **state) {
  for (size_t align = 1; align <= ((size_t)4 << 20); align *= 4) {
    void *p = aligned_alloc(align, 3 * align);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % align, 0);
    v_free(p);
  }
  errno = 0;
  assert_null(aligned_alloc(48, 96));
  assert_int_equal(errno, EINVAL);
  void *p = memalign(48, 100); /* glibc rounds a non power of two up: 64 */
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 64, 0);
  v_free(p);
  p = memalign(0, 10);
  assert_non_null(p);
  v_free(p);
  errno = 0;
  assert_null(memalign((size_t)1 << 63, 10));
  assert_int_equal(errno, EINVAL);
}

static void test_valloc_pvalloc(void **state) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  void *v = valloc(100);
  assert_int_equal((uintptr_t)v % pg, 0);
  void *pv = pvalloc(pg + 1);
  assert_int_equal((uintptr_t)pv % pg, 0);
  assert_true(malloc_usable_size(pv) >= 2 * pg);
  v_free(v);
  v_free(pv);
  errno = 0;
  assert_null(pvalloc(SIZE_MAX - 10));
  assert_int_equal(errno, ENOMEM);
}

/* ---- malloc_trim, malloc_stats, mallinfo2, mallopt, malloc_info -------------------------- */

/* Runs fn with fd 2 redirected to a pipe; returns what it wrote (static). */
static const char *capture_stderr(void (*fn)(void)) {
  static char buf[65536];
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fds[1], 2);
  close(fds[1]);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  ssize_t n, total = 0;
  while ((n = read(fds[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0) total += n;
  close(fds[0]);
  buf[total] = '\0';
  return buf;
}

static void call_malloc_stats(void) { malloc_stats(); }

static void test_trim_and_stats(void **state) {
  void *big = v_malloc((size_t)6 << 20);
  memset(big, 1, (size_t)6 << 20);
  v_free(big);
  assert_int_equal(malloc_trim(0), 1);
  const char *out = capture_stderr(call_malloc_stats);
  assert_non_null(strstr(out, "numaheap statistics"));
  assert_non_null(strstr(out, "total"));
}

static void test_mallinfo2_and_mallopt(void **state) {
  void *keep = v_malloc((size_t)1 << 20);
  memset(keep, 1, (size_t)1 << 20);
  struct mallinfo2 mi = mallinfo2();
  assert_true(mi.arena >= ((size_t)1 << 20));
  assert_true(mi.uordblks >= ((size_t)1 << 20));
  assert_true(mi.uordblks + mi.fordblks == mi.arena);
  assert_int_equal(mallopt(M_ARENA_MAX, 2), 1); /* accepted, glibc tuning has no meaning here */
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_int_equal(malloc_info(0, f), 0);
  fclose(f);
  assert_non_null(strstr(text, "<malloc version=\"numaheap-"));
  assert_non_null(strstr(text, "</malloc>"));
  v_free(text);
  errno = 0;
  assert_int_equal(malloc_info(1, stdout), -1);
  assert_int_equal(errno, EINVAL);
  v_free(keep);
}

/* ---- bad pointers stop the process ------------------------------------------------------ */

/* Runs fn(arg) in a child with stderr captured; expects SIGABRT and stderr
 * to contain "numaheap: <call>(<arg as %p>): <reason>". */
static void expect_abort_either(void (*fn)(void *), void *arg, const char *call,
                                const char *reason, const char *or_this);
static void expect_abort(void (*fn)(void *), void *arg, const char *call, const char *reason) {
  expect_abort_either(fn, arg, call, reason, NULL);
}
/* The same, also content with "<arg as %p> <or_this>" (a second free caught
 * after the call: numa/heap.h). */
static void expect_abort_either(void (*fn)(void *), void *arg, const char *call,
                                const char *reason, const char *or_this) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    alarm(20);
    fn(arg);
    _exit(0); /* reaching here is the failure: the parent sees exit status 0 */
  }
  close(fds[1]);
  char out[4096];
  ssize_t n, total = 0;
  while ((n = read(fds[0], out + total, sizeof out - 1 - (size_t)total)) > 0) total += n;
  close(fds[0]);
  out[total] = '\0';
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  char want[256], other[256];
  snprintf(want, sizeof want, "numaheap: %s(%p): %s\n", call, arg, reason);
  snprintf(other, sizeof other, "%p %s", arg, or_this ? or_this : "");
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
    fail_msg("%s(%p): expected SIGABRT, got status 0x%x; stderr: %s", call, arg, status, out);
  if (strstr(out, want) == NULL && (or_this == NULL || strstr(out, other) == NULL))
    fail_msg("expected \"%s\"%s%s on stderr, got \"%s\"", want, or_this ? " or " : "",
             or_this ? other : "", out);
}

static void do_free(void *p) { v_free(p); }
/* A second free, then what finds it if the call could not: every cache
 * returned to the spans (malloc_trim), and allocations of its size. */
static void do_free_again(void *p) {
  v_free(p);
  malloc_trim(0);
}
static void do_realloc(void *p) { (void)v_realloc(p, 100); }
static void do_usable(void *p) { (void)malloc_usable_size(p); }

static const char *const R_INSIDE = "pointer inside a block, not at its start";
static const char *const R_DOUBLE = "block already freed (double free)";
static const char *const R_TWICE = "was freed twice";

/* A second free of p stops the process: at the call, or (numa/heap.h) once
 * the caches return p's two copies. */
static void expect_double_free(void *p) {
  expect_abort_either(do_free_again, p, "free", R_DOUBLE, R_TWICE);
}
static const char *const R_FOREIGN = "pointer not allocated by numaheap";

static void test_bad_pointer_inside_block(void **state) {
  size_t sizes[] = {24, 1000, 100000, (size_t)1 << 20, (size_t)6 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    char *p = v_malloc(sizes[i]);
    expect_abort(do_free, p + 16, "free", R_INSIDE);
    expect_abort(do_realloc, p + 8, "realloc", R_INSIDE);
    expect_abort(do_usable, p + 1, "malloc_usable_size", R_INSIDE);
    expect_abort(do_cfree, p + 4, "cfree", R_INSIDE);
    expect_abort(do_free_sized, p + 12, "free_sized", R_INSIDE);
    v_free(p);
  }
}

static void test_bad_pointer_double_free(void **state) {
  size_t sizes[] = {16, 48, 5000, 200000, (size_t)1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    void *keep = v_malloc(sizes[i]); /* keeps the span (and segment) alive */
    void *p = v_malloc(sizes[i]);
    v_free(p);
    expect_double_free(p);
    expect_abort(do_realloc, p, "realloc", R_DOUBLE);
    expect_abort(do_usable, p, "malloc_usable_size", R_DOUBLE);
    v_free(keep);
  }
}

/* A double free is caught after the block left the CPU's cache for its heap. */
static void test_double_free_after_drain(void **state) {
  enum { N = 20000 };
  void **v = v_malloc(N * sizeof *v);
  for (int i = 0; i < N; i++) v[i] = v_malloc(64);
  void *keep = v[N / 2];
  for (int i = 0; i < N; i++)
    if (v[i] != keep) v_free(v[i]);
  expect_double_free(v[1]);
  v_free(keep);
  v_free(v);
}

static void test_bad_pointer_foreign(void **state) {
  int on_stack;
  expect_abort(do_free, &on_stack, "free", R_FOREIGN);
  static char in_data[64];
  expect_abort(do_free, in_data + 16, "free", R_FOREIGN);
  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(m != MAP_FAILED);
  expect_abort(do_free, (char *)m + 64, "free", R_FOREIGN);
  expect_abort(do_realloc, (char *)m + 64, "realloc", R_FOREIGN);
  expect_abort(do_usable, (char *)m + 64, "malloc_usable_size", R_FOREIGN);
  munmap(m, 1 << 16);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_entry_points_are_numaheap),
      cmocka_unit_test(test_libc_aliases),
      cmocka_unit_test(test_other_frees),
      cmocka_unit_test(test_usable_size_covers_request),
      cmocka_unit_test(test_calloc_zero_and_overflow),
      cmocka_unit_test(test_malloc_impossible_size),
      cmocka_unit_test(test_realloc_keeps_contents),
      cmocka_unit_test(test_realloc_failure_leaves_block),
      cmocka_unit_test(test_realloc_zero_frees),
      cmocka_unit_test(test_posix_memalign),
      cmocka_unit_test(test_aligned_alloc_memalign),
      cmocka_unit_test(test_valloc_pvalloc),
      cmocka_unit_test(test_trim_and_stats),
      cmocka_unit_test(test_mallinfo2_and_mallopt),
      cmocka_unit_test(test_bad_pointer_inside_block),
      cmocka_unit_test(test_bad_pointer_double_free),
      cmocka_unit_test(test_double_free_after_drain),
      cmocka_unit_test(test_bad_pointer_foreign),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
