// bench/wl_server.cc: a C++ request/response server's allocations.
//
// Every iteration serves one request, the way a C++ service written with
// the standard library does: `new Request` (64 B), 2..6 `new Header` (48 B)
// held in a std::vector, a std::string body of 64..2048 B, a `new Response`
// (128 B) with a std::string payload of 32..512 B; one request in four opens
// a session, a `new Session` (256 B) kept in a std::unordered_map bounded to
// `live` sessions (the oldest is deleted past the bound). Then the request,
// its headers, body, response and payload are deleted. Objects are freed
// with sized delete (the compiler's choice for complete types, and
// std::allocator's), so this is the workload that reaches operator new and
// sized operator delete rather than malloc and free. Each thread has its own
// map, filled to its bound before the timed loop (the steady state, whatever
// the run's length). live:1000 keeps the sessions in cache, live:100000
// (about 40 MB of sessions and map nodes per thread) does not. One item is
// one request.
#include "shim.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

extern "C" void nhb_register_server(void);

namespace {

struct Request {
  std::uint64_t id;
  char method[8];
  char path[48];
};
struct Header {
  char name[16];
  char value[32];
};
struct Response {
  std::uint64_t id;
  int status;
  std::string payload;
  char trailer[80];
};
struct Session {
  std::uint64_t id;
  char data[248];
};
static_assert(sizeof(Request) == 64 && sizeof(Header) == 48 && sizeof(Session) == 256,
              "object sizes as documented");

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  std::size_t range(std::size_t lo, std::size_t hi) { return lo + next() % (hi - lo + 1); }
};

class Server {
 public:
  explicit Server(std::size_t live, std::uint64_t seed) : live_(live), oldest_(live), rng_{seed} {}
  ~Server() {
    for (auto &kv : sessions_) delete kv.second;
  }
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Opens live sessions before the timed loop, so that every run measures
  // (and its peak RSS holds) a server at its steady state, whatever the
  // number of iterations: without it a faster allocator ran more requests
  // in the same time and so held more sessions.
  void prefill(std::uint64_t &id) {
    for (std::size_t i = 0; i < live_; i++) open_session(id++);
  }

  void serve(std::uint64_t id) {
    auto *req = new Request{id, "GET", "/index"};
    std::vector<Header *> headers;
    for (std::size_t i = 0, n = rng_.range(2, 6); i < n; i++) headers.push_back(new Header{"name", "value"});
    std::string body(rng_.range(64, 2048), 'b');
    auto *resp = new Response{id, 200, std::string(rng_.range(32, 512), 'r'), {}};
    resp->trailer[0] = body[0];
    if (rng_.next() % 4 == 0) open_session(id);
    for (Header *h : headers) delete h;
    delete resp;
    delete req;
  }

 private:
  void open_session(std::uint64_t id) {
    auto *s = new Session{id, {}};
    s->data[0] = 1;
    sessions_.emplace(id, s);
    std::uint64_t &slot = oldest_[next_ % live_];
    if (next_++ >= live_) {  // the ring is full: close its oldest session
      auto it = sessions_.find(slot);
      delete it->second;
      sessions_.erase(it);
    }
    slot = id;
  }

  std::size_t live_;
  std::vector<std::uint64_t> oldest_;  // ring of the live sessions' ids, oldest first
  std::size_t next_ = 0;
  std::unordered_map<std::uint64_t, Session *> sessions_;
  Rng rng_;
};

void run_server(nhb_state *st) {
  int t = nhb_thread_index(st);
  Server server(static_cast<std::size_t>(nhb_range(st, 0)), 0x51ED270B27D2A1ULL * (t + 1));
  std::uint64_t id = static_cast<std::uint64_t>(t) << 48;
  server.prefill(id);
  while (nhb_keep_running(st)) server.serve(id++);
  nhb_set_items(st, nhb_iterations(st));
}

}  // namespace

void nhb_register_server(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("server", run_server), "live", nullptr);
  nhb_threads(nhb_threads(nhb_arg(nhb_arg(b, 1000), 100000), 1), 2);
}
