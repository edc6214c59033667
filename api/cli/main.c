/* api/cli/main.c: the numaheap command: subcommand dispatch, help, --version. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/cli/cli.h"
#include "numaheap/numaheap.h"

static const nh_cli_command *const commands[] = {&nh_cli_topo, &nh_cli_run, &nh_cli_check_config,
                                                 &nh_cli_demo, &nh_cli_stats, &nh_cli_top};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static const nh_cli_command *find_command(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i]->name, name) == 0) return commands[i];
  return NULL;
}

void nh_cli_usage(FILE *out) {
  fprintf(out, "usage: numaheap COMMAND [OPTIONS]\n       numaheap --help | --version\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  numaheap %s %s\n", commands[i]->name, commands[i]->synopsis);
  fprintf(out,
          "\n"
          "  topo          nodes, CPUs, memory, distances, budgets, and the fallback order\n"
          "                of each node at each criticality level\n"
          "  run           run PROGRAM on numaheap (libnumaheap.so preloaded); --stats prints\n"
          "                its per-node statistics when it exits\n"
          "  check-config  validate a configuration file\n"
          "  demo          a server-style workload on numaheap and on the system allocator\n"
          "  stats         the live statistics a running process publishes (text, JSON,\n"
          "                Prometheus); without PID, the processes on numaheap\n"
          "  top           a refreshing per-node table of a running process\n"
          "\n"
          "`numaheap COMMAND --help` describes a command; `man numaheap` all of them.\n"
          "Exit status: 0 success, 1 failure, 2 bad usage or configuration; `stats` and\n"
          "`top`: 3 no such process, 4 not on numaheap, 5 another user's process, 6 an\n"
          "unknown statistics layout; `run` exits with PROGRAM's status (126/127 when it\n"
          "cannot be executed).\n"
          "Environment: NUMAHEAP_CONFIG, NUMAHEAP_STATS, NUMAHEAP_<SECTION>_<KEY>, NUMAHEAP_LIB.\n");
}

int nh_cli_bad_usage(const nh_cli_command *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "numaheap: %s%s", cmd ? cmd->name : "", cmd ? ": " : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  if (cmd)
    fprintf(stderr, "usage: numaheap %s %s\n(numaheap %s --help for details)\n", cmd->name,
            cmd->synopsis, cmd->name);
  else
    nh_cli_usage(stderr);
  return 2;
}

/* numaheap help [COMMAND] */
static int help(int argc, char **argv) {
  if (argc < 3) {
    nh_cli_usage(stdout);
    return 0;
  }
  const nh_cli_command *c = find_command(argv[2]);
  if (c == NULL || argc > 3) return nh_cli_bad_usage(NULL, "help: no command \"%s\"", argv[2]);
  return nh_cli_is_help(c, "--help") ? 0 : 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return nh_cli_bad_usage(NULL, "no command given");
  const char *arg = argv[1];
  if (!strcmp(arg, "--help") || !strcmp(arg, "-h") || !strcmp(arg, "help")) return help(argc, argv);
  if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
    if (argc > 2) return nh_cli_bad_usage(NULL, "--version takes no arguments");
    printf("numaheap %s\n", NUMAHEAP_VERSION_STRING);
    return 0;
  }
  const nh_cli_command *c = find_command(arg);
  if (c != NULL) return c->main(argc - 1, argv + 1);
  if (arg[0] == '-') return nh_cli_bad_usage(NULL, "unknown option \"%s\"", arg);
  return nh_cli_bad_usage(NULL, "unknown command \"%s\"", arg);
}
