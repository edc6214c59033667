/*
 * tests/preload/atfork.c: fork handlers that allocate, registered by the
 * program's own constructor (before main; before numaheap's first use by the
 * program). pthread_atfork runs prepare handlers in reverse order of
 * registration: were numaheap's handlers registered after these (on the first
 * malloc), its prepare handler would hold its locks while this program's
 * prepare handler allocates, and the fork would never return. Run preloaded
 * and linked; alarm() turns a deadlock into a failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;
static atomic_int stop;

static void churn(int n) {
  for (int i = 0; i < n; i++) {
    char *p = malloc(16 + (size_t)(i % 700));
    p[0] = (char)i;
    free(p);
  }
}

static void prepare(void) { churn(3000); kept = malloc(100); }
static void parent(void) { churn(100); free(kept); }
static void child(void) { churn(100); free(kept); }

__attribute__((constructor(101))) static void register_handlers(void) {
  if (pthread_atfork(prepare, parent, child) != 0) abort();
}

static void *background(void *arg) {
  while (!atomic_load(&stop)) churn(1000);
  return NULL;
}

int main(void) {
  alarm(30);
  pthread_t t;
  pthread_create(&t, NULL, background, NULL);
  for (int r = 0; r < 30; r++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      churn(2000);
      _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      printf("FAIL: child %d\n", r);
      return 1;
    }
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  puts("ok: 30 forks with allocating fork handlers");
  return 0;
}
