// tests/preload/cxx_forms.cpp: every replaceable operator new and operator
// delete is numaheap's own (api/cxx_new.c), not libstdc++'s wrapper around
// malloc, and keeps C++'s rules. Run twice by ctest: preloaded
// (preload_nh_cxx_forms) and linked with -lnumaheap (link_cxx_forms).
//
// Checks: each of the 20 mangled symbols binds to libnumaheap (dladdr); each
// new form returns a numaheap block (nh_ptr_node >= 0) with the alignment
// asked, and each delete form frees it; the new_handler loop (a handler that
// frees a reserve and uninstalls itself, under RLIMIT_AS in a child);
// std::bad_alloc once the address space is exhausted, NULL from the nothrow
// forms; an alignment that is not a power of two fails without calling the
// handler; and the free checks still stop a double, interior or foreign
// delete, sized or not, with a message naming the operator.
#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

using ptr_node_fn = int (*)(const void *);
static ptr_node_fn ptr_node;
static int failures, checked;

#define CHECK(cond, ...)                   \
  do {                                     \
    checked++;                             \
    if (!(cond)) {                         \
      std::printf("FAIL: " __VA_ARGS__);   \
      std::printf("\n");                   \
      failures++;                          \
    }                                      \
  } while (0)

static const char *const kSymbols[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t", "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t"};

static void check_symbols() {
  for (const char *name : kSymbols) {
    void *f = dlsym(RTLD_DEFAULT, name);
    Dl_info info{};
    bool ours = f && dladdr(f, &info) && info.dli_fname && std::strstr(info.dli_fname, "libnumaheap");
    CHECK(ours, "%s binds to %s, not libnumaheap", name, f && info.dli_fname ? info.dli_fname : "nothing");
  }
}

static void expect_block(const void *p, std::size_t align, const char *what) {
  CHECK(p != nullptr && ptr_node(p) >= 0, "%s: %p is not a numaheap block", what, p);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0, "%s: %p not aligned to %zu", what, p, align);
}

// The same for raw memory, which is written.
static void expect_raw(void *p, std::size_t align, const char *what) {
  expect_block(p, align, what);
  if (p) static_cast<volatile char *>(p)[0] = 1;
}

// Every new form paired with a delete form, at a small, a medium and a large size.
static void check_forms() {
  const std::nothrow_t &nt = std::nothrow;
  for (std::size_t n : {std::size_t{0}, std::size_t{24}, std::size_t{3000}, std::size_t{1} << 20}) {
    void *p;
    p = ::operator new(n), expect_raw(p, 16, "new"), ::operator delete(p);
    p = ::operator new[](n), expect_raw(p, 16, "new[]"), ::operator delete[](p);
    p = ::operator new(n), expect_raw(p, 16, "new"), ::operator delete(p, n);
    p = ::operator new[](n), expect_raw(p, 16, "new[]"), ::operator delete[](p, n);
    p = ::operator new(n, nt), expect_raw(p, 16, "new nothrow"), ::operator delete(p, nt);
    p = ::operator new[](n, nt), expect_raw(p, 16, "new[] nothrow"), ::operator delete[](p, nt);
    for (std::size_t a : {std::size_t{8}, std::size_t{16}, std::size_t{64}, std::size_t{4096}}) {
      std::align_val_t al{a};
      p = ::operator new(n, al), expect_raw(p, a, "new aligned"), ::operator delete(p, al);
      p = ::operator new[](n, al), expect_raw(p, a, "new[] aligned"), ::operator delete[](p, al);
      p = ::operator new(n, al), expect_raw(p, a, "new aligned"), ::operator delete(p, n, al);
      p = ::operator new[](n, al), expect_raw(p, a, "new[] aligned"), ::operator delete[](p, n, al);
      p = ::operator new(n, al, nt), expect_raw(p, a, "new aligned nothrow"),
      ::operator delete(p, al, nt);
      p = ::operator new[](n, al, nt), expect_raw(p, a, "new[] aligned nothrow"),
      ::operator delete[](p, al, nt);
    }
  }
  // The compiler's own choices: sized delete of a class, aligned new of an
  // over-aligned type.
  struct alignas(128) Wide {
    char b[200];
  };
  auto *w = new Wide;
  expect_block(w, 128, "new Wide");
  delete w;
  auto *ws = new Wide[3];
  expect_block(ws, 128, "new Wide[3]");
  delete[] ws;
  auto *s = new std::string(100, 'x');
  expect_block(s, 16, "new std::string");
  expect_block(s->data(), 16, "std::string's buffer");
  delete s;
}

static int handler_calls;
static void handler_uninstalls() {
  handler_calls++;
  std::set_new_handler(nullptr);
}

// An alignment that is not a power of two fails at once, without the handler.
static void check_bad_alignment() {
  volatile std::size_t a = 48;
  std::align_val_t al{a};
  handler_calls = 0;
  std::set_new_handler(handler_uninstalls);
  bool thrown = false;
  try {
    void *p = ::operator new(64, al);
    ::operator delete(p, al);
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  CHECK(thrown, "new(64, align_val_t(48)) did not throw bad_alloc");
  CHECK(::operator new[](64, al, std::nothrow) == nullptr, "nothrow new[] with alignment 48 not NULL");
  CHECK(handler_calls == 0, "the new_handler was called %d times for a bad alignment", handler_calls);
  std::set_new_handler(nullptr);
}

// ---- in a child under RLIMIT_AS ------------------------------------------------

constexpr std::size_t kChunk = std::size_t{8} << 20;
constexpr int kMaxChunks = 2048; // 16 GiB: far past the limit set below
static void *held[kMaxChunks];
static int nheld, reserve_from;

static void handler_frees_reserve() {
  handler_calls++;
  while (nheld > reserve_from) ::operator delete(held[--nheld], kChunk);
  std::set_new_handler(nullptr);
}

// Limits the address space to what is mapped now plus 256 MiB.
static bool limit_address_space() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (!f || std::fscanf(f, "%lu", &pages) != 1) return false;
  std::fclose(f);
  rlim_t lim = pages * sysconf(_SC_PAGESIZE) + (rlim_t{256} << 20);
  struct rlimit rl = {lim, lim};
  return setrlimit(RLIMIT_AS, &rl) == 0;
}

// Exit status: 0 ok, else the number of the first failed step.
static int exhaust_child() {
  if (!limit_address_space()) return 10;
  while (nheld < kMaxChunks && (held[nheld] = ::operator new(kChunk, std::nothrow)) != nullptr) nheld++;
  if (nheld == kMaxChunks) return 11; // the limit never bit
  if (nheld < 4) return 12;
  // 1. A failing new calls the handler, which frees a reserve and uninstalls
  // itself; the retry succeeds.
  reserve_from = nheld - 3;
  handler_calls = 0;
  std::set_new_handler(handler_frees_reserve);
  char *p = nullptr;
  try {
    p = new char[kChunk];
  } catch (const std::bad_alloc &) {
    return 13;
  }
  if (handler_calls != 1) return 14;
  if (ptr_node(p) < 0) return 15;
  held[nheld++] = p;
  // 2. No handler: bad_alloc, from every throwing form, once exhausted.
  bool thrown = false;
  try {
    for (int i = 0; i < 64 && nheld < kMaxChunks; i++) held[nheld++] = ::operator new(kChunk);
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  if (!thrown) return 16;
  thrown = false;
  try {
    held[nheld++] = ::operator new[](kChunk, std::align_val_t{4096});
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  if (!thrown) return 17;
  // 3. nothrow forms return NULL; a handler that frees nothing is called,
  // uninstalls itself, and the new then throws.
  if (::operator new(kChunk, std::nothrow) != nullptr) return 18;
  if (::operator new[](kChunk, std::align_val_t{64}, std::nothrow) != nullptr) return 19;
  handler_calls = 0;
  std::set_new_handler(handler_uninstalls);
  thrown = false;
  try {
    held[nheld++] = ::operator new(kChunk);
  } catch (const std::bad_alloc &) {
    thrown = true;
  }
  if (!thrown || handler_calls != 1) return 20;
  while (nheld > 0) ::operator delete(held[--nheld]);
  return 0;
}

static void check_exhaustion() {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(exhaust_child());
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "exhaustion child: %s %d (step numbers in exhaust_child)",
        WIFEXITED(status) ? "failed at step" : "killed by signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

// ---- bad deletes stop the process ---------------------------------------------------

// Hides a pointer's origin from the compiler, which warns on these bad deletes.
static void *opaque(void *p) {
  void *volatile v = p;
  return v;
}
static int static_object;
static void delete_twice() {
  void *p = ::operator new(40);
  ::operator delete(opaque(p), 40);
  ::operator delete(opaque(p), 40);
  malloc_trim(0); // caught at the call, or here when the caches return both copies
}
static void delete_interior() {
  char *p = static_cast<char *>(::operator new[](256));
  ::operator delete[](opaque(p + 16), 240);
}
static void delete_foreign() { ::operator delete(opaque(&static_object), std::align_val_t{64}); }

// Runs bad() in a child; it must die of SIGABRT with want on its stderr.
static void expect_stop(void (*bad)(), const char *want, const char *what) {
  int fd[2];
  if (pipe(fd) != 0) {
    CHECK(false, "%s: pipe failed", what);
    return;
  }
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 2);
    bad();
    _exit(0);
  }
  close(fd[1]);
  std::string err;
  char buf[256];
  ssize_t n;
  while ((n = read(fd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<std::size_t>(n));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: not stopped by SIGABRT", what);
  CHECK(err.find(want) != std::string::npos, "%s: stderr lacks '%s': %s", what, want, err.c_str());
}

int main() {
  ptr_node = reinterpret_cast<ptr_node_fn>(dlsym(RTLD_DEFAULT, "nh_ptr_node"));
  if (ptr_node == nullptr) {
    std::printf("not running on numaheap: nh_ptr_node not found\n");
    return 1;
  }
  check_symbols();
  check_forms();
  check_bad_alignment();
  check_exhaustion();
  expect_stop(delete_twice, "double free", "sized delete twice");
  expect_stop(delete_interior, "operator delete[](", "sized delete[] of an interior pointer");
  expect_stop(delete_interior, "inside a block", "sized delete[] of an interior pointer");
  expect_stop(delete_foreign, "not allocated by numaheap", "aligned delete of a static object");
  std::printf("%s: %d checks\n", failures ? "FAIL" : "ok", checked);
  return failures ? 1 : 0;
}
