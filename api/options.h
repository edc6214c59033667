/*
 * api/options.h: the one options table, and the configuration it fills.
 *
 * Every tunable of numaheap is one row of nh_options[] (api/options.c),
 * indexed by enum nh_opt: its INI section and key, its environment variable
 * (NUMAHEAP_<SECTION>_<KEY>, upper case, '.' -> '_'), its type, default and
 * description. The config file (api/config.c), the environment and the API
 * fill the same nh_config value; api/init.c then hands the parsed values to
 * the numa/ and percpu/ layers.
 *
 * Nothing here allocates from malloc: files are read into memory taken from
 * the OS layer, strings are kept in fixed buffers inside nh_config.
 */
#ifndef NH_API_OPTIONS_H
#define NH_API_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef enum nh_opt {
  NH_OPT_TOPOLOGY_SYNTHETIC, /* [topology] synthetic: hwloc synthetic string */
  NH_OPT_TOPOLOGY_XML,       /* [topology] xml: path of an hwloc XML file */
  NH_OPT_TOPOLOGY_DISCOVERY, /* [topology] discovery: auto|hwloc|sysfs (real machine) */
  NH_OPT_HEAP_BUDGET,        /* [heap] budget: bytes or % of node memory */
  NH_OPT_HEAP_RESERVE,       /* [heap] reserve: bytes or % of node memory */
  NH_OPT_HEAP_PURGE_DELAY,   /* [heap] purge_delay: ms before free pages go back to the OS */
  NH_OPT_HEAP_DEFAULT_LEVEL, /* [heap] default_level: level of malloc/nh_malloc */
  NH_OPT_HEAP_HUGE_PAGES,    /* [heap] huge_pages: off|thp|hugetlb */
  NH_OPT_HEAP_HUGE_KEEP,     /* [heap] huge_keep: bytes of freed huge mappings kept a node */
  NH_OPT_HEAP_BIND,          /* [heap] bind: preferred|strict (mbind policy of segments) */
  NH_OPT_TASK_LIMIT,         /* [criticality] task.limit: % of (budget-reserve) */
  NH_OPT_TASK_SPILL,         /* [criticality] task.spill: none|package|any */
  NH_OPT_APPDOMAIN_SPILL,    /* [criticality] appdomain.spill */
  NH_OPT_PROCESS_SPILL,      /* [criticality] process.spill */
  NH_OPT_CACHE_MODE,         /* [cache] mode: percpu|perthread|off */
  NH_OPT_CACHE_SIZE,         /* [cache] size: bytes per CPU (or per thread) */
  NH_OPT_CACHE_TRANSFER_SIZE,  /* [cache] transfer_size: bytes per node and class, 0 off */
  NH_OPT_CACHE_TRANSFER_DECAY, /* [cache] transfer_decay: ms unused before blocks go back */
  NH_OPT_CGROUP_SPLIT,       /* [cgroup] split: proportional|equal|off */
  NH_OPT_CGROUP_SHARE,       /* [cgroup] share: % of the cgroup's limit the budgets may sum to */
  NH_OPT_CGROUP_REREAD,      /* [cgroup] reread: ms between re-reads while memory is tight */
  NH_OPT_NOTIFY_LOW,         /* [notify] low: load % that raises Low */
  NH_OPT_NOTIFY_HIGH,        /* [notify] high: load % under which High is raised */
  NH_OPT_NOTIFY_PSI,         /* [notify] psi: ms of memory stall per 2 s that is pressure */
  NH_OPT_STATS_PRINT,        /* [stats] print: no|text|json, at exit */
  NH_OPT_STATS_PUBLISH,      /* [stats] publish: no|yes, the live region (api/publish.c) */
  NH_OPT_STATS_PUBLISH_INTERVAL, /* [stats] publish_interval: ms between snapshots */
  NH_OPT_SAFETY_MODE,        /* [safety] mode: normal|paranoid */
  NH_OPT_COUNT
} nh_opt;

typedef enum nh_opt_type {
  NH_T_STRING,   /* free text, up to NH_OPT_STRLEN-1 bytes */
  NH_T_SIZE,     /* bytes: integer with optional K, M, G, T suffix (powers of 1024) */
  NH_T_SIZE_PCT, /* NH_T_SIZE or a percentage "80%" / "12.5%" of node memory */
  NH_T_PCT,      /* percentage 0..100, "90" or "90%" */
  NH_T_UINT,     /* unsigned integer */
  NH_T_ENUM,     /* one of the words in desc->choices, stored as its index */
} nh_opt_type;

/* Spill scopes ([criticality] *.spill), in increasing reach. */
enum { NH_SPILL_NONE = 0, NH_SPILL_PACKAGE = 1, NH_SPILL_ANY = 2 };
/* The words of [cache] mode, by index (api/init.c passes them down to
 * percpu/cache.h's modes). */
enum { NH_CHOICE_CACHE_PERCPU = 0, NH_CHOICE_CACHE_PERTHREAD = 1, NH_CHOICE_CACHE_OFF = 2 };
/* Binding of segments ([heap] bind). */
enum { NH_BIND_PREFERRED = 0, NH_BIND_STRICT = 1 };
/* Safety modes ([safety] mode). */
enum { NH_SAFETY_NORMAL = 0, NH_SAFETY_PARANOID = 1 };
/* Stats at exit ([stats] print). */
enum { NH_STATS_NO = 0, NH_STATS_TEXT = 1, NH_STATS_JSON = 2 };
/* Published statistics ([stats] publish). */
enum { NH_PUBLISH_NO = 0, NH_PUBLISH_YES = 1 };

#define NH_OPT_STRLEN 4096
/* The longest line the config reader takes (libinih's INI_MAX_LINE, 200,
 * less the line end and the NUL; checked in config.c). */
#define NH_CONFIG_LINE_MAX 197

/* A parsed NH_T_SIZE / NH_T_SIZE_PCT value. */
typedef struct nh_size_spec {
  uint64_t bytes;     /* when !is_pct */
  uint32_t milli_pct; /* when is_pct: percent * 1000 (80% -> 80000) */
  uint8_t is_pct;
} nh_size_spec;

typedef union nh_opt_value {
  nh_size_spec size;  /* NH_T_SIZE, NH_T_SIZE_PCT */
  uint32_t milli_pct; /* NH_T_PCT: percent * 1000 */
  uint64_t u;         /* NH_T_UINT */
  int choice;         /* NH_T_ENUM: index into choices */
} nh_opt_value;

typedef struct nh_opt_desc {
  const char *section;    /* INI section, e.g. "heap" */
  const char *key;        /* INI key, e.g. "budget" */
  const char *env;        /* environment variable, e.g. "NUMAHEAP_HEAP_BUDGET" */
  nh_opt_type type;
  const char *default_text; /* default, in config-file syntax */
  const char *const *choices; /* NH_T_ENUM: NULL-terminated words */
  uint64_t max;           /* NH_T_UINT: largest value accepted */
  const char *doc;        /* one line for docs and --help */
} nh_opt_desc;

extern const nh_opt_desc nh_options[NH_OPT_COUNT];

/* Per-node override from a [node:N] section. */
typedef struct nh_node_override {
  int node;               /* logical node number N */
  uint8_t has_budget, has_reserve;
  nh_size_spec budget, reserve;
} nh_node_override;

#define NH_MAX_NODE_OVERRIDES 1024
/* Largest node number accepted in [node:N] and NUMAHEAP_NODE<N>_*. */
#define NH_MAX_NODE 4095
/* Largest config file accepted, in bytes. */
#define NH_CONFIG_MAX_FILE (1u << 20)

/* About 48 KiB, mostly room: the strings and overrides[] are used only up to
 * their NUL and noverrides. nh_config_defaults and nh_config_copy write only
 * what is used, so that a config in fresh memory costs a small program a few
 * pages, not twelve (copy configs with nh_config_copy, not memcpy). */
typedef struct nh_config {
  nh_opt_value v[NH_OPT_COUNT];
  uint8_t set[NH_OPT_COUNT];   /* 1 when given by a file or the environment */
  int noverrides;
  char synthetic[NH_OPT_STRLEN];
  char xml[NH_OPT_STRLEN];
  nh_node_override overrides[NH_MAX_NODE_OVERRIDES]; /* [0, noverrides) in use */
} nh_config;

/* Fills cfg with every default (writes only the used part: see above). */
void nh_config_defaults(nh_config *cfg);

/* *dst = *src, for the used part only: the option values, set flags, the
 * two strings up to their NUL, the overrides in use. */
void nh_config_copy(nh_config *dst, const nh_config *src);

/* Parses an INI file into cfg (on top of what cfg holds). 0, or -1 with err
 * = "<path>:<line>: <problem>" (or "<path>: <problem>" for an unreadable
 * file). On failure cfg is unchanged. */
int nh_config_parse_file(nh_config *cfg, const char *path, char *err, size_t errlen);

/* The same for text in memory; name stands for the path in messages. */
int nh_config_parse_string(nh_config *cfg, const char *text, const char *name,
                           char *err, size_t errlen);

/* Applies NUMAHEAP_<SECTION>_<KEY> variables from envp (NULL-terminated,
 * "NAME=value" strings; NULL means the process environment). Node overrides:
 * NUMAHEAP_NODE<N>_BUDGET, NUMAHEAP_NODE<N>_RESERVE. An unknown NUMAHEAP_*
 * variable or a bad value is an error naming the variable. NUMAHEAP_CONFIG,
 * NUMAHEAP_STATS and NUMAHEAP_TEST_* are not options and are ignored here.
 * On failure cfg is unchanged. None of the parsing functions calls malloc. */
int nh_config_apply_env(nh_config *cfg, char *const *envp, char *err, size_t errlen);

/* Sets one option from its config-file text (used by the two above and by
 * tests). 0, or -1 with a message naming the key and the problem. */
int nh_config_set(nh_config *cfg, const char *section, const char *key,
                  const char *value, char *err, size_t errlen);

/* Resolves a size spec against a node's memory size. */
static inline uint64_t nh_size_resolve(nh_size_spec s, uint64_t node_mem) {
  if (!s.is_pct) return s.bytes;
  return (uint64_t)((unsigned __int128)node_mem * s.milli_pct / 100000u);
}

/* The topology source the config names: [topology] synthetic, xml, or the
 * real machine when neither is set, discovered per [topology] discovery. */
#include "numa/topo.h"
static inline nh_topo_source nh_config_topo_source(const nh_config *cfg) {
  nh_topo_source src = {NH_TOPO_REAL, NULL, 0, NULL, NH_DISCOVERY_AUTO, NULL};
  src.discovery = (nh_topo_discovery)cfg->v[NH_OPT_TOPOLOGY_DISCOVERY].choice;
  if (cfg->synthetic[0]) src.kind = NH_TOPO_SYNTHETIC, src.spec = cfg->synthetic;
  else if (cfg->xml[0]) src.kind = NH_TOPO_XML, src.spec = cfg->xml;
  return src;
}

/* A node's budget and reserve spec: [heap], or its [node:N] override. */
static inline void nh_config_node_specs(const nh_config *cfg, int node, nh_size_spec *budget,
                                        nh_size_spec *reserve) {
  *budget = cfg->v[NH_OPT_HEAP_BUDGET].size;
  *reserve = cfg->v[NH_OPT_HEAP_RESERVE].size;
  for (int k = 0; k < cfg->noverrides; k++) {
    const nh_node_override *o = &cfg->overrides[k];
    if (o->node != node) continue;
    if (o->has_budget) *budget = o->budget;
    if (o->has_reserve) *reserve = o->reserve;
  }
}

/* Writes the configuration in INI syntax (every option, defaults included,
 * then one [node:N] section per override), so that parsing the output on top
 * of nh_config_defaults() gives a config nh_config_same() as cfg. */
#include <stdio.h>
void nh_config_write(const nh_config *cfg, FILE *out);

/* 1 when a and b hold the same values (the set[] flags are not compared). */
int nh_config_same(const nh_config *a, const nh_config *b);

/* ---- shared by api/options.c and api/config.c ---------------------------- */

/* The option named by section and key ("heap", "budget"), or -1. */
int nh_opt_find(const char *section, const char *key);

/* Checks a section name: 0 for an option section, 1 for "node:N" (with *node
 * = N), -1 with problem = "unknown section [x]" or a bad node number. */
int nh_config_section(const char *section, int *node, char *problem, size_t len);

/* What nh_config_store() found wrong. */
enum { NH_STORE_OK = 0, NH_STORE_BAD_SECTION, NH_STORE_BAD_KEY, NH_STORE_BAD_VALUE };

/* nh_config_set() without the "[section] key: " prefix: returns NH_STORE_OK
 * or what was wrong, with problem naming it (for NH_STORE_BAD_VALUE only the
 * value's problem, e.g. "\"12Q\" is not a size ..."; the caller names the
 * key or the variable). cfg is changed only on NH_STORE_OK. Setting a
 * non-empty [topology] synthetic clears xml and the other way round. */
int nh_config_store(nh_config *cfg, const char *section, const char *key,
                    const char *value, char *problem, size_t len);

#endif
