/*
 * numa/os_publish.h: the OS primitives of the published statistics region
 * (api/publish.c): a shared memory file, the process's identity, a
 * background thread. Part of the OS layer's contract (numa/os.h): the same
 * conventions (0 or an errno value, NULL on failure, no malloc except
 * inside pthread_create).
 */
#ifndef NH_NUMA_OS_PUBLISH_H
#define NH_NUMA_OS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

/* Creates an anonymous shared file (memfd, close-on-exec, mode 0600) named
 * name, of size bytes, moves its descriptor to a number at or above 512 when
 * the limit allows (out of the way of programs that dup2 onto small
 * numbers), and maps it read-write and shared. The mapping, with *fd set and
 * *id the file's identity (its inode); NULL with *err set to an errno value. */
void *nh_os_memfd_map(const char *name, size_t size, int *fd, uint64_t *id, int *err);

/* 1 when descriptor fd still refers to the file of identity id (the program
 * may have closed it, and the number may now be another file's). */
int nh_os_memfd_owned(int fd, uint64_t id);

/* Unmaps a mapping of nh_os_memfd_map (addr may be NULL) and closes fd if it
 * still refers to the file id: never another file that took its number.
 * Safe in a forked child. */
void nh_os_memfd_unmap(void *addr, size_t size, int fd, uint64_t id);

/* The calling process's id, and its start time: field 22 of /proc/self/stat
 * (clock ticks since boot), 0 when unreadable. Together they name the
 * process even after its id is reused. */
int64_t nh_os_pid(void);
uint64_t nh_os_start_time(void);

/* Wall clock (CLOCK_REALTIME) in nanoseconds. */
uint64_t nh_os_realtime_ns(void);

/* Sleeps ms milliseconds (restarted after signals). */
void nh_os_sleep_ms(uint64_t ms);

/* Starts a detached thread running fn(arg) with every signal blocked (so
 * that signals meant for the program never land on it). 0, or an errno
 * value. */
int nh_os_thread_start(void *(*fn)(void *), void *arg);

/* Names the calling thread (at most 15 characters; PR_SET_NAME). */
void nh_os_thread_name(const char *name);

#endif
