/*
 * api/publish_layout.h: the layout of the published statistics region, shared
 * by the library (api/publish.c, the writer) and the numaheap command
 * (api/cli/region.c, the reader). docs/operators.md describes it for other
 * readers.
 *
 * Where: a memfd named "numaheap-stats" (MFD_CLOEXEC, mode 0600), kept open
 * by the process; readers open it through /proc/PID/fd/N, so the rules of
 * /proc/PID apply (same user or root), and nothing outlives the process.
 *
 * What: a header, then one table of field descriptors per section, then each
 * section's records. A record is an array of uint64 values, one per field of
 * its section, in the order of the section's descriptors. A reader finds a
 * counter by its name, so adding a counter (a row of a descriptor table in
 * api/publish.c) needs no new layout version; the version changes only when
 * the header, the section entry or the descriptor changes shape.
 *
 * Consistency: a sequence lock. The writer makes `seq` odd, writes every
 * record and the counts, then makes it even again; a reader copies the
 * region and keeps the copy only when `seq` was even and unchanged across
 * the copy.
 */
#ifndef NH_API_PUBLISH_LAYOUT_H
#define NH_API_PUBLISH_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define NH_PUB_MAGIC "NHSTATS"          /* 8 bytes with the NUL */
#define NH_PUB_VERSION 1u               /* layout version (header, section, field shapes) */
#define NH_PUB_MEMFD_NAME "numaheap-stats" /* /proc/PID/fd/N -> "/memfd:numaheap-stats (deleted)" */

/* Sections, in this order in every region of layout 1. */
enum { NH_PUB_NODE = 0, NH_PUB_CPU = 1, NH_PUB_CACHE = 2, NH_PUB_HOST = 3, NH_PUB_SECTIONS = 4 };

/* What a field's value is (nh_pub_field.kind). */
enum {
  NH_PUB_COUNTER = 1, /* only grows while the process runs (events, or bytes for *_bytes) */
  NH_PUB_GAUGE = 2,   /* a current amount (bytes, blocks) */
  NH_PUB_LABEL = 3,   /* an identifier (node number): a label, not a sample */
};

/* One field of a section's records: 128 bytes. */
typedef struct nh_pub_field {
  char name[32];   /* key in text and JSON output, e.g. "failures_task" */
  char metric[32]; /* Prometheus name without "numaheap_" and "_total", e.g. "failures" */
  uint32_t kind;   /* NH_PUB_COUNTER, NH_PUB_GAUGE or NH_PUB_LABEL */
  int32_t level;   /* criticality level (0 task, 1 appdomain, 2 process) for a level label, or -1 */
  char help[56];   /* one line for Prometheus' HELP */
} nh_pub_field;

/* One section: where its descriptors and records are, and how many records
 * are valid now. */
typedef struct nh_pub_section {
  char name[16];           /* "node", "cpu", "cache", "host" */
  uint32_t nfields;        /* descriptors (and values per record) */
  uint32_t capacity;       /* records the region has room for */
  uint64_t fields_offset;  /* from the region's start: nfields nh_pub_field */
  uint64_t records_offset; /* from the region's start: capacity * nfields uint64 */
  _Atomic uint64_t count;  /* valid records; written under the sequence lock */
} nh_pub_section;

typedef struct nh_pub_header {
  char magic[8];            /* NH_PUB_MAGIC */
  uint32_t version;         /* NH_PUB_VERSION of the writer */
  uint32_t header_size;     /* sizeof(nh_pub_header) of the writer */
  uint64_t size;            /* bytes of the whole region */
  int64_t pid;              /* the process that publishes (a forked child publishes its own) */
  uint64_t start_time;      /* its start time (/proc/PID/stat field 22, clock ticks since boot) */
  uint64_t interval_ms;     /* how often the writer publishes ([stats] publish_interval) */
  char library[16];         /* NUMAHEAP_VERSION_STRING of the writer */
  char cache_mode[16];      /* "percpu", "perthread" or "off" */
  _Atomic uint64_t seq;     /* sequence lock: odd while the writer writes */
  _Atomic uint64_t updated_ns; /* CLOCK_REALTIME of the last snapshot; under seq */
  _Atomic uint64_t snapshots;  /* snapshots written so far; under seq */
  _Atomic uint32_t state;   /* NH_PUB_RUNNING, or NH_PUB_EXITING once exit() began */
  uint32_t nsections;       /* NH_PUB_SECTIONS */
  nh_pub_section sections[NH_PUB_SECTIONS];
} nh_pub_header;

enum { NH_PUB_RUNNING = 1, NH_PUB_EXITING = 2 };

#endif
