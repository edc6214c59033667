/*
 * api/cli/cmd_run.c: numaheap run [--config FILE] [--stats[=json]] -- PROGRAM ARGS...
 * Runs PROGRAM with libnumaheap.so preloaded, the config named through
 * NUMAHEAP_CONFIG (checked first), and NUMAHEAP_STATS set for --stats.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/cli/cli.h"

#ifndef NH_LIBDIR_REL
#define NH_LIBDIR_REL "lib"
#endif

/* Finds libnumaheap.so: $NUMAHEAP_LIB, next to this executable (build tree),
 * or in the install's library folder. */
static int find_library(char *out, size_t cap) {
  const char *env = getenv("NUMAHEAP_LIB");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
    return access(out, R_OK) == 0 ? 0 : -1;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  const char *rel[] = {"", "/..", "/../" NH_LIBDIR_REL, "/../lib"};
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    char cand[PATH_MAX + 64];
    snprintf(cand, sizeof cand, "%s%s/libnumaheap.so", exe, rel[i]);
    if (access(cand, R_OK) == 0 && realpath(cand, out) != NULL) return 0;
  }
  return -1;
}

static int set_preload(const char *lib) {
  const char *old = getenv("LD_PRELOAD");
  char buf[PATH_MAX * 4];
  if (old && *old) snprintf(buf, sizeof buf, "%s:%s", lib, old);
  else snprintf(buf, sizeof buf, "%s", lib);
  return setenv("LD_PRELOAD", buf, 1);
}

int nh_cmd_run(int argc, char **argv) {
  const char *config = NULL, *stats = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--")) { i++; break; }
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    else if (!strncmp(argv[i], "--config=", 9)) config = argv[i] + 9;
    else if (!strcmp(argv[i], "--stats")) stats = "1";
    else if (!strcmp(argv[i], "--stats=json")) stats = "json";
    else if (!strcmp(argv[i], "--stats=text")) stats = "1";
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: numaheap run [--config FILE] [--stats[=json]] -- PROGRAM [ARGS...]\n");
      return 0;
    } else if (argv[i][0] == '-') return nh_cli_bad_usage("run", "unknown option \"%s\"", argv[i]);
    else break; /* PROGRAM without "--" */
  }
  if (i >= argc) return nh_cli_bad_usage("run", "no PROGRAM given");
  if (config) {
    static nh_config cfg;
    char err[600];
    nh_config_defaults(&cfg);
    if (nh_config_parse_file(&cfg, config, err, sizeof err) != 0) {
      fprintf(stderr, "numaheap: run: %s\n", err);
      return 2;
    }
    char abs[PATH_MAX];
    setenv("NUMAHEAP_CONFIG", realpath(config, abs) ? abs : config, 1);
  }
  if (stats) setenv("NUMAHEAP_STATS", stats, 1);
  char lib[PATH_MAX];
  if (find_library(lib, sizeof lib) != 0) {
    fprintf(stderr, "numaheap: run: cannot find libnumaheap.so (set NUMAHEAP_LIB to its path)\n");
    return 1;
  }
  set_preload(lib);
  execvp(argv[i], argv + i);
  fprintf(stderr, "numaheap: run: cannot execute %s: %s\n", argv[i], strerror(errno));
  return 127;
}
