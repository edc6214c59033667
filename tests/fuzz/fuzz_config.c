/*
 * tests/fuzz/fuzz_config.c: libFuzzer target for the config parser.
 *
 * Any bytes go to nh_config_parse_string (and, split into lines, to
 * nh_config_apply_env as NUMAHEAP_* variables). It must never crash, and
 * must either succeed or fail with a message that names the place:
 * "fuzz.ini:<line>: <problem>" for the file, the variable's name for the
 * environment. On failure the config is unchanged. On success, writing the
 * config out and parsing that on top of the defaults gives the same config
 * (the round trip nh_config_write promises).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nh_config cfg, before, again;

/* Stops the fuzzer with a message (libFuzzer records the input). */
static void bad(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_config: %s: \"%s\"\n", what, detail);
  abort();
}

/* "fuzz.ini:<digits>: <text>" */
static int names_a_line(const char *err) {
  const char *p = err + strlen("fuzz.ini");
  if (strncmp(err, "fuzz.ini:", 9) != 0 || !isdigit((unsigned char)p[1])) return 0;
  p++;
  while (isdigit((unsigned char)*p)) p++;
  return p[0] == ':' && p[1] == ' ' && p[2] != '\0';
}

static void parse_file_text(const char *text) {
  char err[600];
  memset(err, 0, sizeof err);
  nh_config_defaults(&cfg);
  before = cfg;
  if (nh_config_parse_string(&cfg, text, "fuzz.ini", err, sizeof err) != 0) {
    if (!names_a_line(err)) bad("error without a line number", err);
    if (!nh_config_same(&cfg, &before)) bad("config changed by a failed parse", err);
    return;
  }
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (f == NULL) return;
  nh_config_write(&cfg, f);
  fclose(f);
  nh_config_defaults(&again);
  if (nh_config_parse_string(&again, out, "written.ini", err, sizeof err) != 0)
    bad("the written config does not parse", err);
  if (!nh_config_same(&cfg, &again)) bad("round trip changed the config", out);
  free(out);
}

/* Lines that look like NAME=value become an environment; NAME is prefixed
 * with NUMAHEAP_ when it lacks it, so most inputs reach the option table. */
static void apply_env_text(const char *text) {
  enum { MAXV = 16 };
  static char buf[MAXV][256];
  char *envp[MAXV + 1];
  int n = 0;
  for (const char *line = text; *line && n < MAXV;) {
    size_t len = strcspn(line, "\n");
    if (memchr(line, '=', len) != NULL) {
      const char *prefix = strncmp(line, "NUMAHEAP_", 9) == 0 ? "" : "NUMAHEAP_";
      snprintf(buf[n], sizeof buf[n], "%s%.*s", prefix, (int)len, line);
      envp[n] = buf[n];
      n++;
    }
    line += len + (line[len] == '\n');
  }
  envp[n] = NULL;
  char err[600];
  memset(err, 0, sizeof err);
  nh_config_defaults(&cfg);
  before = cfg;
  if (nh_config_apply_env(&cfg, envp, err, sizeof err) == 0) return;
  if (strstr(err, "NUMAHEAP_") == NULL) bad("environment error naming no variable", err);
  if (!nh_config_same(&cfg, &before)) bad("config changed by a failed environment", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024) return 0;
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  parse_file_text(text);
  apply_env_text(text);
  free(text);
  return 0;
}
