/* numa/json.c: JSON strings (numa/json.h). */
#include "numa/json.h"

/* Length of the valid UTF-8 sequence at s (2 to 4), or 0 when the byte at
 * s does not start one (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF). s[0] is 0x80 or above. */
static int utf8_len(const unsigned char *s) {
  int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
  if (n == 0 || s[0] > 0xf4) return 0;
  unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
  if (s[0] == 0xe0) lo = 0xa0;
  else if (s[0] == 0xed) hi = 0x9f;
  else if (s[0] == 0xf0) lo = 0x90;
  else if (s[0] == 0xf4) hi = 0x8f;
  if (s[1] < lo || s[1] > hi) return 0;
  for (int i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return n;
}

static void put_control(FILE *out, unsigned char c) {
  if (c == '\n') fputs("\\n", out);
  else if (c == '\t') fputs("\\t", out);
  else if (c == '\r') fputs("\\r", out);
  else fprintf(out, "\\u%04x", c);
}

void nh_json_string(FILE *out, const char *str) {
  const unsigned char *s = (const unsigned char *)(str ? str : "");
  fputc('"', out);
  while (*s) {
    if (*s == '"' || *s == '\\') {
      fputc('\\', out);
      fputc(*s++, out);
    } else if (*s < 0x20 || *s == 0x7f) {
      put_control(out, *s++);
    } else if (*s < 0x80) {
      fputc(*s++, out);
    } else {
      int n = utf8_len(s);
      if (n == 0) {
        fputs("\\ufffd", out);
        s++;
      } else {
        fwrite(s, 1, (size_t)n, out);
        s += n;
      }
    }
  }
  fputc('"', out);
}
