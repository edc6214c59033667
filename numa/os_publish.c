/*
 * numa/os_publish.c: the OS primitives of the published statistics region
 * (contract in numa/os_publish.h).
 */
#define _GNU_SOURCE
#include "numa/os_publish.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "numa/os.h"

/* Descriptors below this are left to the program when the limit allows. */
#define HIGH_FD 512

static int move_high(int fd) {
  int hi = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
  if (hi < 0) return fd; /* RLIMIT_NOFILE at or under 512: keep the number we have */
  close(fd);
  return hi;
}

void *nh_os_memfd_map(const char *name, size_t size, int *fd, uint64_t *id, int *err) {
  int f = memfd_create(name, MFD_CLOEXEC);
  if (f < 0) {
    *err = errno;
    return NULL;
  }
  if (fchmod(f, 0600) != 0 || ftruncate(f, (off_t)size) != 0) {
    *err = errno;
    close(f);
    return NULL;
  }
  f = move_high(f);
  struct stat st;
  if (fstat(f, &st) != 0) {
    *err = errno;
    close(f);
    return NULL;
  }
  *id = (uint64_t)st.st_ino;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  if (p == MAP_FAILED) {
    *err = errno;
    close(f);
    return NULL;
  }
  *fd = f;
  return p;
}

int nh_os_memfd_owned(int fd, uint64_t id) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == id && S_ISREG(st.st_mode);
}

void nh_os_memfd_unmap(void *addr, size_t size, int fd, uint64_t id) {
  if (addr != NULL) munmap(addr, size);
  if (nh_os_memfd_owned(fd, id)) close(fd);
}

int64_t nh_os_pid(void) { return (int64_t)getpid(); }

uint64_t nh_os_start_time(void) {
  char buf[1024];
  int err;
  if (nh_os_read_file("/proc/self/stat", buf, sizeof buf, &err) <= 0) return 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
  if (p == NULL) return 0;
  for (int field = 2; field < 22; field++) { /* ')' ends field 2 */
    p = strchr(p + 1, ' ');
    if (p == NULL) return 0;
  }
  return strtoull(p + 1, NULL, 10);
}

uint64_t nh_os_realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void nh_os_sleep_ms(uint64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void nh_os_thread_name(const char *name) {
  prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

int nh_os_thread_start(void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  pthread_attr_t attr;
  pthread_t t;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits the mask */
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024); /* virtual; glibc takes static TLS from it too */
  int rc = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
