/* api/error.c: the per-thread message behind nh_last_error(). */
#include <stdio.h>

#include "api/internal.h"
#include "numaheap/numaheap.h"

static __thread char tl_error[512] __attribute__((tls_model("initial-exec")));

void nh_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tl_error, sizeof tl_error, fmt, ap);
  va_end(ap);
}

void nh_clear_error(void) { tl_error[0] = '\0'; }

NH_API const char *nh_last_error(void) { return tl_error; }
