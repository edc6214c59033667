/*
 * numa/json.h: strings written into JSON output.
 *
 * Every string that goes into a JSON document (a cgroup's path, a file's
 * text, a command name, a reason) is written by nh_json_string, so that a
 * quote, a backslash, a control character or a byte that is not UTF-8 never
 * breaks the document. No allocation; stdio only.
 */
#ifndef NH_NUMA_JSON_H
#define NH_NUMA_JSON_H

#include <stdio.h>

/* Writes s as a JSON string, quotes included: '"' and '\' escaped,
 * control characters (below 0x20, and 0x7f) as \n, \t, \r or \u00XX, and
 * each byte of an invalid or cut UTF-8 sequence as \ufffd (the replacement
 * character). NULL is written as "". */
void nh_json_string(FILE *out, const char *s);

#endif
