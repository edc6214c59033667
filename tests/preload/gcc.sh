#!/usr/bin/env bash
# gcc compiles and links a C file: the driver, cc1, as, collect2 and ld all
# run on numaheap (each prints its statistics at exit).
. "$(dirname "$0")/lib.sh"
need gcc
cat > "$WORK/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[24]; };
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(void) {
  struct node *head = NULL;
  for (int i = 0; i < 1000; i++) {
    struct node *n = malloc(sizeof *n);
    snprintf(n->name, sizeof n->name, "n%04d", (i * 7919) % 1000);
    n->next = head;
    head = n;
  }
  char *names[1000];
  int k = 0;
  for (struct node *n = head; n; n = n->next) names[k++] = n->name;
  qsort(names, 1000, sizeof *names, cmp);
  printf("compiled ok %s %s\n", names[0], names[999]);
  return 0;
}
C
"$NH_CLI" run --stats=json -- gcc -O2 -Wall -o "$WORK/prog" "$WORK/prog.c" 2>"$WORK/err" ||
  { cat "$WORK/err" >&2; fail "gcc failed"; }
out=$("$WORK/prog")
echo "$out"
[ "$out" = "compiled ok n0000 n0999" ] || fail "the compiled program printed: $out"
# the driver, cc1, as, collect2 and ld: at least 4 processes
check_stats "$WORK/err" 5000 4
