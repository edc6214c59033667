/* api/cli/common.c: config and topology loading shared by the subcommands. */
#include <stdio.h>
#include <string.h>

#include "api/cli/cli.h"

int nh_cli_load_config(nh_config *cfg, const char *path) {
  char err[600];
  nh_config_defaults(cfg);
  if (path && nh_config_parse_file(cfg, path, err, sizeof err) != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  if (nh_config_apply_env(cfg, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  return 0;
}

int nh_cli_load_topology(const nh_config *cfg, nh_topo *topo) {
  char err[600];
  nh_topo_source src = {NH_TOPO_REAL, NULL, 0, NULL};
  if (cfg->synthetic[0]) src.kind = NH_TOPO_SYNTHETIC, src.spec = cfg->synthetic;
  else if (cfg->xml[0]) src.kind = NH_TOPO_XML, src.spec = cfg->xml;
  if (nh_topo_load(topo, &src, err, sizeof err) != 0) {
    fprintf(stderr, "numaheap: %s\n", err);
    return -1;
  }
  return 0;
}
