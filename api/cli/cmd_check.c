/* api/cli/cmd_check.c: numaheap check-config FILE. */
#include <stdio.h>
#include <string.h>

#include "api/cli/cli.h"

static int check_config_main(int argc, char **argv);

const nh_cli_command nh_cli_check_config = {
    "check-config", "FILE",
    "Reads FILE as numaheap reads a configuration file (docs/config.md) and checks\n"
    "every section, key and value, and that a topology it names ([topology]\n"
    "synthetic or xml) loads. The environment is not consulted.\n"
    "\n"
    "Exit status: 0 and \"FILE: ok\" on stdout for a good file; 2 with\n"
    "\"FILE:LINE: problem\" on stderr otherwise (or \"FILE: problem\" when the\n"
    "file cannot be read or its topology cannot be loaded).\n",
    check_config_main};

/* A topology named by the file must also load. 0, or -1 with the message printed. */
static int check_topology(const char *file, const nh_config *cfg) {
  if (!cfg->synthetic[0] && !cfg->xml[0]) return 0;
  char err[600];
  nh_topo topo;
  nh_topo_source src = nh_config_topo_source(cfg);
  if (nh_topo_load(&topo, &src, err, sizeof err) != 0) {
    fprintf(stderr, "%s: [topology] %s: %s\n", file, cfg->synthetic[0] ? "synthetic" : "xml", err);
    return -1;
  }
  nh_topo_free(&topo);
  return 0;
}

static int check_config_main(int argc, char **argv) {
  const char *file = NULL;
  for (int i = 1; i < argc; i++) {
    if (nh_cli_is_help(&nh_cli_check_config, argv[i])) return 0;
    if (!strcmp(argv[i], "--") && i + 1 < argc && file == NULL) file = argv[++i];
    else if (argv[i][0] == '-' && argv[i][1] != '\0')
      return nh_cli_bad_usage(&nh_cli_check_config, "unknown option \"%s\"", argv[i]);
    else if (file == NULL) file = argv[i];
    else return nh_cli_bad_usage(&nh_cli_check_config, "expects one FILE, got more");
  }
  if (file == NULL) return nh_cli_bad_usage(&nh_cli_check_config, "no FILE given");
  static nh_config cfg;
  char err[600];
  nh_config_defaults(&cfg);
  if (nh_config_parse_file(&cfg, file, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  if (check_topology(file, &cfg) != 0) return 2;
  printf("%s: ok\n", file);
  return 0;
}
