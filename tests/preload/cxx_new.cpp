// tests/preload/cxx_new.cpp: a C++ program that knows nothing of numaheap.
// Run with libnumaheap.so preloaded, everything it allocates through
// operator new (plain, array, aligned, nothrow), the standard containers,
// strdup and a std::thread must be numaheap's: nh_ptr_node(p) >= 0, found
// with dlsym. Without the preload it reports that and exits 1.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

using ptr_node_fn = int (*)(const void *);
static ptr_node_fn ptr_node;
static int failures, checked;

static void expect(const void *p, const char *what) {
  checked++;
  if (p == nullptr || ptr_node(p) < 0) {
    std::printf("not numaheap's: %s (%p)\n", what, p);
    failures++;
  }
}

struct alignas(256) Wide {
  char bytes[300];
};

int main() {
  ptr_node = reinterpret_cast<ptr_node_fn>(dlsym(RTLD_DEFAULT, "nh_ptr_node"));
  if (ptr_node == nullptr) {
    std::printf("not running on numaheap: nh_ptr_node not found\n");
    return 1;
  }
  int *one = new int(7);
  expect(one, "new int");
  auto *many = new double[10000];
  expect(many, "new double[10000]");
  auto *wide = new Wide;
  expect(wide, "new of an alignas(256) type");
  if (reinterpret_cast<std::uintptr_t>(wide) % 256 != 0) std::printf("misaligned\n"), failures++;
  int *nt = new (std::nothrow) int[50];
  expect(nt, "new (nothrow) int[50]");
  std::string s(5000, 'x');
  expect(s.data(), "std::string");
  std::vector<int> v;
  for (int i = 0; i < 100000; i++) v.push_back(i);
  expect(v.data(), "std::vector");
  std::map<int, std::string> m;
  for (int i = 0; i < 1000; i++) m[i] = std::to_string(i);
  expect(&*m.begin(), "std::map node");
  auto sp = std::make_shared<std::string>("shared");
  expect(sp.get(), "std::make_shared");
  char *d = strdup("strdup");
  expect(d, "strdup");
  std::thread t([] {
    std::unique_ptr<std::vector<char>> big(new std::vector<char>(1 << 20));
    expect(big.get(), "new in a std::thread");
    expect(big->data(), "vector in a std::thread");
  });
  t.join();
  std::free(d);
  delete one;
  delete[] many;
  delete wide;
  delete[] nt;
  std::printf("%s: %d allocations checked\n", failures ? "FAIL" : "ok", checked);
  return failures ? 1 : 0;
}
