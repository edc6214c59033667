/*
 * tests/test_init.c: start-up and configuration as a process sees them:
 * nh_init with good and bad files, NUMAHEAP_CONFIG and NUMAHEAP_* variables,
 * live reconfiguration, and what may not change once started. Each scenario
 * runs in a fresh process (this binary re-executed with the scenario's name),
 * so the allocator starts from nothing every time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "numaheap/numaheap.h"

static char dir[] = "/tmp/nh-init-XXXXXX";

static const char *write_file(const char *name, const char *text) {
  static char path[4][256];
  static int k;
  char *p = path[k++ % 4];
  snprintf(p, 256, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
  return p;
}

/* ---- scenarios (run in the child process) --------------------------------------- */

#define CHECK(c)                                                     \
  do {                                                               \
    if (!(c)) {                                                      \
      fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); \
      return 1;                                                      \
    }                                                                \
  } while (0)

static int works(void) {
  void *p = nh_malloc(100);
  int ok = p != NULL && nh_ptr_node(p) >= 0;
  nh_free(p);
  return ok;
}

static int scenario_bad_file(const char *path) {
  errno = 0;
  CHECK(nh_init(path) == -1);
  CHECK(errno == EINVAL);
  CHECK(strstr(nh_last_error(), path) != NULL);
  CHECK(strstr(nh_last_error(), ":3: unknown key \"budgett\" in section [heap]") != NULL);
  CHECK(works());            /* on defaults */
  CHECK(nh_node_count() >= 1);
  return 0;
}

static int scenario_good_file(const char *path) {
  CHECK(nh_init(path) == 0);
  CHECK(nh_node_count() == 4);
  nh_stats st = {.size = sizeof st, .version = NH_STATS_VERSION};
  CHECK(nh_stats_get(&st) == 0);
  CHECK(st.nodes[1].budget == (64u << 20));
  CHECK(st.nodes[2].budget == (32u << 20)); /* [node:2] override */
  CHECK(works());
  return 0;
}

static int scenario_env_file(void) { /* NUMAHEAP_CONFIG and NUMAHEAP_HEAP_BUDGET set by parent */
  CHECK(works());
  CHECK(nh_node_count() == 4);
  nh_stats st = {.size = sizeof st, .version = NH_STATS_VERSION};
  CHECK(nh_stats_get(&st) == 0);
  CHECK(st.nodes[0].budget == (48u << 20)); /* the environment beats the file */
  return 0;
}

static int scenario_env_bad(void) { /* a bad NUMAHEAP_CONFIG: reported, defaults */
  CHECK(works());
  return 0;
}

static int scenario_reconfigure(const char *same_topo, const char *other_topo) {
  CHECK(works()); /* started by the first allocation, on defaults */
  int nodes = nh_node_count();
  CHECK(nh_init(other_topo) == -1);
  CHECK(errno == EBUSY);
  CHECK(strstr(nh_last_error(), "[topology]") != NULL);
  CHECK(nh_node_count() == nodes);
  CHECK(nh_init(same_topo) == 0); /* budgets change live */
  nh_stats st = {.size = sizeof st, .version = NH_STATS_VERSION};
  CHECK(nh_stats_get(&st) == 0);
  CHECK(st.nodes[0].budget == (200u << 20));
  CHECK(works());
  return 0;
}

/* ---- the tests (parent side) ------------------------------------------------------- */

static const char *self_path;

/* Runs scenario in a fresh process with extra environment; returns its exit
 * status, its stderr in err. */
static int run(const char *const *env_add, char *err, size_t errlen, const char *a, const char *b,
               const char *c) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    for (const char *const *e = env_add; e && *e; e += 2) setenv(e[0], e[1], 1);
    execl(self_path, self_path, a, b, c, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t n;
  while ((n = read(fds[0], err + got, errlen - 1 - got)) > 0) got += (size_t)n;
  err[got] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *good_ini =
    "[topology]\nsynthetic = package:2 numa:2 core:1 pu:1\n[heap]\nbudget = 64M\n"
    "[node:2]\nbudget = 32M\n";

static void test_nh_init_bad_file(void **state) {
  (void)state;
  char err[4096];
  const char *bad = write_file("bad.ini", "; a typo\n[heap]\nbudgett = 1G\n");
  int rc = run(NULL, err, sizeof err, "bad_file", bad, NULL);
  if (rc != 0) fail_msg("child: %s", err);
}

static void test_nh_init_good_file(void **state) {
  (void)state;
  char err[4096];
  int rc = run(NULL, err, sizeof err, "good_file", write_file("good.ini", good_ini), NULL);
  if (rc != 0) fail_msg("child: %s", err);
}

static void test_environment(void **state) {
  (void)state;
  char err[4096];
  const char *good = write_file("env.ini", good_ini);
  const char *env[] = {"NUMAHEAP_CONFIG", good, "NUMAHEAP_HEAP_BUDGET", "48M", NULL};
  int rc = run(env, err, sizeof err, "env_file", NULL, NULL);
  if (rc != 0) fail_msg("child: %s", err);
  const char *bad = write_file("envbad.ini", "[cache]\nsize = 12Q\n");
  const char *env2[] = {"NUMAHEAP_CONFIG", bad, NULL};
  rc = run(env2, err, sizeof err, "env_bad", NULL, NULL);
  if (rc != 0) fail_msg("child: %s", err);
  assert_non_null(strstr(err, "numaheap: "));
  assert_non_null(strstr(err, "envbad.ini:2: [cache] size"));
  assert_non_null(strstr(err, "; running on defaults"));
  const char *env3[] = {"NUMAHEAP_HEAP_BUDGETT", "1G", NULL};
  rc = run(env3, err, sizeof err, "env_bad", NULL, NULL);
  if (rc != 0) fail_msg("child: %s", err);
  assert_non_null(strstr(err, "NUMAHEAP_HEAP_BUDGETT"));
}

static void test_reconfigure_live(void **state) {
  (void)state;
  char err[4096];
  const char *same = write_file("same.ini", "[heap]\nbudget = 200M\n");
  const char *other = write_file("other.ini", good_ini);
  int rc = run(NULL, err, sizeof err, "reconfigure", same, other);
  if (rc != 0) fail_msg("child: %s", err);
}

int main(int argc, char **argv) {
  self_path = "/proc/self/exe";
  if (argc > 1) {
    if (!strcmp(argv[1], "bad_file")) return scenario_bad_file(argv[2]);
    if (!strcmp(argv[1], "good_file")) return scenario_good_file(argv[2]);
    if (!strcmp(argv[1], "env_file")) return scenario_env_file();
    if (!strcmp(argv[1], "env_bad")) return scenario_env_bad();
    if (!strcmp(argv[1], "reconfigure")) return scenario_reconfigure(argv[2], argv[3]);
    return 2;
  }
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = '\0', self_path = exe;
  if (mkdtemp(dir) == NULL) return 1;
  unsetenv("NUMAHEAP_CONFIG");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nh_init_bad_file),
      cmocka_unit_test(test_nh_init_good_file),
      cmocka_unit_test(test_environment),
      cmocka_unit_test(test_reconfigure_live),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) rc = rc ? rc : 1;
  return rc;
}
