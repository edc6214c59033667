/*
 * api/cli/cli.h: the subcommands of the numaheap command.
 *
 * Exit status, the same for every subcommand (docs/cli.md):
 *   0 success; 1 the work failed (a topology that cannot be loaded, no
 *   libnumaheap.so to preload); 2 bad usage or a bad configuration file;
 *   3-6 `stats` and `top` could not read the process (NH_CLI_EXIT_*);
 *   126/127 `run` could not execute PROGRAM (as shells report it);
 *   otherwise `run` exits with PROGRAM's own status.
 */
#ifndef NH_CLI_H
#define NH_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "api/options.h"
#include "api/publish_layout.h"
#include "numaheap/numaheap.h"
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
extern const nh_cli_command nh_cli_stats;        /* cmd_stats.c */
extern const nh_cli_command nh_cli_top;          /* cmd_top.c */

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

/* ---- region.c: another process's published statistics ---------------------- */
/* Exit statuses of `stats` and `top` when a process cannot be read. */
enum {
  NH_CLI_EXIT_NO_PROCESS = 3,    /* no such PID (or it has exited) */
  NH_CLI_EXIT_NOT_NUMAHEAP = 4,  /* the process publishes no numaheap statistics */
  NH_CLI_EXIT_PERMISSION = 5,    /* another user's process (and we are not root) */
  NH_CLI_EXIT_VERSION = 6,       /* a layout version this command does not read */
};

typedef struct nh_cli_region {
  pid_t pid;
  char comm[64];               /* the process's command name */
  const nh_pub_header *map;    /* the live region, read-only */
  size_t map_size;
  unsigned char *copy;         /* the last consistent copy (nh_cli_region_read) */
  const nh_pub_header *h;      /* == copy once read */
} nh_cli_region;

/* Finds PID's region. 0, or an NH_CLI_EXIT_* status with the message on
 * stderr (quiet: no message). */
int nh_cli_region_open(pid_t pid, int quiet, nh_cli_region *r);
/* Takes a consistent copy into r->copy / r->h. 0, or an exit status (1: no
 * consistent copy in 2 s; NH_CLI_EXIT_VERSION: malformed) with the message. */
int nh_cli_region_read(nh_cli_region *r);
void nh_cli_region_close(nh_cli_region *r);
/* Accessors of the copy: section s (NH_PUB_*), its descriptors, record i,
 * the index of a field by name (-1 if absent), a value by name (0 if absent). */
const nh_pub_section *nh_cli_section(const nh_cli_region *r, int s);
const nh_pub_field *nh_cli_fields(const nh_cli_region *r, int s);
const uint64_t *nh_cli_record(const nh_cli_region *r, int s, uint32_t i);
int nh_cli_field(const nh_cli_region *r, int s, const char *name);
uint64_t nh_cli_value(const nh_cli_region *r, int s, uint32_t i, const char *name);
/* "12.0 MiB" (powers of 1024; "512 B" under 1 KiB). */
void nh_cli_bytes(char *buf, size_t len, uint64_t v);
/* Parses a PID argument. 0, or -1 with bad usage reported. */
int nh_cli_parse_pid(const nh_cli_command *cmd, const char *s, pid_t *pid);

#endif
