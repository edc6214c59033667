/*
 * api/stats.c: statistics snapshots and their text and JSON forms.
 * A snapshot reads relaxed atomics: each counter is exact, the set of them is
 * not one instant (good enough for monitoring; quiesce threads for exact sums).
 * in_use counts blocks handed out by a node's heap, including those held in
 * caches; nh_stats_print flushes the calling thread's cache first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/json.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

static uint64_t rd(_Atomic uint64_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

static void node_snapshot(int i, nh_node_stats *s) {
  nh_heap *h = &nh_g.heap[i];
  memset(s, 0, sizeof *s);
  s->node = i;
  s->os_node = h->os_node;
  s->budget = atomic_load_explicit(&h->budget, memory_order_relaxed);
  s->reserve = atomic_load_explicit(&h->reserve, memory_order_relaxed);
  s->reserve_ready = h->reserve_mapped; /* racy read of a page-lock field: a snapshot */
  s->committed = rd(&h->st.committed);
  s->peak_committed = rd(&h->st.peak_committed);
  for (int l = 0; l < NH_LEVEL_COUNT; l++) {
    s->level_committed[l] = rd(&h->st.level_committed[l]);
    s->failures[l] = rd(&h->st.failures[l]);
  }
  nh_shard_sums sum;
  nh_heap_sum_counters(h, &sum);
  s->in_use = sum.in_use;
  s->allocs = sum.allocs;
  s->frees = sum.frees;
  s->remote_frees = sum.remote_frees;
  s->fallback_out = rd(&h->st.fallback_out);
  s->fallback_in = rd(&h->st.fallback_in);
  s->purged = rd(&h->st.purged);
  s->segments = rd(&h->st.segments);
  s->xfer_hits = sum.xfer_hits;
  s->xfer_misses = sum.xfer_misses;
  s->xfer_released = sum.xfer_released;
  s->xfer_bytes = sum.xfer_bytes;
  s->huge_kept = rd(&h->st.huge_kept);
  s->huge_reused = rd(&h->st.huge_reused);
  s->thp_bytes = rd(&h->st.thp_bytes);
  s->hugetlb_bytes = rd(&h->st.hugetlb_bytes);
  s->hugetlb_fallbacks = rd(&h->st.hugetlb_fallbacks);
}

static void add_into(nh_node_stats *t, const nh_node_stats *s) {
  t->budget += s->budget;
  t->reserve += s->reserve;
  t->reserve_ready += s->reserve_ready;
  t->committed += s->committed;
  t->in_use += s->in_use;
  t->peak_committed += s->peak_committed;
  for (int l = 0; l < NH_LEVEL_COUNT; l++) {
    t->level_committed[l] += s->level_committed[l];
    t->failures[l] += s->failures[l];
  }
  t->allocs += s->allocs;
  t->frees += s->frees;
  t->remote_frees += s->remote_frees;
  t->fallback_out += s->fallback_out;
  t->fallback_in += s->fallback_in;
  t->purged += s->purged;
  t->segments += s->segments;
  t->xfer_hits += s->xfer_hits;
  t->xfer_misses += s->xfer_misses;
  t->xfer_released += s->xfer_released;
  t->xfer_bytes += s->xfer_bytes;
  t->huge_kept += s->huge_kept;
  t->huge_reused += s->huge_reused;
  t->thp_bytes += s->thp_bytes;
  t->hugetlb_bytes += s->hugetlb_bytes;
  t->hugetlb_fallbacks += s->hugetlb_fallbacks;
}

NH_API int nh_stats_get(nh_stats *st) {
  if (st == NULL || st->size != sizeof(nh_stats) || st->version != NH_STATS_VERSION) {
    nh_set_error("nh_stats_get: the caller's nh_stats has another size or version "
                 "(rebuild against this numaheap.h)");
    errno = EINVAL;
    return -1;
  }
  if (!nh_ready() && !nh_start()) {
    errno = EAGAIN;
    return -1;
  }
  uint32_t size = st->size, version = st->version;
  memset(st, 0, sizeof *st);
  st->size = size;
  st->version = version;
  st->node_count = nh_g.nnodes < NH_STATS_MAX_NODES ? nh_g.nnodes : NH_STATS_MAX_NODES;
  st->total.node = st->total.os_node = -1;
  st->huge_pages = nh_g.huge_pages;
  st->huge_reason = nh_g.huge_reason;
  for (int i = 0; i < nh_g.nnodes; i++) {
    nh_node_stats s;
    node_snapshot(i, &s);
    if (i < st->node_count) st->nodes[i] = s;
    add_into(&st->total, &s);
  }
  nh_container_stats(&st->cgroup);
  nh_host_notify_stats ns;
  nh_host_notify_stats_get(&ns);
  st->cgroup.psi_events = ns.psi_events;
  st->cgroup.high_lows = ns.lows[NH_LOW_HIGH];
  st->cgroup.psi_lows = ns.lows[NH_LOW_PSI];
  return 0;
}

static const char *const level_names[NH_LEVEL_COUNT] = {"task", "appdomain", "process"};

static void print_node_text(FILE *out, const nh_node_stats *s) {
  if (s->node < 0) fprintf(out, "total  ");
  else fprintf(out, "node %-2d (os %d)", s->node, s->os_node);
  fprintf(out,
          " budget %" PRIu64 " reserve %" PRIu64 " (ready %" PRIu64 ") committed %" PRIu64 " peak %" PRIu64
          " in_use %" PRIu64 " segments %" PRIu64 "\n",
          s->budget, s->reserve, s->reserve_ready, s->committed, s->peak_committed, s->in_use,
          s->segments);
  fprintf(out,
          "        allocs %" PRIu64 " frees %" PRIu64 " remote_frees %" PRIu64
          " fallback_out %" PRIu64 " fallback_in %" PRIu64 " purged %" PRIu64 "\n",
          s->allocs, s->frees, s->remote_frees, s->fallback_out, s->fallback_in, s->purged);
  fprintf(out,
          "        transfer cache: hits %" PRIu64 " misses %" PRIu64 " released %" PRIu64
          " held %" PRIu64 "\n",
          s->xfer_hits, s->xfer_misses, s->xfer_released, s->xfer_bytes);
  fprintf(out,
          "        huge_kept %" PRIu64 " huge_reused %" PRIu64 " thp_bytes %" PRIu64
          " hugetlb_bytes %" PRIu64 " hugetlb_fallbacks %" PRIu64 "\n",
          s->huge_kept, s->huge_reused, s->thp_bytes, s->hugetlb_bytes, s->hugetlb_fallbacks);
  fprintf(out, "        ");
  for (int l = 0; l < NH_LEVEL_COUNT; l++)
    fprintf(out, "%s: committed %" PRIu64 " failures %" PRIu64 "%s", level_names[l],
            s->level_committed[l], s->failures[l], l + 1 < NH_LEVEL_COUNT ? "; " : "\n");
}

static void print_node_json(FILE *out, const nh_node_stats *s) {
  fprintf(out,
          "{\"node\":%d,\"os_node\":%d,\"budget\":%" PRIu64 ",\"reserve\":%" PRIu64
          ",\"reserve_ready\":%" PRIu64
          ",\"committed\":%" PRIu64 ",\"peak_committed\":%" PRIu64 ",\"in_use\":%" PRIu64
          ",\"allocs\":%" PRIu64 ",\"frees\":%" PRIu64 ",\"remote_frees\":%" PRIu64
          ",\"fallback_out\":%" PRIu64 ",\"fallback_in\":%" PRIu64 ",\"purged\":%" PRIu64
          ",\"segments\":%" PRIu64 ",\"xfer_hits\":%" PRIu64 ",\"xfer_misses\":%" PRIu64
          ",\"xfer_released\":%" PRIu64 ",\"xfer_bytes\":%" PRIu64
          ",\"huge_kept\":%" PRIu64 ",\"huge_reused\":%" PRIu64
          ",\"thp_bytes\":%" PRIu64 ",\"hugetlb_bytes\":%" PRIu64 ",\"hugetlb_fallbacks\":%" PRIu64,
          s->node, s->os_node, s->budget, s->reserve, s->reserve_ready, s->committed,
          s->peak_committed, s->in_use,
          s->allocs, s->frees, s->remote_frees, s->fallback_out, s->fallback_in, s->purged,
          s->segments, s->xfer_hits, s->xfer_misses, s->xfer_released, s->xfer_bytes,
          s->huge_kept, s->huge_reused, s->thp_bytes, s->hugetlb_bytes, s->hugetlb_fallbacks);
  for (int l = 0; l < NH_LEVEL_COUNT; l++)
    fprintf(out, ",\"%s_committed\":%" PRIu64 ",\"%s_failures\":%" PRIu64, level_names[l],
            s->level_committed[l], level_names[l], s->failures[l]);
  fprintf(out, "}");
}

static const char *const mode_names[] = {"percpu", "perthread", "off"};
static const char *const huge_names[] = {"off", "thp", "hugetlb"}; /* NH_HUGE_* */

/* A limit as text ("none") or JSON (null). */
static void limit_text(char *buf, size_t cap, uint64_t v, int json) {
  if (v == UINT64_MAX) snprintf(buf, cap, json ? "null" : "none");
  else snprintf(buf, cap, "%" PRIu64, v);
}

static void print_cgroup(FILE *out, const nh_cgroup_stats *c, int json) {
  char lim[32], high[32];
  limit_text(lim, sizeof lim, c->limit, json);
  limit_text(high, sizeof high, c->high, json);
  if (json)
    fprintf(out,
            ",\"cgroup\":{\"version\":%d,\"limit\":%s,\"high\":%s,\"usage\":%" PRIu64
            ",\"rereads\":%" PRIu64 ",\"low_trims\":%" PRIu64 ",\"psi_events\":%" PRIu64
            ",\"high_lows\":%" PRIu64 ",\"psi_lows\":%" PRIu64 "}",
            c->version, lim, high, c->usage, c->rereads, c->low_trims, c->psi_events,
            c->high_lows, c->psi_lows);
  else
    fprintf(out,
            "cgroup: v%d limit %s high %s usage %" PRIu64 " rereads %" PRIu64 " low_trims %" PRIu64
            " psi_events %" PRIu64 " high_lows %" PRIu64 " psi_lows %" PRIu64 "\n",
            c->version, lim, high, c->usage, c->rereads, c->low_trims, c->psi_events,
            c->high_lows, c->psi_lows);
}

/* One line (or JSON object) per CPU cache that saw any traffic. */
static void print_cpus(FILE *out, int json) {
  int n = nh_cache_cpu_count(), first = 1;
  if (json) fprintf(out, ",\"cpus\":[");
  for (int cpu = 0; cpu < n; cpu++) {
    nh_cache_cpu_stats c;
    if (nh_cache_cpu_stats_get(cpu, &c) != 0 || (c.hits | c.misses | c.remote_sent) == 0) continue;
    if (json)
      fprintf(out,
              "%s{\"cpu\":%d,\"node\":%d,\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
              ",\"refills\":%" PRIu64 ",\"drains\":%" PRIu64 ",\"remote_sent\":%" PRIu64
              ",\"idle_drains\":%" PRIu64 ",\"steals\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
              first ? "" : ",", cpu, c.node, c.hits, c.misses, c.refills, c.drains, c.remote_sent,
              c.idle_drains, c.steals, c.bytes);
    else
      fprintf(out,
              "cpu %-3d (node %d): hits %" PRIu64 " misses %" PRIu64 " refills %" PRIu64
              " drains %" PRIu64 " remote_sent %" PRIu64 " idle_drains %" PRIu64 " steals %" PRIu64
              " held %" PRIu64 "\n",
              cpu, c.node, c.hits, c.misses, c.refills, c.drains, c.remote_sent, c.idle_drains,
              c.steals, c.bytes);
    first = 0;
  }
  if (json) fprintf(out, "]");
}

NH_API int nh_stats_print(FILE *out, int json) {
  if (out == NULL) {
    nh_set_error("nh_stats_print: no output stream");
    errno = EINVAL;
    return -1;
  }
  nh_cache_flush_thread();
  static nh_stats st NH_BSS_COLD; /* big; printing is not reentrant-critical */
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  if (nh_stats_get(&st) != 0) return -1;
  nh_cache_stats cs;
  nh_cache_stats_get(&cs);
  if (json) {
    fprintf(out, "{\"version\":%d,\"nodes\":[", NH_STATS_VERSION);
    for (int i = 0; i < st.node_count; i++) {
      if (i) fputc(',', out);
      print_node_json(out, &st.nodes[i]);
    }
    fprintf(out, "],\"total\":");
    print_node_json(out, &st.total);
    fprintf(out, ",\"huge_pages\":\"%s\",\"huge_pages_why\":", huge_names[st.huge_pages]);
    nh_json_string(out, st.huge_reason);
    fprintf(out,
            ",\"cache\":{\"mode\":\"%s\",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
            ",\"refills\":%" PRIu64 ",\"drains\":%" PRIu64 ",\"remote_sent\":%" PRIu64 "}",
            mode_names[nh_cache_mode()], cs.hits, cs.misses, cs.refills, cs.drains,
            cs.remote_sent);
    print_cpus(out, 1);
    print_cgroup(out, &st.cgroup, 1);
    fprintf(out, "}\n");
  } else {
    fprintf(out, "numaheap statistics (%d nodes, cache %s)\nhuge pages: %s\n", nh_g.nnodes,
            mode_names[nh_cache_mode()], st.huge_reason);
    for (int i = 0; i < st.node_count; i++) print_node_text(out, &st.nodes[i]);
    print_node_text(out, &st.total);
    fprintf(out,
            "cache: hits %" PRIu64 " misses %" PRIu64 " refills %" PRIu64 " drains %" PRIu64
            " remote_sent %" PRIu64 "\n",
            cs.hits, cs.misses, cs.refills, cs.drains, cs.remote_sent);
    print_cpus(out, 0);
    print_cgroup(out, &st.cgroup, 0);
    nh_host_stats_print(out);
  }
  fflush(out);
  return ferror(out) ? -1 : 0;
}

void nh_stats_at_exit(void) {
  const char *env = getenv("NUMAHEAP_STATS");
  int json = (env && strcmp(env, "json") == 0) ||
             (!env && nh_cfg && nh_cfg->v[NH_OPT_STATS_PRINT].choice == NH_STATS_JSON);
  FILE *out = nh_stats_fd >= 0 ? fdopen(nh_stats_fd, "w") : NULL;
  nh_stats_print(out ? out : stderr, json);
  if (out) fclose(out);
}
