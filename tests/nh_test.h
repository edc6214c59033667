/*
 * tests/nh_test.h: helpers shared by the unit tests: restart the allocator on
 * a simulated topology with a few config keys, and pretend to run on a CPU.
 */
#ifndef NH_TEST_H
#define NH_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/internal.h"
#include "api/options.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

/* Restarts numaheap on `synthetic` (NULL: the real machine) with the given
 * "section", "key", "value" triples, ending with NULL: defaults ([cgroup]
 * split off, so that the machine's cgroup changes nothing; [stats] publish
 * off), then the
 * NUMAHEAP_* environment (so ctest can run a test once per cache mode with
 * NUMAHEAP_CACHE_MODE), then the triples. Fails the test on any error. */
static inline void nh_test_start(const char *synthetic, ...) {
  static nh_config cfg;
  char err[600];
  nh_config_defaults(&cfg);
  /* the machine's own cgroup (a CI container's limit) must not change the
   * budgets tests expect; tests of the cgroup set split themselves */
  if (nh_config_set(&cfg, "cgroup", "split", "off", err, sizeof err) != 0) fail_msg("%s", err);
  /* no publisher thread: a fork child of a test would start one, which
   * ThreadSanitizer refuses after a multi-threaded fork (tests/live tests
   * the publisher in programs of its own) */
  if (nh_config_set(&cfg, "stats", "publish", "no", err, sizeof err) != 0) fail_msg("%s", err);
  if (nh_config_apply_env(&cfg, NULL, err, sizeof err) != 0) fail_msg("environment: %s", err);
  if (synthetic) snprintf(cfg.synthetic, sizeof cfg.synthetic, "%s", synthetic);
  va_list ap;
  va_start(ap, synthetic);
  for (;;) {
    const char *section = va_arg(ap, const char *);
    if (section == NULL) break;
    const char *key = va_arg(ap, const char *);
    const char *value = va_arg(ap, const char *);
    if (nh_config_set(&cfg, section, key, value, err, sizeof err) != 0) fail_msg("config: %s", err);
  }
  va_end(ap);
  if (nh_reinit(&cfg, err, sizeof err) != 0) fail_msg("nh_reinit: %s", err);
  nh_cache_set_cpu_override(-1);
}

/* A pattern per (seed, offset), written into a block and checked later. */
static inline void nh_test_fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 31);
}
static inline int nh_test_intact(const uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(seed + i * 31)) return 0;
  return 1;
}

static inline nh_node_stats nh_test_node_stats(int node) {
  static nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&st), 0);
  return node < 0 ? st.total : st.nodes[node];
}

/* Runs fn in a child process and checks it dies (of SIGABRT, or, for an
 * ASan report, with a non-zero exit status: by_signal 0) printing expect. */
static inline void nh_test_expect_death(void (*fn)(void), const char *expect, int by_signal) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    alarm(60);
    fn();
    _exit(0);
  }
  close(fds[1]);
  char buf[1024] = {0};
  size_t got = 0;
  ssize_t n;
  while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (by_signal) {
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
      fail_msg("expected SIGABRT and \"%s\", got status %#x and \"%s\"", expect, status, buf);
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) == 0) {
    fail_msg("expected a failure and \"%s\", got status %#x and \"%s\"", expect, status, buf);
  }
  if (strstr(buf, expect) == NULL) fail_msg("expected \"%s\" in \"%s\"", expect, buf);
}

#endif
