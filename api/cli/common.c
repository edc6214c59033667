/* api/cli/common.c: option parsing, config and topology loading shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cli/cli.h"

int nh_cli_is_help(const nh_cli_command *cmd, const char *arg) {
  if (strcmp(arg, "--help") != 0 && strcmp(arg, "-h") != 0) return 0;
  printf("usage: numaheap %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
  return 1;
}

int nh_cli_opt_value(const nh_cli_command *cmd, int argc, char **argv, int *i, const char *name,
                     const char **value) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0) return 0;
  if (a[2 + n] == '=') {
    *value = a + 3 + n;
  } else if (a[2 + n] == '\0') {
    if (*i + 1 >= argc) {
      nh_cli_bad_usage(cmd, "option --%s needs a value", name);
      return -1;
    }
    *value = argv[++*i];
  } else {
    return 0;
  }
  if (**value == '\0') {
    nh_cli_bad_usage(cmd, "option --%s needs a value", name);
    return -1;
  }
  return 1;
}

int nh_cli_parse_long(const nh_cli_command *cmd, const char *opt, const char *s, long lo, long hi,
                      long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    nh_cli_bad_usage(cmd, "%s must be a whole number from %ld to %ld, not \"%s\"", opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int nh_cli_parse_double(const nh_cli_command *cmd, const char *opt, const char *s, double lo,
                        double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || !(v > lo) || v > hi) {
    nh_cli_bad_usage(cmd, "%s must be a number above %g and at most %g, not \"%s\"", opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

extern char **environ;

/* The environment without the variables that belong to this command
 * (NUMAHEAP_LIB), which the allocator's options do not know. NULL-terminated;
 * the caller frees the array (not the strings). */
static char **allocator_environment(void) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **env = calloc(n + 1, sizeof *env);
  if (env == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "NUMAHEAP_LIB=", 13) != 0) env[k++] = environ[i];
  return env;
}

int nh_cli_load_config(nh_config *cfg, const char *path) {
  char err[600];
  nh_config_defaults(cfg);
  if (path == NULL && (path = getenv("NUMAHEAP_CONFIG")) != NULL && *path == '\0') path = NULL;
  if (path && nh_config_parse_file(cfg, path, err, sizeof err) != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  char **env = allocator_environment();
  if (env == NULL) {
    fprintf(stderr, "numaheap: out of memory\n");
    return -1;
  }
  int rc = nh_config_apply_env(cfg, env, err, sizeof err);
  free(env);
  if (rc != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  return 0;
}

int nh_cli_load_topology(const nh_config *cfg, nh_topo *topo) {
  char err[600];
  nh_topo_source src = nh_config_topo_source(cfg);
  if (nh_topo_load(topo, &src, err, sizeof err) != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  return 0;
}
