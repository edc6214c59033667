/*
 * bench/peak_rss.c: nh_peak_rss PROGRAM [ARGS...] runs PROGRAM and prints its
 * peak resident set in kB as the kernel's VmHWM reads at the moment it exits,
 * then its exit status. compare.py measures small programs with it
 * (docs/benchmarks.md, "Footprint of a small program").
 *
 * Why not getrusage's ru_maxrss: the kernel carries a child's peak over exec
 * (a child forked from Python reports at least Python's 14 MB), and on recent
 * kernels the resident counters it takes at exit are per-CPU approximations
 * (seen here 40-90 kB below what /proc/PID/smaps sums to). So the child is
 * traced, stopped at its exit (PTRACE_O_TRACEEXIT, its memory still mapped),
 * and its /proc/PID/status read there. Other signals are passed on unchanged.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

/* VmHWM of pid in kB, -1 when it cannot be read. */
static long vm_hwm(pid_t pid) {
  char path[64], line[256];
  long kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  }
  fclose(f);
  return kb;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("usage: nh_peak_rss PROGRAM [ARGS...]\n", stderr);
    return 2;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("nh_peak_rss: fork");
    return 2;
  }
  if (pid == 0) {
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    raise(SIGSTOP); /* the parent sets its options before the exec */
    execvp(argv[1], argv + 1);
    perror("nh_peak_rss: exec");
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
    fputs("nh_peak_rss: the child did not stop before exec\n", stderr);
    return 2;
  }
  ptrace(PTRACE_SETOPTIONS, pid, NULL,
         (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL));
  long hwm = -1;
  int sig = 0;
  for (;;) {
    ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
    sig = 0;
    if (waitpid(pid, &status, 0) != pid) {
      perror("nh_peak_rss: waitpid");
      return 2;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (!WIFSTOPPED(status)) continue;
    int event = status >> 16;
    if (event == PTRACE_EVENT_EXIT) {
      hwm = vm_hwm(pid);
    } else if (event == 0 && WSTOPSIG(status) != SIGTRAP) {
      sig = WSTOPSIG(status); /* the program's own signal: deliver it */
    }
  }
  if (hwm < 0) {
    fputs("nh_peak_rss: the program's exit was not seen\n", stderr);
    return 2;
  }
  printf("%ld %d\n", hwm, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}
