/*
 * api/options.c: the options table, and the parsing and printing of one value.
 *
 * nh_options[] is the single source of every option's section, key,
 * environment variable, type, default and description. Defaults are stored by
 * parsing default_text through nh_config_store(), the same path the config
 * file and the environment take, so the table and the behaviour cannot
 * disagree. api/config.c adds the layers on top (file, environment).
 *
 * Nothing here calls malloc: values are parsed in place and strings are
 * copied into the fixed buffers of nh_config. Only nh_config_write() uses
 * stdio, to print.
 */
#include "api/options.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

/* ---- the table ---------------------------------------------------------------- */

static const char *const spill_words[] = {"none", "package", "any", NULL};
static const char *const level_words[] = {"task", "appdomain", "process", NULL};
static const char *const cache_words[] = {"percpu", "perthread", "off", NULL};
static const char *const stats_words[] = {"no", "text", "json", NULL};
static const char *const publish_words[] = {"no", "yes", NULL};
static const char *const safety_words[] = {"normal", "paranoid", NULL};
static const char *const huge_words[] = {"off", "thp", "hugetlb", NULL}; /* NH_HUGE_* order */
static const char *const bind_words[] = {"preferred", "strict", NULL};
static const char *const discovery_words[] = {"auto", "hwloc", "sysfs", NULL}; /* NH_DISCOVERY_* */
static const char *const split_words[] = {"proportional", "equal", "off", NULL};

#define ROW(sec, k, envname, t, def, ch, mx, d) \
  {.section = sec, .key = k, .env = envname, .type = t, .default_text = def, \
   .choices = ch, .max = mx, .doc = d}

const nh_opt_desc nh_options[NH_OPT_COUNT] = {
  [NH_OPT_TOPOLOGY_SYNTHETIC] = ROW("topology", "synthetic", "NUMAHEAP_TOPOLOGY_SYNTHETIC",
      NH_T_STRING, "", NULL, 0,
      "simulated hwloc topology, e.g. \"package:2 numa:2 core:2 pu:1\"; empty: the real one"),
  [NH_OPT_TOPOLOGY_XML] = ROW("topology", "xml", "NUMAHEAP_TOPOLOGY_XML",
      NH_T_STRING, "", NULL, 0,
      "path of an hwloc XML topology to simulate; empty: the real one"),
  [NH_OPT_TOPOLOGY_DISCOVERY] = ROW("topology", "discovery", "NUMAHEAP_TOPOLOGY_DISCOVERY",
      NH_T_ENUM, "auto", discovery_words, 0,
      "how the real machine is read: auto (hwloc, loaded at run time, when it has more than one "
      "NUMA node; else /sys), hwloc, or sysfs (never hwloc)"),
  [NH_OPT_HEAP_BUDGET] = ROW("heap", "budget", "NUMAHEAP_HEAP_BUDGET",
      NH_T_SIZE_PCT, "80%", NULL, 0,
      "per node: the most memory numaheap takes from the node (bytes or % of the node)"),
  [NH_OPT_HEAP_RESERVE] = ROW("heap", "reserve", "NUMAHEAP_HEAP_RESERVE",
      NH_T_SIZE_PCT, "1%", NULL, 0,
      "per node: emergency part of the budget that only process-critical memory may use"),
  [NH_OPT_HEAP_PURGE_DELAY] = ROW("heap", "purge_delay", "NUMAHEAP_HEAP_PURGE_DELAY",
      NH_T_UINT, "1000", NULL, 3600000,
      "milliseconds free pages stay before they go back to the OS"),
  [NH_OPT_HEAP_DEFAULT_LEVEL] = ROW("heap", "default_level", "NUMAHEAP_HEAP_DEFAULT_LEVEL",
      NH_T_ENUM, "appdomain", level_words, 0,
      "criticality of plain malloc and nh_malloc: task, appdomain or process"),
  [NH_OPT_HEAP_HUGE_PAGES] = ROW("heap", "huge_pages", "NUMAHEAP_HEAP_HUGE_PAGES",
      NH_T_ENUM, "thp", huge_words, 0,
      "2 MiB pages: thp (advise MADV_HUGEPAGE where the kernel allows), off, or hugetlb "
      "(reserved pages per node, else thp)"),
  [NH_OPT_HEAP_HUGE_KEEP] = ROW("heap", "huge_keep", "NUMAHEAP_HEAP_HUGE_KEEP",
      NH_T_SIZE, "64M", NULL, 0,
      "per node: bytes of freed huge blocks (over 2 MiB) kept mapped for reuse until purge_delay"),
  [NH_OPT_HEAP_BIND] = ROW("heap", "bind", "NUMAHEAP_HEAP_BIND",
      NH_T_ENUM, "preferred", bind_words, 0,
      "preferred: a full node's pages come from the nearest node; strict: MPOL_BIND (OOM killer)"),
  [NH_OPT_TASK_LIMIT] = ROW("criticality", "task.limit", "NUMAHEAP_CRITICALITY_TASK_LIMIT",
      NH_T_PCT, "90%", NULL, 0,
      "share of (budget - reserve) that task-critical memory may fill on a node"),
  [NH_OPT_TASK_SPILL] = ROW("criticality", "task.spill", "NUMAHEAP_CRITICALITY_TASK_SPILL",
      NH_T_ENUM, "package", spill_words, 0,
      "how far task-critical memory may fall back: none, package or any node"),
  [NH_OPT_APPDOMAIN_SPILL] = ROW("criticality", "appdomain.spill",
      "NUMAHEAP_CRITICALITY_APPDOMAIN_SPILL", NH_T_ENUM, "any", spill_words, 0,
      "how far appdomain-critical memory may fall back: none, package or any node"),
  [NH_OPT_PROCESS_SPILL] = ROW("criticality", "process.spill",
      "NUMAHEAP_CRITICALITY_PROCESS_SPILL", NH_T_ENUM, "any", spill_words, 0,
      "how far process-critical memory may fall back: none, package or any node"),
  [NH_OPT_CACHE_MODE] = ROW("cache", "mode", "NUMAHEAP_CACHE_MODE",
      NH_T_ENUM, "percpu", cache_words, 0,
      "front-end cache: percpu, perthread or off"),
  [NH_OPT_CACHE_SIZE] = ROW("cache", "size", "NUMAHEAP_CACHE_SIZE",
      NH_T_SIZE, "1M", NULL, 0,
      "bytes a cache may hold, per CPU (percpu) or per thread (perthread)"),
  [NH_OPT_CACHE_TRANSFER_SIZE] = ROW("cache", "transfer_size", "NUMAHEAP_CACHE_TRANSFER_SIZE",
      NH_T_SIZE, "8M", NULL, 0,
      "bytes of each size class a node's transfer cache may hold (split among its CPUs, at most 65536 blocks each); 0: none"),
  [NH_OPT_CACHE_TRANSFER_DECAY] = ROW("cache", "transfer_decay", "NUMAHEAP_CACHE_TRANSFER_DECAY",
      NH_T_UINT, "1000", NULL, 3600000,
      "milliseconds a transfer cache's blocks may sit unused before they go back to their spans; 0: never"),
  [NH_OPT_CGROUP_SPLIT] = ROW("cgroup", "split", "NUMAHEAP_CGROUP_SPLIT",
      NH_T_ENUM, "proportional", split_words, 0,
      "how the cgroup's memory limit caps node budgets: proportional (to node memory), equal, off"),
  [NH_OPT_CGROUP_SHARE] = ROW("cgroup", "share", "NUMAHEAP_CGROUP_SHARE",
      NH_T_PCT, "90%", NULL, 0,
      "share of the cgroup's limit the node budgets may sum to (the rest: stacks, files, libc)"),
  [NH_OPT_CGROUP_REREAD] = ROW("cgroup", "reread", "NUMAHEAP_CGROUP_REREAD",
      NH_T_UINT, "1000", NULL, 3600000,
      "ms between re-reads of the cgroup's limits while memory is tight; 0: read only at start"),
  [NH_OPT_NOTIFY_LOW] = ROW("notify", "low", "NUMAHEAP_NOTIFY_LOW",
      NH_T_PCT, "90", NULL, 0,
      "memory load (%) at or above which eMemoryAvailableLow is raised"),
  [NH_OPT_NOTIFY_HIGH] = ROW("notify", "high", "NUMAHEAP_NOTIFY_HIGH",
      NH_T_PCT, "60", NULL, 0,
      "memory load (%) under which eMemoryAvailableHigh is raised; at most low"),
  [NH_OPT_NOTIFY_PSI] = ROW("notify", "psi", "NUMAHEAP_NOTIFY_PSI",
      NH_T_UINT, "200", NULL, 2000,
      "ms of memory stall (PSI \"some\") per 2 s window that counts as pressure; 0: PSI off"),
  [NH_OPT_STATS_PRINT] = ROW("stats", "print", "NUMAHEAP_STATS_PRINT",
      NH_T_ENUM, "no", stats_words, 0,
      "print statistics at exit: no, text or json"),
  [NH_OPT_STATS_PUBLISH] = ROW("stats", "publish", "NUMAHEAP_STATS_PUBLISH",
      NH_T_ENUM, "yes", publish_words, 0,
      "publish live statistics for `numaheap stats` and `numaheap top`: yes or no"),
  [NH_OPT_STATS_PUBLISH_INTERVAL] = ROW("stats", "publish_interval",
      "NUMAHEAP_STATS_PUBLISH_INTERVAL", NH_T_UINT, "1000", NULL, 3600000,
      "milliseconds between two snapshots of the published statistics (under 10: 10)"),
  [NH_OPT_SAFETY_MODE] = ROW("safety", "mode", "NUMAHEAP_SAFETY_MODE",
      NH_T_ENUM, "normal", safety_words, 0,
      "normal, or paranoid: freed memory filled and checked, guard pages after huge blocks"),
};

#undef ROW

/* ---- parsing one value -------------------------------------------------------- */

/* Unsigned decimal: at least one digit, nothing after. 0, 1 (not a number) or
 * 2 (overflows 64 bits). *end is where the digits stop. */
static int parse_digits(const char *s, uint64_t *out, const char **end) {
  uint64_t v = 0;
  const char *p = s;
  int overflow = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) overflow = 1;
    else v = v * 10 + d;
  }
  *end = p;
  *out = v;
  if (p == s) return 1;
  return overflow ? 2 : 0;
}

/* "12", "12.5", "12.375" with an optional '%' when allow_sign, as percent *
 * 1000. Rejects more than three decimals and whole parts above 10^9 (the
 * callers refuse anything above 100 anyway). 0 or -1. */
static int parse_milli_pct(const char *s, int allow_sign, uint64_t *out) {
  uint64_t whole;
  const char *p;
  if (parse_digits(s, &whole, &p) != 0 || whole > 1000000000) return -1;
  uint64_t milli = whole * 1000, scale = 100;
  if (*p == '.') {
    const char *q = ++p;
    for (; *p >= '0' && *p <= '9'; p++, scale /= 10) {
      if (scale == 0) return -1;
      milli += (uint64_t)(*p - '0') * scale;
    }
    if (p == q) return -1;
  }
  if (*p == '%' && allow_sign) p++;
  if (*p != '\0') return -1;
  *out = milli;
  return 0;
}

/* Bytes with an optional K, M, G or T suffix (either case). 0, 1 (not a size),
 * 2 (overflows 64 bits). */
static int parse_bytes(const char *s, uint64_t *out) {
  uint64_t v;
  const char *p;
  int rc = parse_digits(s, &v, &p);
  if (rc == 1) return 1;
  unsigned shift = 0;
  switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    default: break;
  }
  if (*p != '\0') return 1;
  if (rc == 2 || (shift && v > (UINT64_MAX >> shift))) return 2;
  *out = v << shift;
  return 0;
}

#define SIZE_HINT "use bytes with an optional K, M, G or T suffix"

/* Writes the problem and returns -1. */
__attribute__((format(printf, 3, 4))) static int bad(char *problem, size_t len,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(problem, len, fmt, ap);
  va_end(ap);
  return -1;
}

static int parse_size(const char *value, nh_size_spec *out, char *problem, size_t len) {
  uint64_t b = 0;
  int rc = parse_bytes(value, &b);
  if (rc == 1) return bad(problem, len, "\"%s\" is not a size (" SIZE_HINT ")", value);
  if (rc == 2) return bad(problem, len, "\"%s\" does not fit in 64 bits", value);
  *out = (nh_size_spec){.bytes = b};
  return 0;
}

static int parse_size_pct(const char *value, nh_size_spec *out, char *problem, size_t len) {
  size_t n = strlen(value);
  if (n == 0 || value[n - 1] != '%') {
    uint64_t b = 0;
    int rc = parse_bytes(value, &b);
    if (rc == 2) return bad(problem, len, "\"%s\" does not fit in 64 bits", value);
    if (rc == 0) {
      *out = (nh_size_spec){.bytes = b};
      return 0;
    }
  } else {
    uint64_t m;
    if (parse_milli_pct(value, 1, &m) == 0) {
      if (m > 100000) return bad(problem, len, "%s is more than 100%% of the node's memory", value);
      *out = (nh_size_spec){.milli_pct = (uint32_t)m, .is_pct = 1};
      return 0;
    }
  }
  return bad(problem, len,
             "\"%s\" is not a size or percentage (" SIZE_HINT ", or a percentage such as 80%%)",
             value);
}

static int parse_pct(const char *value, uint32_t *out, char *problem, size_t len) {
  uint64_t m;
  if (parse_milli_pct(value, 1, &m) != 0)
    return bad(problem, len, "\"%s\" is not a percentage between 0 and 100", value);
  if (m > 100000) return bad(problem, len, "%s is not a percentage between 0 and 100", value);
  *out = (uint32_t)m;
  return 0;
}

static int parse_uint(const char *value, uint64_t max, uint64_t *out, char *problem, size_t len) {
  uint64_t v;
  const char *end;
  int rc = parse_digits(value, &v, &end);
  if (rc == 1 || *end != '\0')
    return bad(problem, len, "\"%s\" is not an unsigned integer", value);
  if (rc == 2) return bad(problem, len, "\"%s\" does not fit in 64 bits", value);
  if (v > max) {
    snprintf(problem, len, "%s is above the maximum %" PRIu64, value, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_enum(const char *value, const char *const *words, int *out, char *problem,
                      size_t len) {
  for (int i = 0; words[i]; i++) {
    if (strcmp(value, words[i]) == 0) {
      *out = i;
      return 0;
    }
  }
  int n = snprintf(problem, len, "\"%s\" is not one of ", value);
  for (int i = 0; words[i] && n >= 0 && (size_t)n < len; i++)
    n += snprintf(problem + n, len - (size_t)n, "%s%s", i ? ", " : "", words[i]);
  return -1;
}

/* Strings must fit their buffer and must print back as the same value: no
 * control characters, no ';' after a blank or at the start (that starts a
 * comment once written back as "key = value"), no blank
 * at either end (the INI parser trims them). */
static int check_string(const char *value, char *problem, size_t len) {
  size_t n = strlen(value);
  if (n >= NH_OPT_STRLEN) {
    snprintf(problem, len, "value is %zu bytes long; at most %d", n, NH_OPT_STRLEN - 1);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c < 0x20 || c == 0x7f) return bad(problem, len, "\"%s\" contains a control character", value);
    if (c == ';' && i > 0 && (value[i - 1] == ' ' || value[i - 1] == '\t'))
      return bad(problem, len, "\"%s\" has a ';' after a blank, which starts a comment", value);
    if (i == 0 && (c == ';' || c == '#')) /* written back after "key = ", it would be a comment */
      return bad(problem, len, "\"%s\" starts with '%c', which starts a comment", value, c);
  }
  if (n && (value[0] == ' ' || value[n - 1] == ' ' || value[0] == '\t' || value[n - 1] == '\t'))
    return bad(problem, len, "\"%s\" starts or ends with a blank", value);
  return 0;
}

/* Parses value as option o's type into *out. 0, or -1 with problem. */
static int parse_value(nh_opt o, const char *value, nh_opt_value *out, char *problem,
                       size_t len) {
  const nh_opt_desc *d = &nh_options[o];
  switch (d->type) {
    case NH_T_STRING: return check_string(value, problem, len);
    case NH_T_SIZE: return parse_size(value, &out->size, problem, len);
    case NH_T_SIZE_PCT: return parse_size_pct(value, &out->size, problem, len);
    case NH_T_PCT: return parse_pct(value, &out->milli_pct, problem, len);
    case NH_T_UINT: return parse_uint(value, d->max, &out->u, problem, len);
    case NH_T_ENUM: return parse_enum(value, d->choices, &out->choice, problem, len);
  }
  return bad(problem, len, "option has an unknown type (value \"%s\")", value);
}

/* ---- sections and storing ----------------------------------------------------- */

int nh_opt_find(const char *section, const char *key) {
  for (int i = 0; i < NH_OPT_COUNT; i++)
    if (strcmp(nh_options[i].section, section) == 0 && strcmp(nh_options[i].key, key) == 0)
      return i;
  return -1;
}

static int known_section(const char *section) {
  for (int i = 0; i < NH_OPT_COUNT; i++)
    if (strcmp(nh_options[i].section, section) == 0) return 1;
  return 0;
}

int nh_config_section(const char *section, int *node, char *problem, size_t len) {
  if (strncmp(section, "node:", 5) != 0) {
    if (known_section(section)) return 0;
    snprintf(problem, len, "unknown section [%s]", section);
    return -1;
  }
  uint64_t n;
  const char *end;
  int rc = parse_digits(section + 5, &n, &end);
  if (rc == 1 || *end != '\0') {
    snprintf(problem, len, "bad node number in section [%s] (use [node:N], N from 0 to %d)",
             section, NH_MAX_NODE);
    return -1;
  }
  if (rc == 2 || n > NH_MAX_NODE) {
    snprintf(problem, len, "node number %s in section [%s] is above %d", section + 5, section,
             NH_MAX_NODE);
    return -1;
  }
  *node = (int)n;
  return 1;
}

/* The override for node, inserted in node order when new; NULL when full. */
static nh_node_override *override_slot(nh_config *cfg, int node) {
  int i = 0;
  while (i < cfg->noverrides && cfg->overrides[i].node < node) i++;
  if (i < cfg->noverrides && cfg->overrides[i].node == node) return &cfg->overrides[i];
  if (cfg->noverrides >= NH_MAX_NODE_OVERRIDES) return NULL;
  memmove(&cfg->overrides[i + 1], &cfg->overrides[i],
          sizeof cfg->overrides[0] * (size_t)(cfg->noverrides - i));
  cfg->noverrides++;
  cfg->overrides[i] = (nh_node_override){.node = node};
  return &cfg->overrides[i];
}

static int store_node(nh_config *cfg, int node, const char *section, const char *key,
                      const char *value, char *problem, size_t len) {
  int is_budget = strcmp(key, "budget") == 0;
  if (!is_budget && strcmp(key, "reserve") != 0) {
    snprintf(problem, len, "unknown key \"%s\" in section [%s] (only budget and reserve)", key,
             section);
    return NH_STORE_BAD_KEY;
  }
  nh_size_spec s;
  if (parse_size_pct(value, &s, problem, len) != 0) return NH_STORE_BAD_VALUE;
  nh_node_override *o = override_slot(cfg, node);
  if (o == NULL) {
    snprintf(problem, len, "too many node sections (at most %d nodes)", NH_MAX_NODE_OVERRIDES);
    return NH_STORE_BAD_VALUE;
  }
  if (is_budget) o->budget = s, o->has_budget = 1;
  else o->reserve = s, o->has_reserve = 1;
  return NH_STORE_OK;
}

static void store_string(nh_config *cfg, nh_opt o, const char *value) {
  char *dst = o == NH_OPT_TOPOLOGY_XML ? cfg->xml : cfg->synthetic;
  char *other = o == NH_OPT_TOPOLOGY_XML ? cfg->synthetic : cfg->xml;
  size_t n = strlen(value);
  if (n == 0) { /* the defaults: written only when not empty already (nh_config_defaults) */
    if (dst[0]) dst[0] = '\0';
    return;
  }
  memcpy(dst, value, n + 1);
  other[0] = '\0'; /* one topology source at a time: the later one wins */
  cfg->set[o == NH_OPT_TOPOLOGY_XML ? NH_OPT_TOPOLOGY_SYNTHETIC : NH_OPT_TOPOLOGY_XML] = 0;
}

int nh_config_store(nh_config *cfg, const char *section, const char *key, const char *value,
                    char *problem, size_t len) {
  int node = -1;
  int kind = nh_config_section(section, &node, problem, len);
  if (kind < 0) return NH_STORE_BAD_SECTION;
  if (kind == 1) return store_node(cfg, node, section, key, value, problem, len);
  int o = nh_opt_find(section, key);
  if (o < 0) {
    snprintf(problem, len, "unknown key \"%s\" in section [%s]", key, section);
    return NH_STORE_BAD_KEY;
  }
  nh_opt_value v = {0};
  if (parse_value((nh_opt)o, value, &v, problem, len) != 0) return NH_STORE_BAD_VALUE;
  if (nh_options[o].type == NH_T_STRING) store_string(cfg, (nh_opt)o, value);
  else cfg->v[o] = v;
  cfg->set[o] = 1;
  return NH_STORE_OK;
}

int nh_config_set(nh_config *cfg, const char *section, const char *key, const char *value,
                  char *err, size_t errlen) {
  char problem[512];
  int rc = nh_config_store(cfg, section, key, value, problem, sizeof problem);
  if (rc == NH_STORE_OK) return 0;
  if (rc == NH_STORE_BAD_VALUE) snprintf(err, errlen, "[%s] %s: %s", section, key, problem);
  else snprintf(err, errlen, "%s", problem);
  return -1;
}

void nh_config_copy(nh_config *dst, const nh_config *src) {
  if (dst == src) return;
  memcpy(dst->v, src->v, sizeof dst->v);
  memcpy(dst->set, src->set, sizeof dst->set);
  memcpy(dst->synthetic, src->synthetic, strlen(src->synthetic) + 1);
  memcpy(dst->xml, src->xml, strlen(src->xml) + 1);
  dst->noverrides = src->noverrides;
  memcpy(dst->overrides, src->overrides, sizeof dst->overrides[0] * (size_t)src->noverrides);
}

void nh_config_defaults(nh_config *cfg) {
  memset(cfg->v, 0, sizeof cfg->v);
  /* written only when not empty already: xml starts on a page of its own
   * that a fresh configuration (zeroed pages from the OS) then never touches */
  if (cfg->synthetic[0]) cfg->synthetic[0] = '\0';
  if (cfg->xml[0]) cfg->xml[0] = '\0';
  cfg->noverrides = 0;
  char problem[256];
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    int rc = nh_config_store(cfg, nh_options[i].section, nh_options[i].key,
                             nh_options[i].default_text, problem, sizeof problem);
    /* A bad default is a bug in the table above; tests parse every one. */
    if (rc != NH_STORE_OK) __builtin_trap();
  }
  memset(cfg->set, 0, sizeof cfg->set);
}

/* ---- printing ----------------------------------------------------------------- */

static void format_milli_pct(uint32_t m, char *buf, size_t len, const char *sign) {
  uint32_t frac = m % 1000;
  if (frac == 0) snprintf(buf, len, "%u%s", m / 1000, sign);
  else if (frac % 100 == 0) snprintf(buf, len, "%u.%u%s", m / 1000, frac / 100, sign);
  else if (frac % 10 == 0) snprintf(buf, len, "%u.%02u%s", m / 1000, frac / 10, sign);
  else snprintf(buf, len, "%u.%03u%s", m / 1000, frac, sign);
}

static void format_size(nh_size_spec s, char *buf, size_t len) {
  if (s.is_pct) {
    format_milli_pct(s.milli_pct, buf, len, "%");
    return;
  }
  static const char suffix[] = "TGMK";
  for (int i = 0; i < 4; i++) {
    unsigned shift = 40u - 10u * (unsigned)i;
    uint64_t unit = (uint64_t)1 << shift;
    if (s.bytes != 0 && s.bytes % unit == 0) {
      snprintf(buf, len, "%" PRIu64 "%c", s.bytes >> shift, suffix[i]);
      return;
    }
  }
  snprintf(buf, len, "%" PRIu64, s.bytes);
}

static void format_value(const nh_config *cfg, nh_opt o, char *buf, size_t len) {
  const nh_opt_desc *d = &nh_options[o];
  const nh_opt_value *v = &cfg->v[o];
  switch (d->type) {
    case NH_T_STRING:
      snprintf(buf, len, "%s", o == NH_OPT_TOPOLOGY_XML ? cfg->xml : cfg->synthetic);
      return;
    case NH_T_SIZE:
    case NH_T_SIZE_PCT: format_size(v->size, buf, len); return;
    case NH_T_PCT: format_milli_pct(v->milli_pct, buf, len, "%"); return;
    case NH_T_UINT: snprintf(buf, len, "%" PRIu64, v->u); return;
    case NH_T_ENUM: snprintf(buf, len, "%s", d->choices[v->choice]); return;
  }
  buf[0] = '\0';
}

/* "key = value", as the reader takes it back: "key=value" when the blanks
 * would make the line too long (a value read from a file always fits so) or
 * a leading ';' or '#' a comment; a value longer than any line (set through
 * the environment or the API) is named in a comment instead. */
static void write_key(FILE *out, const nh_opt_desc *d, const char *value) {
  size_t klen = strlen(d->key), vlen = strlen(value);
  int spaced = vlen > 0 && value[0] != ';' && value[0] != '#';
  if (klen + vlen + (spaced ? 3 : 1) > NH_CONFIG_LINE_MAX) spaced = 0;
  if (klen + vlen + 1 <= NH_CONFIG_LINE_MAX)
    fprintf(out, "%s%s%s\n", d->key, spaced ? " = " : vlen ? "=" : " =", value);
  else
    fprintf(out, "; %s: the value in force is %zu characters, longer than a config line "
                 "holds (%d); it can only be set through %s\n",
            d->key, vlen, NH_CONFIG_LINE_MAX, d->env ? d->env : "the API");
}

static void write_options(const nh_config *cfg, FILE *out) {
  char buf[NH_OPT_STRLEN];
  const char *section = "";
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    const nh_opt_desc *d = &nh_options[i];
    if (strcmp(section, d->section) != 0) {
      fprintf(out, "%s[%s]\n", i ? "\n" : "", d->section);
      section = d->section;
    }
    format_value(cfg, (nh_opt)i, buf, sizeof buf);
    fprintf(out, "; %s (default: %s)\n", d->doc, d->default_text[0] ? d->default_text : "empty");
    write_key(out, d, buf);
  }
}

void nh_config_write(const nh_config *cfg, FILE *out) {
  write_options(cfg, out);
  char buf[64];
  for (int i = 0; i < cfg->noverrides; i++) {
    const nh_node_override *o = &cfg->overrides[i];
    if (!o->has_budget && !o->has_reserve) continue;
    fprintf(out, "\n[node:%d]\n", o->node);
    if (o->has_budget) format_size(o->budget, buf, sizeof buf), fprintf(out, "budget = %s\n", buf);
    if (o->has_reserve)
      format_size(o->reserve, buf, sizeof buf), fprintf(out, "reserve = %s\n", buf);
  }
}

/* ---- comparing ---------------------------------------------------------------- */

static int same_size(nh_size_spec a, nh_size_spec b) {
  if (a.is_pct != b.is_pct) return 0;
  return a.is_pct ? a.milli_pct == b.milli_pct : a.bytes == b.bytes;
}

static int same_value(nh_opt o, const nh_opt_value *a, const nh_opt_value *b) {
  switch (nh_options[o].type) {
    case NH_T_STRING: return 1; /* compared through cfg->synthetic / cfg->xml */
    case NH_T_SIZE:
    case NH_T_SIZE_PCT: return same_size(a->size, b->size);
    case NH_T_PCT: return a->milli_pct == b->milli_pct;
    case NH_T_UINT: return a->u == b->u;
    case NH_T_ENUM: return a->choice == b->choice;
  }
  return 0;
}

static int same_override(const nh_node_override *a, const nh_node_override *b) {
  if (a->node != b->node || a->has_budget != b->has_budget || a->has_reserve != b->has_reserve)
    return 0;
  if (a->has_budget && !same_size(a->budget, b->budget)) return 0;
  return !a->has_reserve || same_size(a->reserve, b->reserve);
}

int nh_config_same(const nh_config *a, const nh_config *b) {
  for (int i = 0; i < NH_OPT_COUNT; i++)
    if (!same_value((nh_opt)i, &a->v[i], &b->v[i])) return 0;
  if (strcmp(a->synthetic, b->synthetic) != 0 || strcmp(a->xml, b->xml) != 0) return 0;
  if (a->noverrides != b->noverrides) return 0;
  for (int i = 0; i < a->noverrides; i++)
    if (!same_override(&a->overrides[i], &b->overrides[i])) return 0;
  return 1;
}
