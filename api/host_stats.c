/*
 * api/host_stats.c: the hosting API's part of nh_stats_print (text form):
 * VirtualAlloc reservations and commits, address space the runtime reported,
 * pressure events and notifications sent, and the DebugAlloc blocks still
 * live, by site. Prints nothing in a process that never created a manager.
 */
#include <inttypes.h>
#include <stdio.h>

#include "api/host_internal.h"
#include "api/internal.h"

void nh_host_stats_print(FILE *out) {
  if (!nh_host_manager_created()) return;
  nh_host_vm_stats vm;
  nh_host_notify_stats ns;
  nh_host_vm_stats_get(&vm);
  nh_host_notify_stats_get(&ns);
  fprintf(out,
          "host: reservations %" PRIu64 " reserved %" PRIu64 " committed %" PRIu64
          " spills %" PRIu64 " failures %" PRIu64 " large %" PRIu64 " large_hugetlb %" PRIu64
          "; views %" PRIu32 " view_bytes %" PRIu64 "\n",
          vm.reservations, vm.reserved, vm.committed, vm.spills, vm.failures, vm.large,
          vm.large_hugetlb, nh_host_vas_views(), nh_host_vas_bytes());
  fprintf(out,
          "host: pressure task %" PRIu64 " appdomain %" PRIu64 " process %" PRIu64
          "; psi %" PRIu64 "; sent low %" PRIu64 " (load %" PRIu64 " high %" PRIu64
          " request %" PRIu64 " psi %" PRIu64 ") neutral %" PRIu64 " high %" PRIu64 "%s\n",
          ns.pressure_events[0], ns.pressure_events[1], ns.pressure_events[2], ns.psi_events,
          ns.sent[eMemoryAvailableLow], ns.lows[NH_LOW_LOAD], ns.lows[NH_LOW_HIGH],
          ns.lows[NH_LOW_REQUEST], ns.lows[NH_LOW_PSI], ns.sent[eMemoryAvailableNeutral],
          ns.sent[eMemoryAvailableHigh], ns.low_mode ? " (low)" : "");
  nh_host_sites_print(out);
}
