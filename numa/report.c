/* numa/report.c: fatal error reports, written without allocating. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

_Noreturn void nh_fatal(const char *fmt, ...) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "numaheap: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  nh_os_write_stderr(buf, len);
  abort();
}
