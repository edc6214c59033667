/*
 * api/cli/cmd_run.c: numaheap run [--config FILE] [--stats[=text|json]] [--] PROGRAM ARGS...
 * Runs PROGRAM with libnumaheap.so preloaded (so it and every program it
 * starts allocate through numaheap), the config named through NUMAHEAP_CONFIG
 * (checked first), and NUMAHEAP_STATS set for --stats: numaheap then prints
 * each process's statistics on its stderr when it exits.
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

static int run_main(int argc, char **argv);

const nh_cli_command nh_cli_run = {
    "run", "[--config FILE] [--stats[=text|json]] [--] PROGRAM [ARGS...]",
    "Runs PROGRAM with libnumaheap.so preloaded (LD_PRELOAD): its malloc, free,\n"
    "C++ new and delete, and those of every program it starts, are numaheap's.\n"
    "\n"
    "  --config FILE     configuration for numaheap in PROGRAM (checked before\n"
    "                    PROGRAM starts; passed as NUMAHEAP_CONFIG)\n"
    "  --stats[=text]    print numaheap's per-node statistics on stderr when each\n"
    "                    process exits (NUMAHEAP_STATS=1)\n"
    "  --stats=json      the same as one JSON object per process (NUMAHEAP_STATS=json)\n"
    "\n"
    "Options end at \"--\" or at PROGRAM. libnumaheap.so is $NUMAHEAP_LIB if set,\n"
    "else found next to this command or in ../lib, ../" NH_LIBDIR_REL ".\n"
    "Exit status: PROGRAM's; 2 for bad usage or a bad configuration; 1 when\n"
    "libnumaheap.so is not found; 127 when PROGRAM is not found, 126 when it\n"
    "cannot be executed.\n",
    run_main};

#ifndef NH_LIB_SONAME
#define NH_LIB_SONAME "libnumaheap.so.0"
#endif

/* Finds libnumaheap.so: $NUMAHEAP_LIB, next to this executable (build tree),
 * or in the install's library folder, into out (PATH_MAX bytes); there, the
 * development link libnumaheap.so or else the runtime's SONAME (the Debian
 * package numaheap needs only libnumaheap0). 0, or -1 with the message
 * printed. */
static int find_library(char out[PATH_MAX]) {
  const char *env = getenv("NUMAHEAP_LIB");
  if (env && *env) {
    if (access(env, R_OK) == 0 && realpath(env, out) != NULL) return 0;
    fprintf(stderr, "numaheap: run: NUMAHEAP_LIB=%s: %s\n", env, strerror(errno));
    return -1;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    const char *rel[] = {"", "/..", ("/../" NH_LIBDIR_REL), "/../lib"}; /* (): one string */
    const char *names[] = {"libnumaheap.so", NH_LIB_SONAME};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
      for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof cand, "%s%s/%s", exe, rel[i], names[k]);
        if (access(cand, R_OK) == 0 && realpath(cand, out) != NULL) return 0;
      }
  }
  fprintf(stderr, "numaheap: run: cannot find libnumaheap.so next to this command or in ../lib "
                  "(set NUMAHEAP_LIB to its path)\n");
  return -1;
}

static int set_preload(const char *lib) {
  const char *old = getenv("LD_PRELOAD");
  char buf[PATH_MAX * 4];
  if (old && *old) snprintf(buf, sizeof buf, "%s:%s", lib, old);
  else snprintf(buf, sizeof buf, "%s", lib);
  return setenv("LD_PRELOAD", buf, 1);
}

/* Parses the options; returns the index of PROGRAM, or -2 (bad usage
 * reported), or -1 (help printed). */
static int parse_options(int argc, char **argv, const char **config, const char **stats) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) return i + 1;
    if (nh_cli_is_help(&nh_cli_run, a)) return -1;
    int got = nh_cli_opt_value(&nh_cli_run, argc, argv, &i, "config", config);
    if (got < 0) return -2;
    if (got > 0) continue;
    if (!strcmp(a, "--stats") || !strcmp(a, "--stats=text")) *stats = "1";
    else if (!strcmp(a, "--stats=json")) *stats = "json";
    else if (!strncmp(a, "--stats=", 8)) {
      nh_cli_bad_usage(&nh_cli_run, "--stats takes text or json, not \"%s\"", a + 8);
      return -2;
    } else if (a[0] == '-') {
      nh_cli_bad_usage(&nh_cli_run, "unknown option \"%s\"", a);
      return -2;
    } else return i; /* PROGRAM without "--" */
  }
  return argc;
}

static int run_main(int argc, char **argv) {
  const char *config = NULL, *stats = NULL;
  int i = parse_options(argc, argv, &config, &stats);
  if (i == -1) return 0;
  if (i < 0) return 2;
  if (i >= argc) return nh_cli_bad_usage(&nh_cli_run, "no PROGRAM given");
  static nh_config cfg; /* the file and the environment, as PROGRAM will read them */
  if (nh_cli_load_config(&cfg, config) != 0) return 2;
  if (config) {
    char abs[PATH_MAX];
    setenv("NUMAHEAP_CONFIG", realpath(config, abs) ? abs : config, 1);
  }
  if (stats) setenv("NUMAHEAP_STATS", stats, 1);
  char lib[PATH_MAX];
  if (find_library(lib) != 0) return 1;
  unsetenv("NUMAHEAP_LIB"); /* this command's, not an option of the allocator in PROGRAM */
  set_preload(lib);
  fflush(NULL);
  execvp(argv[i], argv + i);
  int e = errno;
  fprintf(stderr, "numaheap: run: cannot execute %s: %s\n", argv[i], strerror(e));
  return e == ENOENT || e == ENOTDIR ? 127 : 126;
}
