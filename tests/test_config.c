/*
 * tests/test_config.c: the options table and the config layers (api/options.c,
 * api/config.c): every key, every error message, the environment, files,
 * the round trip through nh_config_write, and that parsing never calls malloc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/options.h"
#include "numa/cgroup.h"

#define MiB (UINT64_C(1) << 20)
#define UNUSED __attribute__((unused))

static char err[2048];

/* ---- malloc accounting: parsing must not call malloc ------------------------------ */

#ifndef NH_SANITIZER
/* The test binary's malloc forwards to glibc and counts calls while
 * g_counting is set; libinih and libc resolve malloc to these. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static volatile int g_counting;
static volatile unsigned g_mallocs;

void *malloc(size_t n) {
  if (g_counting) g_mallocs++;
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  if (g_counting) g_mallocs++;
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  if (g_counting) g_mallocs++;
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#define COUNT_MALLOCS 1
#else
#define COUNT_MALLOCS 0
#endif

/* ---- helpers -------------------------------------------------------------------- */

static nh_config *new_defaults(void) {
  nh_config *c = calloc(1, sizeof *c);
  assert_non_null(c);
  nh_config_defaults(c);
  return c;
}

/* Parses text as "cfg.ini" on top of the defaults; the config or NULL. */
static nh_config *parse_ok(const char *text) {
  nh_config *c = new_defaults();
  err[0] = '\0';
  int rc = nh_config_parse_string(c, text, "cfg.ini", err, sizeof err);
  if (rc != 0) print_error("unexpected error: %s\n", err);
  assert_int_equal(rc, 0);
  return c;
}

/* Parses text as "cfg.ini" on top of the defaults and checks the exact
 * message, and that the config did not change. */
static void expect_error(const char *text, const char *message) {
  nh_config *c = new_defaults();
  nh_config *before = malloc(sizeof *before);
  assert_non_null(before);
  memcpy(before, c, sizeof *c);
  err[0] = '\0';
  assert_int_equal(nh_config_parse_string(c, text, "cfg.ini", err, sizeof err), -1);
  assert_string_equal(err, message);
  assert_memory_equal(c, before, sizeof *c);
  free(before);
  free(c);
}

static nh_config *env_ok(const char *const *envp) {
  nh_config *c = new_defaults();
  err[0] = '\0';
  int rc = nh_config_apply_env(c, (char *const *)envp, err, sizeof err);
  if (rc != 0) print_error("unexpected error: %s\n", err);
  assert_int_equal(rc, 0);
  return c;
}

static void expect_env_error(const char *const *envp, const char *message) {
  nh_config *c = new_defaults();
  nh_config *before = malloc(sizeof *before);
  assert_non_null(before);
  memcpy(before, c, sizeof *c);
  err[0] = '\0';
  assert_int_equal(nh_config_apply_env(c, (char *const *)envp, err, sizeof err), -1);
  assert_string_equal(err, message);
  assert_memory_equal(c, before, sizeof *c);
  free(before);
  free(c);
}

static const char *data_path(const char *file) {
  static char path[4096];
  const char *dir = getenv("NUMAHEAP_TEST_DATA");
  assert_non_null(dir);
  snprintf(path, sizeof path, "%s/config/%s", dir, file);
  return path;
}

static const nh_node_override *find_override(const nh_config *c, int node) {
  for (int i = 0; i < c->noverrides; i++)
    if (c->overrides[i].node == node) return &c->overrides[i];
  return NULL;
}

/* ---- the table and the defaults -------------------------------------------------- */

static void test_table_is_consistent(void **state UNUSED) {
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    const nh_opt_desc *d = &nh_options[i];
    assert_non_null(d->section);
    assert_non_null(d->key);
    assert_non_null(d->doc);
    assert_true(strlen(d->doc) > 10);
    char env[128];
    int n = snprintf(env, sizeof env, "NUMAHEAP_%s_%s", d->section, d->key);
    for (int k = 0; k < n; k++) env[k] = env[k] == '.' ? '_' : (char)toupper((unsigned char)env[k]);
    assert_string_equal(d->env, env);
    assert_int_equal(nh_opt_find(d->section, d->key), i);
    assert_int_equal(d->type == NH_T_ENUM, d->choices != NULL);
    if (d->type == NH_T_UINT) assert_true(d->max > 0);
  }
  assert_int_equal(nh_opt_find("heap", "nope"), -1);
}

static void test_defaults(void **state UNUSED) {
  nh_config *c = new_defaults();
  nh_size_spec b = c->v[NH_OPT_HEAP_BUDGET].size, r = c->v[NH_OPT_HEAP_RESERVE].size;
  assert_true(b.is_pct && b.milli_pct == 80000);
  assert_true(r.is_pct && r.milli_pct == 1000);
  assert_int_equal(c->v[NH_OPT_HEAP_PURGE_DELAY].u, 1000);
  assert_int_equal(c->v[NH_OPT_HEAP_DEFAULT_LEVEL].choice, 1);
  assert_int_equal(c->v[NH_OPT_TASK_LIMIT].milli_pct, 90000);
  assert_int_equal(c->v[NH_OPT_TASK_SPILL].choice, NH_SPILL_PACKAGE);
  assert_int_equal(c->v[NH_OPT_APPDOMAIN_SPILL].choice, NH_SPILL_ANY);
  assert_int_equal(c->v[NH_OPT_PROCESS_SPILL].choice, NH_SPILL_ANY);
  assert_int_equal(c->v[NH_OPT_CACHE_MODE].choice, NH_CHOICE_CACHE_PERCPU);
  assert_false(c->v[NH_OPT_CACHE_SIZE].size.is_pct);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, 1024 * 1024);
  assert_int_equal(c->v[NH_OPT_NOTIFY_LOW].milli_pct, 90000);
  assert_int_equal(c->v[NH_OPT_NOTIFY_HIGH].milli_pct, 60000);
  assert_int_equal(c->v[NH_OPT_STATS_PRINT].choice, NH_STATS_NO);
  assert_string_equal(c->synthetic, "");
  assert_string_equal(c->xml, "");
  assert_int_equal(c->noverrides, 0);
  for (int i = 0; i < NH_OPT_COUNT; i++) assert_int_equal(c->set[i], 0);
  free(c);
}

/* ---- every key with a good value ---------------------------------------------------- */

static void test_topology_keys(void **state UNUSED) {
  nh_config *c = parse_ok("[topology]\nsynthetic = package:2 numa:2 core:2 pu:1   ; or: xml = "
                          "/path/to/topology.xml\n");
  assert_string_equal(c->synthetic, "package:2 numa:2 core:2 pu:1");
  assert_string_equal(c->xml, "");
  assert_int_equal(c->set[NH_OPT_TOPOLOGY_SYNTHETIC], 1);
  free(c);
  c = parse_ok("[topology]\nxml = /path/to/topology.xml\n");
  assert_string_equal(c->xml, "/path/to/topology.xml");
  assert_int_equal(c->set[NH_OPT_TOPOLOGY_XML], 1);
  /* A later layer naming the other source replaces the first. */
  assert_int_equal(nh_config_parse_string(c, "[topology]\nsynthetic = numa:2 pu:1\n", "b.ini",
                                          err, sizeof err), 0);
  assert_string_equal(c->synthetic, "numa:2 pu:1");
  assert_string_equal(c->xml, "");
  assert_int_equal(c->set[NH_OPT_TOPOLOGY_XML], 0);
  free(c);
}

static void test_heap_keys(void **state UNUSED) {
  nh_config *c = parse_ok("[heap]\nbudget = 512M\nreserve = 12.5%\npurge_delay = 3600000\n"
                          "default_level = process\nhuge_pages = hugetlb\nhuge_keep = 32M\n");
  assert_false(c->v[NH_OPT_HEAP_BUDGET].size.is_pct);
  assert_int_equal(c->v[NH_OPT_HEAP_BUDGET].size.bytes, 512 * MiB);
  assert_true(c->v[NH_OPT_HEAP_RESERVE].size.is_pct);
  assert_int_equal(c->v[NH_OPT_HEAP_RESERVE].size.milli_pct, 12500);
  assert_int_equal(c->v[NH_OPT_HEAP_PURGE_DELAY].u, 3600000);
  assert_int_equal(c->v[NH_OPT_HEAP_DEFAULT_LEVEL].choice, 2);
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_PAGES].choice, 2); /* hugetlb */
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_KEEP].size.bytes, 32 * MiB);
  for (int i = NH_OPT_HEAP_BUDGET; i <= NH_OPT_HEAP_HUGE_KEEP; i++) assert_int_equal(c->set[i], 1);
  assert_int_equal(c->set[NH_OPT_CACHE_SIZE], 0);
  free(c);
  c = parse_ok("[heap]\nbudget = 100%\nreserve = 0\npurge_delay = 0\ndefault_level = task\n");
  assert_int_equal(c->v[NH_OPT_HEAP_BUDGET].size.milli_pct, 100000);
  assert_int_equal(c->v[NH_OPT_HEAP_RESERVE].size.bytes, 0);
  assert_int_equal(c->v[NH_OPT_HEAP_PURGE_DELAY].u, 0);
  assert_int_equal(c->v[NH_OPT_HEAP_DEFAULT_LEVEL].choice, 0);
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_PAGES].choice, 1); /* the default: thp */
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_KEEP].size.bytes, 64 * MiB);
  free(c);
}

static void test_size_suffixes(void **state UNUSED) {
  static const struct { const char *text; uint64_t bytes; } cases[] = {
      {"0", 0}, {"4096", 4096}, {"1k", 1024}, {"1K", 1024}, {"3m", 3 * MiB},
      {"2G", 2048 * MiB}, {"1T", MiB * MiB}, {"18446744073709551615", UINT64_MAX},
      {"16777215T", (UINT64_C(16777215) << 40)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "[cache]\nsize = %s\n", cases[i].text);
    nh_config *c = parse_ok(text);
    assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, cases[i].bytes);
    free(c);
  }
}

static void test_criticality_keys(void **state UNUSED) {
  nh_config *c = parse_ok("[criticality]\ntask.limit = 75%\ntask.spill = none\n"
                          "appdomain.spill = package\nprocess.spill = none\n");
  assert_int_equal(c->v[NH_OPT_TASK_LIMIT].milli_pct, 75000);
  assert_int_equal(c->v[NH_OPT_TASK_SPILL].choice, NH_SPILL_NONE);
  assert_int_equal(c->v[NH_OPT_APPDOMAIN_SPILL].choice, NH_SPILL_PACKAGE);
  assert_int_equal(c->v[NH_OPT_PROCESS_SPILL].choice, NH_SPILL_NONE);
  free(c);
  c = parse_ok("[criticality]\ntask.limit = 33.125\ntask.spill = any\n");
  assert_int_equal(c->v[NH_OPT_TASK_LIMIT].milli_pct, 33125);
  assert_int_equal(c->v[NH_OPT_TASK_SPILL].choice, NH_SPILL_ANY);
  free(c);
}

static void test_cache_notify_stats_keys(void **state UNUSED) {
  nh_config *c = parse_ok("[cache]\nmode = off\nsize = 1M\n[notify]\nlow = 95\nhigh = 95%\n"
                          "[stats]\nprint = json\n");
  assert_int_equal(c->v[NH_OPT_CACHE_MODE].choice, NH_CHOICE_CACHE_OFF);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, MiB);
  assert_int_equal(c->v[NH_OPT_NOTIFY_LOW].milli_pct, 95000);
  assert_int_equal(c->v[NH_OPT_NOTIFY_HIGH].milli_pct, 95000);
  assert_int_equal(c->v[NH_OPT_STATS_PRINT].choice, NH_STATS_JSON);
  free(c);
  c = parse_ok("[cache]\nmode = perthread\n[stats]\nprint = text\n[notify]\nhigh = 0\nlow = 0\n");
  assert_int_equal(c->v[NH_OPT_CACHE_MODE].choice, NH_CHOICE_CACHE_PERTHREAD);
  assert_int_equal(c->v[NH_OPT_STATS_PRINT].choice, NH_STATS_TEXT);
  assert_int_equal(c->v[NH_OPT_NOTIFY_LOW].milli_pct, 0);
  free(c);
}

static void test_node_sections(void **state UNUSED) {
  nh_config *c = parse_ok("[node:1]\nbudget = 512M\nreserve = 16M\n[node:0]\nbudget = 50%\n"
                          "[node:4095]\nreserve = 1%\n[node:1]\n");
  assert_int_equal(c->noverrides, 3);
  assert_int_equal(c->overrides[0].node, 0); /* kept in node order */
  const nh_node_override *o = find_override(c, 1);
  assert_non_null(o);
  assert_true(o->has_budget && o->has_reserve);
  assert_int_equal(o->budget.bytes, 512 * MiB);
  assert_int_equal(o->reserve.bytes, 16 * MiB);
  o = find_override(c, 0);
  assert_true(o->has_budget && !o->has_reserve && o->budget.is_pct && o->budget.milli_pct == 50000);
  o = find_override(c, 4095);
  assert_true(!o->has_budget && o->has_reserve && o->reserve.milli_pct == 1000);
  free(c);
}

static void test_full_file(void **state UNUSED) {
  nh_config *c = new_defaults();
  assert_int_equal(nh_config_parse_file(c, data_path("full.ini"), err, sizeof err), 0);
  assert_string_equal(c->synthetic, "package:2 numa:2 core:2 pu:1");
  assert_int_equal(c->v[NH_OPT_HEAP_BUDGET].size.milli_pct, 80000);
  assert_int_equal(c->v[NH_OPT_HEAP_PURGE_DELAY].u, 250);
  assert_int_equal(c->v[NH_OPT_HEAP_DEFAULT_LEVEL].choice, 0);
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_PAGES].choice, 2); /* hugetlb */
  assert_int_equal(c->v[NH_OPT_HEAP_HUGE_KEEP].size.bytes, 32 * MiB);
  assert_int_equal(c->v[NH_OPT_PROCESS_SPILL].choice, NH_SPILL_NONE);
  assert_int_equal(c->v[NH_OPT_CACHE_MODE].choice, NH_CHOICE_CACHE_PERTHREAD);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, MiB);
  assert_int_equal(c->v[NH_OPT_NOTIFY_LOW].milli_pct, 85000);
  assert_int_equal(c->v[NH_OPT_STATS_PRINT].choice, NH_STATS_JSON);
  assert_int_equal(c->v[NH_OPT_STATS_PUBLISH].choice, NH_PUBLISH_NO);
  assert_int_equal(c->v[NH_OPT_STATS_PUBLISH_INTERVAL].u, 200);
  assert_int_equal(c->v[NH_OPT_SAFETY_MODE].choice, NH_SAFETY_PARANOID);
  assert_int_equal(c->v[NH_OPT_HEAP_BIND].choice, NH_BIND_PREFERRED);
  assert_int_equal(c->v[NH_OPT_CGROUP_SPLIT].choice, NH_CGROUP_SPLIT_PROPORTIONAL);
  assert_int_equal(c->v[NH_OPT_CGROUP_SHARE].milli_pct, 90000);
  assert_int_equal(c->v[NH_OPT_CGROUP_REREAD].u, 1000);
  assert_int_equal(c->v[NH_OPT_NOTIFY_PSI].u, 200);
  assert_int_equal(c->v[NH_OPT_TOPOLOGY_DISCOVERY].choice, NH_DISCOVERY_HWLOC);
  const nh_node_override *o = find_override(c, 1);
  assert_non_null(o);
  assert_int_equal(o->budget.bytes, 512 * MiB);
  for (int i = 0; i < NH_OPT_COUNT; i++)
    if (i != NH_OPT_TOPOLOGY_XML) assert_int_equal(c->set[i], 1);
  free(c);
}

static void test_crlf_bom_and_empty_files(void **state UNUSED) {
  nh_config *c = new_defaults();
  assert_int_equal(nh_config_parse_file(c, data_path("crlf_bom.ini"), err, sizeof err), 0);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, 64 * 1024);
  assert_int_equal(find_override(c, 0)->reserve.milli_pct, 2000);
  free(c);
  c = new_defaults();
  nh_config *d = new_defaults();
  assert_int_equal(nh_config_parse_file(c, data_path("empty.ini"), err, sizeof err), 0);
  assert_memory_equal(c, d, sizeof *c);
  free(c);
  free(d);
}

/* ---- every error, with its exact message, and the config unchanged --------------------- */

static void test_unknown_names(void **state UNUSED) {
  expect_error("; budget\n\n[heap]\nbudget = 1G\n\n\nbudgett = 2G\n",
               "cfg.ini:7: unknown key \"budgett\" in section [heap]");
  expect_error("[heap]\nbudget = 1G\n[heapp]\nbudget = 2G\n", "cfg.ini:3: unknown section [heapp]");
  expect_error("[cache]\n[Heap]\n", "cfg.ini:2: unknown section [Heap]");
  expect_error("budget = 1G\n", "cfg.ini:1: key \"budget\" is outside any section");
  expect_error("[node:2]\nsize = 1G\n",
               "cfg.ini:2: unknown key \"size\" in section [node:2] (only budget and reserve)");
}

static void test_node_errors(void **state UNUSED) {
  expect_error("[node:x]\nbudget = 1G\n",
               "cfg.ini:1: bad node number in section [node:x] (use [node:N], N from 0 to 4095)");
  expect_error("[heap]\n[node:-1]\n",
               "cfg.ini:2: bad node number in section [node:-1] (use [node:N], N from 0 to 4095)");
  expect_error("[node:]\n", "cfg.ini:1: bad node number in section [node:] (use [node:N], N from 0 "
                            "to 4095)");
  expect_error("[node:4096]\nbudget = 1G\n", "cfg.ini:1: node number 4096 in section [node:4096] "
                                            "is above 4095");
  expect_error("[node:99999999999999999999999]\n", "cfg.ini:1: node number 99999999999999999999999 "
                                                    "in section [node:99999999999999999999999] is "
                                                    "above 4095");
  expect_error("[node:3]\nbudget = 101%\n",
               "cfg.ini:2: [node:3] budget: 101% is more than 100% of the node's memory");
}

static void test_value_errors(void **state UNUSED) {
  expect_error("[heap]\nbudget = 1G\n\n\n\n\n\n[cache]\nsize = 12Q\n",
               "cfg.ini:9: [cache] size: \"12Q\" is not a size (use bytes with an optional K, M, "
               "G or T suffix)");
  expect_error("[cache]\nsize = 10%\n", "cfg.ini:2: [cache] size: \"10%\" is not a size (use "
                                        "bytes with an optional K, M, G or T suffix)");
  expect_error("[cache]\nsize =\n", "cfg.ini:2: [cache] size: \"\" is not a size (use bytes with "
                                    "an optional K, M, G or T suffix)");
  expect_error("[cache]\nsize = -1\n", "cfg.ini:2: [cache] size: \"-1\" is not a size (use bytes "
                                       "with an optional K, M, G or T suffix)");
  expect_error("\n\n[notify]\nlow = 150\n",
               "cfg.ini:4: [notify] low: 150 is not a percentage between 0 and 100");
  expect_error("[notify]\nhigh = 50.5.5\n",
               "cfg.ini:2: [notify] high: \"50.5.5\" is not a percentage between 0 and 100");
  expect_error("[criticality]\ntask.limit = 12.3456%\n", "cfg.ini:2: [criticality] task.limit: "
                                                         "\"12.3456%\" is not a percentage between 0 and 100");
  expect_error("[criticality]\n\n\n\n\n\n\n\n\n\n\ntask.spill = far\n",
               "cfg.ini:12: [criticality] task.spill: \"far\" is not one of none, package, any");
  expect_error("[heap]\nhuge_pages = always\n",
               "cfg.ini:2: [heap] huge_pages: \"always\" is not one of off, thp, hugetlb");
  expect_error("[cache]\nmode = PerCPU\n",
               "cfg.ini:2: [cache] mode: \"PerCPU\" is not one of percpu, perthread, off");
  expect_error("[heap]\ndefault_level = high\n", "cfg.ini:2: [heap] default_level: \"high\" is not "
                                                 "one of task, appdomain, process");
  expect_error("[stats]\nprint = yes\n",
               "cfg.ini:2: [stats] print: \"yes\" is not one of no, text, json");
  expect_error("[heap]\npurge_delay = 3600001\n",
               "cfg.ini:2: [heap] purge_delay: 3600001 is above the maximum 3600000");
  expect_error("[heap]\npurge_delay = 1s\n",
               "cfg.ini:2: [heap] purge_delay: \"1s\" is not an unsigned integer");
  expect_error("[heap]\npurge_delay = 99999999999999999999\n",
               "cfg.ini:2: [heap] purge_delay: \"99999999999999999999\" does not fit in 64 bits");
}

static void test_size_limits(void **state UNUSED) {
  expect_error("[heap]\nbudget = 16777216T\n",
               "cfg.ini:2: [heap] budget: \"16777216T\" does not fit in 64 bits");
  expect_error("[cache]\nsize = 18446744073709551616\n",
               "cfg.ini:2: [cache] size: \"18446744073709551616\" does not fit in 64 bits");
  expect_error("[heap]\nbudget = 100.001%\n",
               "cfg.ini:2: [heap] budget: 100.001% is more than 100% of the node's memory");
  expect_error("[heap]\nreserve = 250%\n",
               "cfg.ini:2: [heap] reserve: 250% is more than 100% of the node's memory");
  expect_error("[heap]\nbudget = lots\n",
               "cfg.ini:2: [heap] budget: \"lots\" is not a size or percentage (use bytes with an "
               "optional K, M, G or T suffix, or a percentage such as 80%)");
}

static void test_cross_key_errors(void **state UNUSED) {
  expect_error("[topology]\nsynthetic = numa:2 pu:1\nxml = /tmp/x.xml\n",
               "cfg.ini:3: [topology]: synthetic and xml are both set; choose one");
  expect_error("[topology]\nxml = /tmp/x.xml\nsynthetic = numa:2 pu:1\n",
               "cfg.ini:3: [topology]: synthetic and xml are both set; choose one");
  expect_error("[notify]\nlow = 50\nhigh = 70\n",
               "cfg.ini:3: [notify]: high (70) is above low (50); high must be <= low");
  expect_error("[notify]\nhigh = 95\n",
               "cfg.ini:2: [notify]: high (95) is above low (90); high must be <= low");
  expect_error("[notify]\nhigh = 40\n\nlow = 39.5\n",
               "cfg.ini:4: [notify]: high (40) is above low (39.500); high must be <= low");
  expect_error("[heap]\nbudget = 1G\nreserve = 1M\nbudget = 2G\n",
               "cfg.ini:4: duplicate key \"budget\" in section [heap] (first set on line 2)");
  expect_error("[node:1]\nbudget = 1G\n[heap]\n[node:1]\nbudget = 2G\n",
               "cfg.ini:5: duplicate key \"budget\" in section [node:1] (first set on line 2)");
  /* An empty xml does not name a second topology source. */
  nh_config *c = parse_ok("[topology]\nsynthetic = numa:2 pu:1\nxml =\n");
  assert_string_equal(c->synthetic, "numa:2 pu:1");
  free(c);
}

static void test_syntax_errors(void **state UNUSED) {
  expect_error("[heap]\nbudget 1G\n", "cfg.ini:2: syntax error");
  expect_error("[heap\nbudget = 1G\n", "cfg.ini:1: syntax error");
  expect_error("[heap]\nbudget = 1G\n  reserve = 2M\n",
               "cfg.ini:3: indented line continues the previous value; multi-line values are not "
               "supported (remove the indentation)");
  expect_error("[cache]\nsize = 1M\n  [heap]\n",
               "cfg.ini:3: indented line continues the previous value; multi-line values are not "
               "supported (remove the indentation)");
  /* Indentation before the first key of a section is fine. */
  nh_config *c = parse_ok("  [cache]\n  size = 2M\n");
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, 2 * MiB);
  free(c);
  /* INI_MAX_LINE - 3 = 197 characters fit on a line; 198 do not. */
  char text[512], fits[200], too_long[200];
  memset(fits, 'a', 197), fits[197] = '\0', fits[0] = ';';
  memset(too_long, 'b', 198), too_long[198] = '\0', too_long[0] = ';';
  snprintf(text, sizeof text, "[heap]\n%s\n%s\n", fits, too_long);
  expect_error(text, "cfg.ini:3: line too long (198 characters; at most 197)");
  snprintf(text, sizeof text, "[heap]\n%s\r\n", fits);
  free(parse_ok(text));
}

static void test_string_errors(void **state UNUSED) {
  nh_config *c = new_defaults();
  assert_int_equal(nh_config_parse_string(c, NULL, "x", err, sizeof err), -1);
  assert_string_equal(err, "x: no text to parse");
  char *big = malloc(NH_OPT_STRLEN + 2);
  memset(big, 'x', NH_OPT_STRLEN);
  big[NH_OPT_STRLEN] = '\0';
  assert_int_equal(nh_config_set(c, "topology", "xml", big, err, sizeof err), -1);
  assert_string_equal(err, "[topology] xml: value is 4096 bytes long; at most 4095");
  big[NH_OPT_STRLEN - 1] = '\0';
  assert_int_equal(nh_config_set(c, "topology", "xml", big, err, sizeof err), 0);
  assert_int_equal(strlen(c->xml), NH_OPT_STRLEN - 1);
  free(big);
  assert_int_equal(nh_config_set(c, "topology", "xml", "/a\nb", err, sizeof err), -1);
  assert_string_equal(err, "[topology] xml: \"/a\nb\" contains a control character");
  assert_int_equal(nh_config_set(c, "topology", "xml", "/a ;b", err, sizeof err), -1);
  assert_string_equal(err, "[topology] xml: \"/a ;b\" has a ';' after a blank, which starts a "
                           "comment");
  assert_int_equal(nh_config_set(c, "topology", "xml", "/a;b", err, sizeof err), 0);
  { /* a short line followed by many '\r's must not overflow the parser's line buffer */
    char text[2048] = "[heap]\nbudget = 1G";
    size_t n = strlen(text);
    memset(text + n, '\r', 1500);
    strcpy(text + n + 1500, "\n[cache]\nsize = 1M\n");
    assert_int_equal(nh_config_parse_string(c, text, "cr.ini", err, sizeof err), 0);
    assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, 1024 * 1024);
  }
  assert_int_equal(nh_config_set(c, "topology", "synthetic", ";=", err, sizeof err), -1);
  assert_string_equal(err, "[topology] synthetic: \";=\" starts with ';', which starts a comment");
  assert_int_equal(nh_config_parse_string(c, "[topology]\nsynthetic :;=\n", "f.ini", err, sizeof err), -1);
  assert_non_null(strstr(err, "f.ini:2: "));
  assert_int_equal(nh_config_set(c, "heapp", "budget", "1G", err, sizeof err), -1);
  assert_string_equal(err, "unknown section [heapp]");
  assert_int_equal(nh_config_set(c, "heap", "size", "1G", err, sizeof err), -1);
  assert_string_equal(err, "unknown key \"size\" in section [heap]");
  assert_int_equal(nh_config_set(c, "node:7", "budget", "2G", err, sizeof err), 0);
  assert_int_equal(find_override(c, 7)->budget.bytes, 2048 * MiB);
  free(c);
}

static void test_too_many_overrides(void **state UNUSED) {
  nh_config *c = new_defaults();
  for (int n = 0; n < NH_MAX_NODE_OVERRIDES; n++) {
    char section[16];
    snprintf(section, sizeof section, "node:%d", n * 3);
    assert_int_equal(nh_config_set(c, section, "budget", "1G", err, sizeof err), 0);
  }
  assert_int_equal(nh_config_set(c, "node:3", "reserve", "1M", err, sizeof err), 0);
  assert_int_equal(nh_config_set(c, "node:1", "budget", "1G", err, sizeof err), -1);
  assert_string_equal(err, "[node:1] budget: too many node sections (at most 1024 nodes)");
  assert_int_equal(c->noverrides, NH_MAX_NODE_OVERRIDES);
  for (int i = 1; i < c->noverrides; i++) assert_true(c->overrides[i - 1].node < c->overrides[i].node);
  free(c);
}

/* ---- files ---------------------------------------------------------------------------- */

static void expect_file_error(const char *path, const char *message) {
  nh_config *c = new_defaults();
  nh_config *before = malloc(sizeof *before);
  memcpy(before, c, sizeof *c);
  err[0] = '\0';
  assert_int_equal(nh_config_parse_file(c, path, err, sizeof err), -1);
  assert_string_equal(err, message);
  assert_memory_equal(c, before, sizeof *c);
  free(before);
  free(c);
}

static void test_file_errors(void **state UNUSED) {
  char want[4200];
  const char *p = data_path("does-not-exist.ini");
  snprintf(want, sizeof want, "%s: cannot read: No such file or directory", p);
  expect_file_error(p, want);
  expect_file_error("", "the config file path is empty");
  expect_file_error(NULL, "the config file path is empty");
  p = data_path("");
  snprintf(want, sizeof want, "%s: cannot read: Is a directory", p);
  expect_file_error(p, want);
  p = data_path("syntax.ini");
  snprintf(want, sizeof want, "%s:3: syntax error", p);
  expect_file_error(p, want);
  p = data_path("long_line.ini");
  snprintf(want, sizeof want, "%s:2: line too long (249 characters; at most 197)", p);
  expect_file_error(p, want);
  p = data_path("both_topology.ini");
  snprintf(want, sizeof want, "%s:5: [topology]: synthetic and xml are both set; choose one", p);
  expect_file_error(p, want);
  p = data_path("bad_size.ini");
  snprintf(want, sizeof want, "%s:5: [cache] size: \"12Q\" is not a size (use bytes with an "
                              "optional K, M, G or T suffix)", p);
  expect_file_error(p, want);
}

/* Writes size bytes of comment lines (and a last key) to a new temp file. */
static void write_temp(char *path, size_t size, const char *extra, size_t extra_len) {
  strcpy(path, "/tmp/nh_test_config_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  size_t body = size - extra_len;
  for (size_t done = 0; done < body;) {
    size_t n = body - done > 100 ? 100 : body - done;
    char line[101];
    memset(line, '#', n);
    line[n - 1] = '\n';
    fwrite(line, 1, n, f);
    done += n;
  }
  fwrite(extra, 1, extra_len, f);
  assert_int_equal(fclose(f), 0);
}

static void test_file_size_limit(void **state UNUSED) {
  char path[64], want[256];
  static const char key[] = "[cache]\nsize = 8K\n";
  write_temp(path, NH_CONFIG_MAX_FILE, key, sizeof key - 1);
  nh_config *c = new_defaults();
  assert_int_equal(nh_config_parse_file(c, path, err, sizeof err), 0);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, 8192);
  free(c);
  unlink(path);
  write_temp(path, NH_CONFIG_MAX_FILE + 1, key, sizeof key - 1);
  snprintf(want, sizeof want, "%s: file is larger than 1 MiB (1048576 bytes)", path);
  expect_file_error(path, want);
  unlink(path);
  static const char nul[] = "[heap]\nbudget = 1G\0\n";
  write_temp(path, sizeof nul - 1, nul, sizeof nul - 1);
  snprintf(want, sizeof want, "%s:2: NUL byte in the line", path);
  expect_file_error(path, want);
  unlink(path);
}

static void test_unreadable_file(void **state UNUSED) {
  if (geteuid() == 0) skip(); /* root reads any file */
  char path[64], want[256];
  write_temp(path, 20, "[cache]\nsize = 8K\n", 18);
  assert_int_equal(chmod(path, 0), 0);
  snprintf(want, sizeof want, "%s: cannot read: Permission denied", path);
  expect_file_error(path, want);
  unlink(path);
}

/* ---- the environment -------------------------------------------------------------------- */

static void test_env_every_option(void **state UNUSED) {
  static const char *const good[NH_OPT_COUNT] = {
      [NH_OPT_TOPOLOGY_SYNTHETIC] = "numa:4 pu:2", [NH_OPT_TOPOLOGY_XML] = "",
      [NH_OPT_TOPOLOGY_DISCOVERY] = "sysfs",
      [NH_OPT_HEAP_BUDGET] = "1G", [NH_OPT_HEAP_RESERVE] = "2%",
      [NH_OPT_HEAP_PURGE_DELAY] = "5", [NH_OPT_HEAP_DEFAULT_LEVEL] = "task",
      [NH_OPT_HEAP_HUGE_PAGES] = "off", [NH_OPT_HEAP_HUGE_KEEP] = "0",
      [NH_OPT_TASK_LIMIT] = "90%", [NH_OPT_TASK_SPILL] = "any",
      [NH_OPT_APPDOMAIN_SPILL] = "none", [NH_OPT_PROCESS_SPILL] = "package",
      [NH_OPT_CACHE_MODE] = "off", [NH_OPT_CACHE_SIZE] = "32K", [NH_OPT_NOTIFY_LOW] = "80",
      [NH_OPT_NOTIFY_HIGH] = "20%", [NH_OPT_STATS_PRINT] = "text", [NH_OPT_STATS_PUBLISH] = "no",
      [NH_OPT_STATS_PUBLISH_INTERVAL] = "30",
      [NH_OPT_SAFETY_MODE] = "paranoid", [NH_OPT_CACHE_TRANSFER_SIZE] = "256K",
      [NH_OPT_CACHE_TRANSFER_DECAY] = "0", [NH_OPT_HEAP_BIND] = "strict",
      [NH_OPT_CGROUP_SPLIT] = "equal", [NH_OPT_CGROUP_SHARE] = "75%",
      [NH_OPT_CGROUP_REREAD] = "250", [NH_OPT_NOTIFY_PSI] = "500",
  };
  char vars[NH_OPT_COUNT][128];
  const char *envp[NH_OPT_COUNT + 1];
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    snprintf(vars[i], sizeof vars[i], "%s=%s", nh_options[i].env, good[i]);
    envp[i] = vars[i];
  }
  envp[NH_OPT_COUNT] = NULL;
  nh_config *c = env_ok(envp);
  nh_config *want = new_defaults();
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    assert_int_equal(nh_config_set(want, nh_options[i].section, nh_options[i].key, good[i], err,
                                   sizeof err), 0);
    assert_int_equal(c->set[i], 1);
  }
  assert_true(nh_config_same(c, want));
  assert_string_equal(c->synthetic, "numa:4 pu:2");
  assert_int_equal(c->v[NH_OPT_HEAP_BUDGET].size.bytes, 1024 * MiB);
  assert_int_equal(c->v[NH_OPT_NOTIFY_HIGH].milli_pct, 20000);
  assert_int_equal(c->v[NH_OPT_STATS_PUBLISH].choice, NH_PUBLISH_NO);
  assert_int_equal(c->v[NH_OPT_STATS_PUBLISH_INTERVAL].u, 30);
  free(c);
  free(want);
}

static void test_env_nodes_and_ignored(void **state UNUSED) {
  const char *envp[] = {"PATH=/bin", "NUMAHEAP_NODE1_BUDGET=512M", "NUMAHEAP_NODE0_RESERVE= 3% ",
                        "NUMAHEAP_CONFIG=/nonexistent.ini", "NUMAHEAP_STATS=json",
                        "NUMAHEAP_TEST_DATA=/x", "NUMAHEAP_TEST_ANYTHING=1",
                        "NUMAHEAP_CRITICALITY_TASK_LIMIT=90%", "NUMAHEAP_NODE4095_BUDGET=0", NULL};
  nh_config *c = env_ok(envp);
  assert_int_equal(c->noverrides, 3);
  assert_int_equal(find_override(c, 1)->budget.bytes, 512 * MiB);
  assert_false(find_override(c, 1)->has_reserve);
  assert_int_equal(find_override(c, 0)->reserve.milli_pct, 3000);
  assert_true(find_override(c, 4095)->has_budget);
  assert_int_equal(c->v[NH_OPT_TASK_LIMIT].milli_pct, 90000);
  free(c);
}

static void test_env_errors(void **state UNUSED) {
  const char *a[] = {"NUMAHEAP_HEAP_BUDGET=lots", NULL};
  expect_env_error(a, "NUMAHEAP_HEAP_BUDGET: \"lots\" is not a size or percentage (use bytes with "
                      "an optional K, M, G or T suffix, or a percentage such as 80%)");
  const char *b[] = {"NUMAHEAP_HEAP_BUDGET=1G", "NUMAHEAP_HEAP_BUDGETT=2G", NULL};
  expect_env_error(b, "NUMAHEAP_HEAP_BUDGETT: unknown numaheap variable");
  const char *c2[] = {"NUMAHEAP_NODEX_BUDGET=1G", NULL};
  expect_env_error(c2, "NUMAHEAP_NODEX_BUDGET: unknown numaheap variable");
  const char *d[] = {"NUMAHEAP_NODE1_SIZE=1G", NULL};
  expect_env_error(d, "NUMAHEAP_NODE1_SIZE: unknown numaheap variable");
  const char *e[] = {"NUMAHEAP_NODE4096_BUDGET=1G", NULL};
  expect_env_error(e, "NUMAHEAP_NODE4096_BUDGET: node number 4096 is above 4095");
  const char *f[] = {"NUMAHEAP_NODE123456789012345678901_RESERVE=1G", NULL};
  expect_env_error(f, "NUMAHEAP_NODE123456789012345678901_RESERVE: node number "
                      "123456789012345678901 is above 4095");
  const char *g[] = {"NUMAHEAP_NODE2_RESERVE=200%", NULL};
  expect_env_error(g, "NUMAHEAP_NODE2_RESERVE: 200% is more than 100% of the node's memory");
  const char *h[] = {"NUMAHEAP_CACHE_SIZE=1M", "NUMAHEAP_CACHE_SIZE=2M", NULL};
  expect_env_error(h, "NUMAHEAP_CACHE_SIZE: set twice in the environment");
  const char *i[] = {"NUMAHEAP_TOPOLOGY_XML=/t.xml", "NUMAHEAP_TOPOLOGY_SYNTHETIC=numa:2", NULL};
  expect_env_error(i, "NUMAHEAP_TOPOLOGY_SYNTHETIC and NUMAHEAP_TOPOLOGY_XML are both set; "
                      "choose one");
  const char *j[] = {"NUMAHEAP_NOTIFY_HIGH=91", NULL};
  expect_env_error(j, "NUMAHEAP_NOTIFY_HIGH: high (91) is above low (90); high must be <= low");
  const char *k[] = {"NUMAHEAP_NOTIFY_HIGH=50", "NUMAHEAP_NOTIFY_LOW=40", NULL};
  expect_env_error(k, "NUMAHEAP_NOTIFY_LOW: high (50) is above low (40); high must be <= low");
  const char *l[] = {"NUMAHEAP_CRITICALITY_TASK_SPILL=far", NULL};
  expect_env_error(l, "NUMAHEAP_CRITICALITY_TASK_SPILL: \"far\" is not one of none, package, any");
  const char *m[] = {"NUMAHEAP_TOPOLOGY_XML=/a ;b", NULL};
  expect_env_error(m, "NUMAHEAP_TOPOLOGY_XML: \"/a ;b\" has a ';' after a blank, which starts a "
                      "comment");
  const char *n[] = {"NUMAHEAP_HEAP=1G", NULL};
  expect_env_error(n, "NUMAHEAP_HEAP: unknown numaheap variable");
}

static void test_env_process_environment(void **state UNUSED) {
  assert_int_equal(setenv("NUMAHEAP_CACHE_SIZE", "1M", 1), 0);
  nh_config *c = new_defaults();
  int rc = nh_config_apply_env(c, NULL, err, sizeof err);
  unsetenv("NUMAHEAP_CACHE_SIZE");
  assert_int_equal(rc, 0);
  assert_int_equal(c->v[NH_OPT_CACHE_SIZE].size.bytes, MiB);
  free(c);
}

/* File then environment: the environment wins, key by key. */
static void test_layers(void **state UNUSED) {
  nh_config *c = parse_ok("[topology]\nsynthetic = numa:2 pu:1\n[heap]\nbudget = 1G\n"
                          "reserve = 2M\n[node:1]\nbudget = 3G\n");
  const char *envp[] = {"NUMAHEAP_HEAP_BUDGET=2G", "NUMAHEAP_TOPOLOGY_XML=/t.xml",
                        "NUMAHEAP_NODE1_RESERVE=1M", NULL};
  assert_int_equal(nh_config_apply_env(c, (char *const *)envp, err, sizeof err), 0);
  assert_int_equal(c->v[NH_OPT_HEAP_BUDGET].size.bytes, 2048 * MiB);
  assert_int_equal(c->v[NH_OPT_HEAP_RESERVE].size.bytes, 2 * MiB);
  assert_string_equal(c->xml, "/t.xml");
  assert_string_equal(c->synthetic, "");
  const nh_node_override *o = find_override(c, 1);
  assert_int_equal(o->budget.bytes, 3072 * MiB);
  assert_int_equal(o->reserve.bytes, MiB);
  free(c);
}

/* ---- the round trip ------------------------------------------------------------------------ */

static char *write_to_string(const nh_config *c) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  nh_config_write(c, f);
  assert_int_equal(fclose(f), 0);
  return text;
}

static void round_trip(const nh_config *c) {
  char *text = write_to_string(c);
  nh_config *back = new_defaults();
  int rc = nh_config_parse_string(back, text, "written", err, sizeof err);
  if (rc != 0) print_error("%s\n--- text:\n%s", err, text);
  assert_int_equal(rc, 0);
  assert_true(nh_config_same(c, back));
  for (int i = 0; i < NH_OPT_COUNT; i++)
    if (i != NH_OPT_TOPOLOGY_SYNTHETIC && i != NH_OPT_TOPOLOGY_XML) assert_int_equal(back->set[i], 1);
  free(back);
  free(text);
}

/* A value as long as a config line allows comes back from the written file
 * (the fuzzer's case: "synthetic =" and 186 characters made "synthetic = "
 * and 186, one past the line limit); one longer than any line (from the
 * environment or the API) is named in a comment, and the file still reads. */
static void test_round_trip_long_values(void **state UNUSED) {
  char line[NH_CONFIG_LINE_MAX + 32], value[NH_CONFIG_LINE_MAX];
  size_t vlen = NH_CONFIG_LINE_MAX - strlen("xml=");
  memset(value, 'a', vlen);
  value[0] = '/';
  value[vlen] = '\0';
  snprintf(line, sizeof line, "[topology]\nxml=%s\n", value);
  nh_config *c = new_defaults();
  assert_int_equal(nh_config_parse_string(c, line, "long.ini", err, sizeof err), 0);
  round_trip(c);
  char *text = write_to_string(c);
  assert_non_null(strstr(text, "\nxml=/aaa"));
  free(text);
  static char longer[1000];
  memset(longer, 'b', sizeof longer - 1);
  longer[0] = '/';
  assert_int_equal(nh_config_set(c, "topology", "xml", longer, err, sizeof err), 0);
  text = write_to_string(c);
  assert_non_null(strstr(text, "; xml: the value in force is 999 characters"));
  nh_config *back = new_defaults();
  assert_int_equal(nh_config_parse_string(back, text, "written", err, sizeof err), 0);
  assert_string_equal(back->xml, "");
  free(back);
  free(text);
  free(c);
}

static void test_round_trip(void **state UNUSED) {
  nh_config *c = new_defaults();
  round_trip(c);
  static const char *const values[][3] = {
      {"topology", "xml", "/opt/topo files/x;y.xml"}, {"topology", "discovery", "sysfs"},
      {"heap", "budget", "12345"},
      {"heap", "reserve", "0.125%"}, {"heap", "purge_delay", "0"},
      {"heap", "default_level", "process"}, {"criticality", "task.limit", "33.3%"},
      {"criticality", "task.spill", "none"}, {"criticality", "appdomain.spill", "package"},
      {"criticality", "process.spill", "none"}, {"cache", "mode", "off"},
      {"cache", "size", "3G"}, {"notify", "low", "99.99"}, {"notify", "high", "0.001"},
      {"stats", "print", "json"}, {"node:0", "budget", "100%"}, {"node:3", "reserve", "1025K"},
      {"node:4095", "budget", "18446744073709551615"}, {"node:4095", "reserve", "5T"},
  };
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
    assert_int_equal(nh_config_set(c, values[i][0], values[i][1], values[i][2], err, sizeof err), 0);
  round_trip(c);
  char *text = write_to_string(c);
  assert_non_null(strstr(text, "\n[node:3]\nreserve = 1025K\n"));
  assert_non_null(strstr(text, "\nxml = /opt/topo files/x;y.xml\n"));
  assert_non_null(strstr(text, "\nbudget = 12345\n"));
  assert_non_null(strstr(text, "\nsize = 3G\n"));
  free(text);
  assert_int_equal(nh_config_set(c, "topology", "synthetic", "package:2 numa:2 pu:1", err,
                                 sizeof err), 0);
  round_trip(c);
  /* nh_config_same does see a difference. */
  nh_config *d = new_defaults();
  memcpy(d, c, sizeof *d);
  assert_true(nh_config_same(c, d));
  d->overrides[1].reserve.bytes++;
  assert_false(nh_config_same(c, d));
  memcpy(d, c, sizeof *d);
  d->v[NH_OPT_NOTIFY_HIGH].milli_pct++;
  assert_false(nh_config_same(c, d));
  free(d);
  free(c);
}

/* ---- the docs -------------------------------------------------------------------------- */

/* docs/config.md has one table row per option naming its key, variable and
 * default, so the docs cannot silently miss an option or drift from a default. */
static void test_docs_cover_every_option(void **state UNUSED) {
  char path[4200];
  const char *dir = getenv("NUMAHEAP_TEST_DATA");
  assert_non_null(dir);
  snprintf(path, sizeof path, "%s/../../docs/config.md", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char doc[256 * 1024];
  size_t n = fread(doc, 1, sizeof doc - 1, f);
  fclose(f);
  doc[n] = '\0';
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    const nh_opt_desc *d = &nh_options[i];
    char cell[128], want[128];
    snprintf(cell, sizeof cell, "\n| `[%s] %s` | `%s` |", d->section, d->key, d->env);
    const char *row = strstr(doc, cell);
    if (row == NULL) print_error("docs/config.md has no row starting %s\n", cell + 1);
    assert_non_null(row);
    const char *end = strchr(row + 1, '\n');
    if (d->default_text[0]) snprintf(want, sizeof want, "| `%s` |", d->default_text);
    else snprintf(want, sizeof want, "| empty |");
    const char *hit = strstr(row, want);
    if (hit == NULL || hit > end) print_error("row %s: default %s missing\n", cell + 1, want);
    assert_true(hit != NULL && hit < end);
  }
}

/* ---- no malloc while parsing ------------------------------------------------------------- */

static void test_no_malloc(void **state UNUSED) {
  if (!COUNT_MALLOCS) skip(); /* the sanitizers own malloc */
#if COUNT_MALLOCS
  nh_config *c = new_defaults();
  char path[4200];
  snprintf(path, sizeof path, "%s", data_path("full.ini"));
  char missing[4200];
  snprintf(missing, sizeof missing, "%s", data_path("does-not-exist.ini"));
  const char *envp[] = {"NUMAHEAP_HEAP_BUDGET=1G", "NUMAHEAP_NODE3_BUDGET=1G", NULL};
  const char *bad_env[] = {"NUMAHEAP_HEAP_BUDGET=lots", NULL};
  void *probe = malloc(1); /* the counter works */
  free(probe);
  g_mallocs = 0;
  g_counting = 1;
  probe = malloc(1);
  g_counting = 0;
  free(probe);
  assert_int_equal(g_mallocs, 1);
  g_mallocs = 0;
  g_counting = 1;
  nh_config_defaults(c);
  int ok_file = nh_config_parse_file(c, path, err, sizeof err);
  int bad_file = nh_config_parse_file(c, missing, err, sizeof err);
  int bad_text = nh_config_parse_string(c, "[heap]\nbudget = 12Q\n", "x", err, sizeof err);
  int ok_env = nh_config_apply_env(c, (char *const *)envp, err, sizeof err);
  int bad = nh_config_apply_env(c, (char *const *)bad_env, err, sizeof err);
  g_counting = 0;
  assert_int_equal(ok_file, 0);
  assert_int_equal(bad_file, -1);
  assert_int_equal(bad_text, -1);
  assert_int_equal(ok_env, 0);
  assert_int_equal(bad, -1);
  assert_int_equal(g_mallocs, 0);
  free(c);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_is_consistent),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_topology_keys),
      cmocka_unit_test(test_heap_keys),
      cmocka_unit_test(test_size_suffixes),
      cmocka_unit_test(test_criticality_keys),
      cmocka_unit_test(test_cache_notify_stats_keys),
      cmocka_unit_test(test_node_sections),
      cmocka_unit_test(test_full_file),
      cmocka_unit_test(test_crlf_bom_and_empty_files),
      cmocka_unit_test(test_unknown_names),
      cmocka_unit_test(test_node_errors),
      cmocka_unit_test(test_value_errors),
      cmocka_unit_test(test_size_limits),
      cmocka_unit_test(test_cross_key_errors),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_string_errors),
      cmocka_unit_test(test_too_many_overrides),
      cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_file_size_limit),
      cmocka_unit_test(test_unreadable_file),
      cmocka_unit_test(test_env_every_option),
      cmocka_unit_test(test_env_nodes_and_ignored),
      cmocka_unit_test(test_env_errors),
      cmocka_unit_test(test_env_process_environment),
      cmocka_unit_test(test_layers),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_round_trip_long_values),
      cmocka_unit_test(test_docs_cover_every_option),
      cmocka_unit_test(test_no_malloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
