/* api/cli/main.c: the numaheap command: subcommand dispatch, --help, --version. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/cli/cli.h"
#include "numaheap/numaheap.h"

void nh_cli_usage(FILE *out) {
  fprintf(out,
          "usage: numaheap COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  topo [--config FILE] [--json]      nodes, CPUs, memory, distances, budgets and the\n"
          "                                     fallback order of each node at each level\n"
          "  run [--config FILE] [--stats[=json]] -- PROGRAM [ARGS...]\n"
          "                                     run PROGRAM on numaheap (LD_PRELOAD)\n"
          "  check-config FILE                  validate a config file (exit 0, or 2 naming\n"
          "                                     the file, line and problem)\n"
          "  demo [--config FILE] [--threads N] [--seconds S]\n"
          "                                     a multi-threaded server-style workload on\n"
          "                                     numaheap and on the system allocator\n"
          "\n"
          "  --help, -h                         this text\n"
          "  --version, -V                      the version\n"
          "\n"
          "Environment: NUMAHEAP_CONFIG, NUMAHEAP_STATS, NUMAHEAP_<SECTION>_<KEY> (see docs/config.md).\n");
}

int nh_cli_bad_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "numaheap: %s%s", cmd ? cmd : "", cmd ? ": " : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  nh_cli_usage(stderr);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return nh_cli_bad_usage(NULL, "no command given");
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    nh_cli_usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
    printf("numaheap %s\n", NUMAHEAP_VERSION_STRING);
    return 0;
  }
  if (!strcmp(cmd, "topo")) return nh_cmd_topo(argc - 1, argv + 1);
  if (!strcmp(cmd, "run")) return nh_cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "check-config")) return nh_cmd_check_config(argc - 1, argv + 1);
  if (!strcmp(cmd, "demo")) return nh_cmd_demo(argc - 1, argv + 1);
  return nh_cli_bad_usage(NULL, "unknown command \"%s\"", cmd);
}
