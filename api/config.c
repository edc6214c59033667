/*
 * api/config.c: the configuration layers: the INI file and the environment.
 *
 * Each layer parses into a scratch copy of the caller's nh_config and copies
 * it back only when the whole layer is valid, so a failure leaves the
 * caller's config unchanged. The copy and the layer's bookkeeping (which line
 * or variable set what) live in one block from nh_os_meta_alloc: never from
 * malloc, which may be numaheap itself while this runs.
 *
 * The file is read whole with open/read into that kind of memory and handed
 * to libinih line by line by our own reader (ini_parse_stream). libinih is
 * used with its default stack line buffer (ini_use_stack), so it does not
 * allocate either; the reader counts lines, refuses lines longer than the
 * buffer and checks every section header, including empty sections.
 */
#include "api/options.h"
#include "numa/os.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <string.h>

extern char **environ;

/* ---- the scratch block --------------------------------------------------------- */

enum { NODE_BUDGET = 0, NODE_RESERVE = 1 };

/* What one layer (a file or an environment) set, by line (file) or by
 * envp index + 1 (environment); 0 = not set by this layer. Owned by the one
 * thread running the layer. */
typedef struct scratch {
  nh_config cfg;                             /* the caller's config, then the layer on top */
  uint32_t opt_line[NH_OPT_COUNT];           /* where each option was set */
  uint32_t node_line[NH_MAX_NODE + 1][2];    /* where [node:N] budget/reserve were set */
  uint32_t topo_line[2];                     /* where a non-empty synthetic / xml was set */
  char value[NH_OPT_STRLEN + 1];             /* an environment value, trimmed */
} scratch;

static scratch *scratch_new(const nh_config *cfg) {
  scratch *s = nh_os_meta_alloc(sizeof *s);
  if (s) nh_config_copy(&s->cfg, cfg);
  return s;
}

static void scratch_free(scratch *s) { nh_os_meta_free(s, sizeof *s); }

/* The "where was it set" slot for an option or a node key; NULL for a key
 * that does not exist (nh_config_store names it). */
static uint32_t *seen_slot(scratch *s, const char *section, const char *key) {
  int node = -1;
  char problem[8];
  int kind = nh_config_section(section, &node, problem, sizeof problem);
  if (kind == 1 && strcmp(key, "budget") == 0) return &s->node_line[node][NODE_BUDGET];
  if (kind == 1 && strcmp(key, "reserve") == 0) return &s->node_line[node][NODE_RESERVE];
  int o = kind == 0 ? nh_opt_find(section, key) : -1;
  return o >= 0 ? &s->opt_line[o] : NULL;
}

/* After a successful store: remember where, and which topology source. */
static void note_set(scratch *s, uint32_t *slot, const char *section, const char *key,
                     const char *value, uint32_t where) {
  if (slot) *slot = where;
  if (value[0] == '\0' || strcmp(section, "topology") != 0) return;
  if (strcmp(key, "synthetic") == 0 || strcmp(key, "xml") == 0)
    s->topo_line[strcmp(key, "xml") == 0] = where;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* The [notify] rule high <= low, when this layer set either. Where the layer
 * set the later of the two, or 0 when the rule holds. */
static uint32_t notify_conflict(const scratch *s) {
  uint32_t lo = s->opt_line[NH_OPT_NOTIFY_LOW], hi = s->opt_line[NH_OPT_NOTIFY_HIGH];
  if (!lo && !hi) return 0;
  if (s->cfg.v[NH_OPT_NOTIFY_HIGH].milli_pct <= s->cfg.v[NH_OPT_NOTIFY_LOW].milli_pct) return 0;
  return max_u32(lo, hi);
}

/* "70" or "12.5": a percentage for messages. */
static void pct_text(uint32_t milli, char *buf, size_t len) {
  if (milli % 1000 == 0) snprintf(buf, len, "%u", milli / 1000);
  else snprintf(buf, len, "%u.%03u", milli / 1000, milli % 1000);
}

static void notify_problem(const scratch *s, char *problem, size_t len) {
  char hi[24], lo[24];
  pct_text(s->cfg.v[NH_OPT_NOTIFY_HIGH].milli_pct, hi, sizeof hi);
  pct_text(s->cfg.v[NH_OPT_NOTIFY_LOW].milli_pct, lo, sizeof lo);
  snprintf(problem, len, "high (%s) is above low (%s); high must be <= low", hi, lo);
}

/* ---- strerror without allocating ------------------------------------------------- */

/* strerror_r is the XSI (int) or the GNU (char *) one depending on feature
 * macros; take whichever this build has. Neither allocates. */
static const char *xsi_text(int rc, char *buf) { return rc == 0 ? buf : "unknown error"; }
static const char *gnu_text(char *s, char *buf) { return s ? s : buf; }
#define errno_text(e, buf, len) \
  _Generic(strerror_r(e, buf, len), int: xsi_text, char *: gnu_text)(strerror_r(e, buf, len), buf)

/* ---- the file layer ----------------------------------------------------------- */

typedef struct ini_state {
  const char *name;       /* the path, for messages */
  const char *text;       /* the whole file, NUL-terminated */
  size_t len, pos;        /* its length; the start of the next line */
  uint32_t lineno;        /* the line last handed to libinih */
  const char *line;       /* that line in text, and its length without \r\n */
  size_t line_len;
  int keys_in_section;    /* keys since the last section header (continuations) */
  scratch *s;
  int failed;             /* a message is in err; stop */
  char *err;
  size_t errlen;
} ini_state;

/* Records "<name>:<line>: <problem>" and stops the parse. Returns 0 (the
 * libinih handler's "error"). */
__attribute__((format(printf, 2, 3))) static int fail(ini_state *st, const char *fmt, ...) {
  char problem[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(problem, sizeof problem, fmt, ap);
  va_end(ap);
  snprintf(st->err, st->errlen, "%s:%u: %s", st->name, st->lineno, problem);
  st->failed = 1;
  return 0;
}

/* Checks a section header line ("[name]"): every section is checked here,
 * even one without keys, which libinih never shows the handler. 0 or -1. */
static int check_header(ini_state *st) {
  const char *p = st->line, *end = st->line + st->line_len;
  if (st->lineno == 1 && st->line_len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  if (p == end || *p != '[') return 0;
  if (p > st->line && st->keys_in_section > 0) return 0; /* libinih: a continuation */
  const char *close = memchr(p, ']', (size_t)(end - p));
  if (close == NULL) return 0; /* libinih reports the syntax error */
  char name[64], problem[256];
  size_t n = (size_t)(close - p - 1);
  int node;
  if (n >= 48) return fail(st, "unknown section [%.*s]", (int)n, p + 1), -1;
  memcpy(name, p + 1, n);
  name[n] = '\0';
  if (nh_config_section(name, &node, problem, sizeof problem) < 0)
    return fail(st, "%s", problem), -1;
  st->keys_in_section = 0;
  return 0;
}

_Static_assert(INI_MAX_LINE - 3 == NH_CONFIG_LINE_MAX, "the reader's line limit (options.h)");

/* libinih's reader: hands out one line of st->text per call. */
static char *read_line(char *str, int num, void *stream) {
  ini_state *st = stream;
  if (st->failed || st->pos >= st->len) return NULL;
  const char *start = st->text + st->pos;
  const char *nl = memchr(start, '\n', st->len - st->pos);
  size_t n = nl ? (size_t)(nl - start) + 1 : st->len - st->pos;
  size_t content = n;
  while (content && (start[content - 1] == '\n' || start[content - 1] == '\r')) content--;
  st->pos += n;
  st->lineno++;
  st->line = start;
  st->line_len = content;
  if (memchr(start, '\0', n)) return fail(st, "NUL byte in the line"), NULL;
  if (num < 3 || content > (size_t)num - 3)
    return fail(st, "line too long (%zu characters; at most %d)", content, num - 3), NULL;
  /* Copy the content and one '\n', never the raw line: a line may end in
   * any number of '\r's, which the length check above does not count
   * (libinih's stack buffer, str, holds num bytes). */
  memcpy(str, start, content);
  str[content] = '\n';
  str[content + 1] = '\0';
  return check_header(st) == 0 ? str : NULL;
}

/* libinih calls an indented line after a key a continuation of that key. */
static int is_continuation(const ini_state *st) {
  return st->keys_in_section > 0 && st->line_len > 0 &&
         (st->line[0] == ' ' || st->line[0] == '\t');
}

static int on_key(void *user, const char *section, const char *key, const char *value) {
  ini_state *st = user;
  if (st->failed) return 0;
  if (is_continuation(st))
    return fail(st, "indented line continues the previous value; multi-line values are not "
                    "supported (remove the indentation)");
  st->keys_in_section++;
  if (section[0] == '\0') return fail(st, "key \"%s\" is outside any section", key);
  uint32_t *slot = seen_slot(st->s, section, key);
  if (slot && *slot)
    return fail(st, "duplicate key \"%s\" in section [%s] (first set on line %u)", key, section,
                *slot);
  char problem[512];
  int rc = nh_config_store(&st->s->cfg, section, key, value, problem, sizeof problem);
  if (rc == NH_STORE_BAD_VALUE) return fail(st, "[%s] %s: %s", section, key, problem);
  if (rc != NH_STORE_OK) return fail(st, "%s", problem);
  note_set(st->s, slot, section, key, value, st->lineno);
  return 1;
}

/* The rules that span keys, for what this file set. 0 or -1 with err. */
static int check_file_layer(ini_state *st) {
  const scratch *s = st->s;
  if (s->topo_line[0] && s->topo_line[1]) {
    st->lineno = max_u32(s->topo_line[0], s->topo_line[1]);
    return fail(st, "[topology]: synthetic and xml are both set; choose one"), -1;
  }
  uint32_t line = notify_conflict(s);
  if (line) {
    char problem[128];
    notify_problem(s, problem, sizeof problem);
    st->lineno = line;
    return fail(st, "[notify]: %s", problem), -1;
  }
  return 0;
}

/* Parses text (len bytes, NUL-terminated) on top of cfg. */
static int parse_text(nh_config *cfg, const char *text, size_t len, const char *name, char *err,
                      size_t errlen) {
  scratch *s = scratch_new(cfg);
  if (s == NULL) {
    snprintf(err, errlen, "%s: cannot parse: out of memory", name);
    return -1;
  }
  ini_state st = {.name = name, .text = text, .len = len, .s = s, .err = err, .errlen = errlen};
  int rc = ini_parse_stream(read_line, &st, on_key, &st);
  /* libinih goes on after a syntax error; an earlier one wins over ours. */
  if (rc > 0 && (!st.failed || (uint32_t)rc < st.lineno))
    st.lineno = (uint32_t)rc, fail(&st, "syntax error");
  if (!st.failed && rc < 0) snprintf(err, errlen, "%s: cannot parse: out of memory", name);
  int ok = !st.failed && rc == 0 && check_file_layer(&st) == 0;
  if (ok) nh_config_copy(cfg, &s->cfg);
  scratch_free(s);
  return ok ? 0 : -1;
}

int nh_config_parse_string(nh_config *cfg, const char *text, const char *name, char *err,
                           size_t errlen) {
  if (name == NULL) name = "(string)";
  if (text == NULL) {
    snprintf(err, errlen, "%s: no text to parse", name);
    return -1;
  }
  return parse_text(cfg, text, strlen(text), name, err, errlen);
}

static int cannot_read(const char *path, int e, char *err, size_t errlen) {
  char buf[128];
  snprintf(err, errlen, "%s: cannot read: %s", path, errno_text(e, buf, sizeof buf));
  return -1;
}

static int too_large(const char *path, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: file is larger than 1 MiB (%u bytes)", path, NH_CONFIG_MAX_FILE);
  return -1;
}

/* Reads path whole into buf (NH_CONFIG_MAX_FILE + 2 bytes): one byte more
 * than allowed, to see a file that is too large, and the NUL. */
static long read_config_file(const char *path, char *buf, char *err, size_t errlen) {
  int e;
  long n = nh_os_read_file(path, buf, (size_t)NH_CONFIG_MAX_FILE + 2, &e);
  if (n < 0) return cannot_read(path, e, err, errlen);
  if (n > (long)NH_CONFIG_MAX_FILE) return too_large(path, err, errlen);
  return n;
}

int nh_config_parse_file(nh_config *cfg, const char *path, char *err, size_t errlen) {
  if (path == NULL || path[0] == '\0') {
    snprintf(err, errlen, "the config file path is empty");
    return -1;
  }
  size_t cap = (size_t)NH_CONFIG_MAX_FILE + 2;
  char *buf = nh_os_meta_alloc(cap);
  if (buf == NULL) {
    snprintf(err, errlen, "%s: cannot read: out of memory", path);
    return -1;
  }
  long n = read_config_file(path, buf, err, errlen);
  int rc = n < 0 ? -1 : parse_text(cfg, buf, (size_t)n, path, err, errlen);
  nh_os_meta_free(buf, cap);
  return rc;
}

/* ---- the environment layer ------------------------------------------------------- */

#define ENV_PREFIX "NUMAHEAP_"

/* Variables that start with NUMAHEAP_ but are not options. */
static int env_ignored(const char *name, size_t n) {
  if (n == 15 && memcmp(name, "NUMAHEAP_CONFIG", 15) == 0) return 1;
  if (n == 14 && memcmp(name, "NUMAHEAP_STATS", 14) == 0) return 1;
  return n >= 14 && memcmp(name, "NUMAHEAP_TEST_", 14) == 0;
}

/* Maps a variable name to (section, key): the table, then NUMAHEAP_NODE<N>_*.
 * 0, or -1 with problem. section is a buffer of at least 16 bytes. */
static int env_lookup(const char *name, size_t n, char *section, const char **key,
                      char *problem, size_t len) {
  for (int i = 0; i < NH_OPT_COUNT; i++) {
    if (strlen(nh_options[i].env) == n && memcmp(nh_options[i].env, name, n) == 0) {
      snprintf(section, 16, "%s", nh_options[i].section);
      *key = nh_options[i].key;
      return 0;
    }
  }
  const char *p = name + strlen(ENV_PREFIX "NODE"), *end = name + n;
  if (n > strlen(ENV_PREFIX "NODE") && memcmp(name, ENV_PREFIX "NODE", p - name) == 0) {
    const char *d = p;
    uint64_t node = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (node <= NH_MAX_NODE) node = node * 10 + (uint64_t)(*p - '0');
    size_t rest = (size_t)(end - p);
    int is_budget = rest == 7 && memcmp(p, "_BUDGET", 7) == 0;
    int is_reserve = rest == 8 && memcmp(p, "_RESERVE", 8) == 0;
    if (p > d && (is_budget || is_reserve)) {
      if (node > NH_MAX_NODE) {
        snprintf(problem, len, "node number %.*s is above %d", (int)(p - d), d, NH_MAX_NODE);
        return -1;
      }
      snprintf(section, 16, "node:%d", (int)node);
      *key = is_budget ? "budget" : "reserve";
      return 0;
    }
  }
  snprintf(problem, len, "unknown numaheap variable");
  return -1;
}

/* Copies value without leading and trailing blanks into s->value. 0 or -1. */
static int env_trim(scratch *s, const char *value) {
  while (*value == ' ' || *value == '\t') value++;
  size_t n = strlen(value);
  while (n && (value[n - 1] == ' ' || value[n - 1] == '\t')) n--;
  if (n > NH_OPT_STRLEN) return -1;
  memcpy(s->value, value, n);
  s->value[n] = '\0';
  return 0;
}

/* Applies one "NUMAHEAP_...=value" entry (index i). 0, or -1 with err. */
static int env_apply_one(scratch *s, const char *entry, uint32_t where, char *err,
                         size_t errlen) {
  const char *eq = strchr(entry, '=');
  size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
  if (env_ignored(entry, n)) return 0;
  char section[16], problem[512];
  const char *key = NULL;
  int nlen = n > 200 ? 200 : (int)n;
  if (env_lookup(entry, n, section, &key, problem, sizeof problem) != 0) {
    snprintf(err, errlen, "%.*s: %s", nlen, entry, problem);
    return -1;
  }
  uint32_t *slot = seen_slot(s, section, key);
  if (slot && *slot) {
    snprintf(err, errlen, "%.*s: set twice in the environment", nlen, entry);
    return -1;
  }
  if (env_trim(s, eq ? eq + 1 : "") != 0) {
    snprintf(err, errlen, "%.*s: value is longer than %d bytes", nlen, entry, NH_OPT_STRLEN - 1);
    return -1;
  }
  if (nh_config_store(&s->cfg, section, key, s->value, problem, sizeof problem) != NH_STORE_OK) {
    snprintf(err, errlen, "%.*s: %s", nlen, entry, problem);
    return -1;
  }
  note_set(s, slot, section, key, s->value, where);
  return 0;
}

/* The rules that span keys, for what the environment set. 0 or -1 with err. */
static int check_env_layer(const scratch *s, char *err, size_t errlen) {
  if (s->topo_line[0] && s->topo_line[1]) {
    snprintf(err, errlen, "%s and %s are both set; choose one",
             nh_options[NH_OPT_TOPOLOGY_SYNTHETIC].env, nh_options[NH_OPT_TOPOLOGY_XML].env);
    return -1;
  }
  uint32_t where = notify_conflict(s);
  if (where == 0) return 0;
  char problem[128];
  notify_problem(s, problem, sizeof problem);
  nh_opt blame = where == s->opt_line[NH_OPT_NOTIFY_HIGH] ? NH_OPT_NOTIFY_HIGH : NH_OPT_NOTIFY_LOW;
  snprintf(err, errlen, "%s: %s", nh_options[blame].env, problem);
  return -1;
}

/* 1 if envp holds a NUMAHEAP_* variable (most processes have none: then no
 * scratch layer is built). */
static int env_has_options(char *const *envp) {
  for (uint32_t i = 0; envp[i]; i++)
    if (strncmp(envp[i], ENV_PREFIX, strlen(ENV_PREFIX)) == 0) return 1;
  return 0;
}

int nh_config_apply_env(nh_config *cfg, char *const *envp, char *err, size_t errlen) {
  if (envp == NULL) envp = environ;
  if (envp == NULL || !env_has_options(envp)) return 0;
  scratch *s = scratch_new(cfg);
  if (s == NULL) {
    snprintf(err, errlen, "environment: out of memory");
    return -1;
  }
  int rc = 0;
  for (uint32_t i = 0; envp[i] && rc == 0; i++)
    if (strncmp(envp[i], ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
      rc = env_apply_one(s, envp[i], i + 1, err, errlen);
  if (rc == 0) rc = check_env_layer(s, err, errlen);
  if (rc == 0) nh_config_copy(cfg, &s->cfg);
  scratch_free(s);
  return rc;
}
