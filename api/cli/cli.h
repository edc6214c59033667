/*
 * api/cli/cli.h: the subcommands of the numaheap command.
 *
 * Exit status, the same for every subcommand (docs/cli.md):
 *   0 success; 1 the work failed (a topology that cannot be loaded, no
 *   libnumaheap.so to preload); 2 bad usage or a bad configuration file;
 *   126/127 `run` could not execute PROGRAM (as shells report it);
 *   otherwise `run` exits with PROGRAM's own status.
 */
#ifndef NH_CLI_H
#define NH_CLI_H

#include <stdio.h>

#include "api/options.h"
#include "numa/topo.h"

/* One subcommand: name, one-line synopsis (the arguments after the name),
 * the text of `numaheap NAME --help`, and its entry (argv[0] is NAME). */
typedef struct nh_cli_command {
  const char *name;
  const char *synopsis;
  const char *help;
  int (*main)(int argc, char **argv);
} nh_cli_command;

extern const nh_cli_command nh_cli_topo;         /* cmd_topo.c */
extern const nh_cli_command nh_cli_run;          /* cmd_run.c */
extern const nh_cli_command nh_cli_check_config; /* cmd_check.c */
extern const nh_cli_command nh_cli_demo;         /* cmd_demo.c */

/* ---- main.c ---------------------------------------------------------------------- */
/* Prints the usage summary of every command to out. */
void nh_cli_usage(FILE *out);
/* "numaheap: <cmd>: <message>" on stderr, then cmd's synopsis (the whole
 * usage when cmd is NULL) and a pointer to --help; returns 2. */
int nh_cli_bad_usage(const nh_cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- common.c -------------------------------------------------------------------- */
/* 1 when argv[*i] is "-h" or "--help" (prints cmd's help on stdout). */
int nh_cli_is_help(const nh_cli_command *cmd, const char *arg);
/* Options with a value, as "--NAME VALUE" or "--NAME=VALUE": 1 when argv[*i]
 * is option `name` (the value in *value, *i advanced past it), 0 when it is
 * not, -1 when its value is missing (bad usage already reported). */
int nh_cli_opt_value(const nh_cli_command *cmd, int argc, char **argv, int *i, const char *name,
                     const char **value);
/* Parses all of s as an integer in [lo, hi]. 0, or -1 with bad usage reported. */
int nh_cli_parse_long(const nh_cli_command *cmd, const char *opt, const char *s, long lo, long hi,
                      long *out);
/* Parses all of s as a number in (lo, hi]. 0, or -1 with bad usage reported. */
int nh_cli_parse_double(const nh_cli_command *cmd, const char *opt, const char *s, double lo,
                        double hi, double *out);
/* Reads a config (path, or NUMAHEAP_CONFIG when path is NULL) and the
 * NUMAHEAP_* variables into cfg, as the allocator does at start-up. 0, or -1 with
 * the message printed on stderr. */
int nh_cli_load_config(nh_config *cfg, const char *path);
/* Loads the topology named by cfg. 0, or -1 with the message printed. */
int nh_cli_load_topology(const nh_config *cfg, nh_topo *topo);

#endif
