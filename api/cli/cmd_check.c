/* api/cli/cmd_check.c: numaheap check-config FILE. */
#include <stdio.h>
#include <string.h>

#include "api/cli/cli.h"

int nh_cmd_check_config(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: numaheap check-config FILE\n");
    return 0;
  }
  if (argc != 2) return nh_cli_bad_usage("check-config", "expects exactly one FILE");
  if (argv[1][0] == '-') return nh_cli_bad_usage("check-config", "unknown option \"%s\"", argv[1]);
  static nh_config cfg;
  char err[600];
  nh_config_defaults(&cfg);
  if (nh_config_parse_file(&cfg, argv[1], err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  /* A topology named by the file must also load. */
  if (cfg.synthetic[0] || cfg.xml[0]) {
    nh_topo topo;
    if (nh_cli_load_topology(&cfg, &topo) != 0) return 2;
    nh_topo_free(&topo);
  }
  printf("%s: ok\n", argv[1]);
  return 0;
}
