/* api/cli/cli.h: the subcommands of the numaheap command. Each returns the
 * process exit status: 0 success, 1 failure of the work, 2 bad usage. */
#ifndef NH_CLI_H
#define NH_CLI_H

#include <stdio.h>

#include "api/options.h"
#include "numa/topo.h"

int nh_cmd_topo(int argc, char **argv);
int nh_cmd_run(int argc, char **argv);
int nh_cmd_check_config(int argc, char **argv);
int nh_cmd_demo(int argc, char **argv);

/* Prints the usage summary to out. */
void nh_cli_usage(FILE *out);
/* "numaheap: <cmd>: <message>" on stderr, the usage, and 2. */
int nh_cli_bad_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a config (file or NULL) and the environment into cfg. 0, or -1 with
 * the message printed on stderr. */
int nh_cli_load_config(nh_config *cfg, const char *path);
/* Loads the topology named by cfg. 0, or -1 with the message printed. */
int nh_cli_load_topology(const nh_config *cfg, nh_topo *topo);

#endif
