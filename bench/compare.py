#!/usr/bin/python3
"""Compare numaheap with glibc, jemalloc, mimalloc, tcmalloc and TBB's allocator.

Runs one nh_bench binary under each allocator (LD_PRELOAD; glibc without),
in interleaved rounds: every round runs each workload family once per
allocator, rotating the allocator order, so drift in a noisy machine spreads
over all allocators. Each (round, family, allocator) is its own process, which
gives the family's peak RSS (wait4's ru_maxrss). Results are medians over the
rounds.

Every run is checked: nh_bench must report the expected allocator as live
(--nhb_expect, and the "allocator" field of the JSON context). A peer that is
not live, a crash, or a benchmark error makes the script exit non-zero naming
the allocator, the family and (for a crash) the benchmark that crashes alone.
If numaheap is not given or does not load, the peers are compared against
glibc, and the report says so.

--numaheap-variant LABEL:KEY=VALUE,... adds numaheap once more, as the
allocator numaheap-LABEL, run with those NUMAHEAP_* variables set (e.g.
nothp:NUMAHEAP_HEAP_HUGE_PAGES=off): a configuration side by side with the
default and the peers, in the same rounds.

The report's heading says how this host treats fresh transparent huge pages
(host_thp_probe): a virtual machine whose host takes back the guest's free
memory (free page reporting) makes a huge page faulted on such memory cost
many times a reused one, which weighs on whichever allocator asks for huge
pages first after an idle moment.

Writes into --out: report.md (tables), results.json (medians), raw/ (every
run's JSON and log), and PNG plots.

Example:
  python3 bench/compare.py --bench build/bench/nh_bench \\
      --numaheap build/libnumaheap.so --quick --out /tmp/nh-compare
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

# name -> (Debian package, regex for the .so to preload in `dpkg -L`)
PEERS = {
    "jemalloc": ("libjemalloc2", r"/libjemalloc\.so\.2$"),
    "mimalloc": ("libmimalloc2.0", r"/libmimalloc\.so\.2$"),
    "tcmalloc": ("libtcmalloc-minimal4", r"/libtcmalloc_minimal\.so\.4$"),
    "tbbmalloc": ("libtbbmalloc2", r"/libtbbmalloc_proxy\.so\.2$"),
}
ALL_ALLOCATORS = ["numaheap", "glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc"]

# family -> Google Benchmark filter; each family runs in its own process.
FAMILIES = {
    "pair": r"^pair/",
    "batch": r"^batch_",
    "larson": r"^larson/",
    "prodcons": r"^prodcons/",
    "cache": r"^cache_",
    "realloc": r"^realloc_",
    "frag": r"^frag/",
    "host": r"^host/",  # numaheap's CLR host API, or the plain host on the others (wl_host.c)
    "larson_classic": r"^larson_classic/",
    "glibc_thread": r"^glibc_thread/",
    "mpmc": r"^mpmc/",
    "server": r"^server/",
    "large": r"^large/",
    "chase": r"^chase/",
    "cfrac": r"^cfrac/",
    "threads": r"^threads_",
    "pystart": r"^pystart/",  # CPython 3.11's start, replayed (bench/trace_pystart.inc)
}

MODES = {  # rounds, --benchmark_min_time (seconds)
    "quick": (3, 0.02),
    "full": (5, 0.2),
}

# Benchmarks (without /threads:N) drawn in the throughput-vs-threads plot.
THREAD_PLOTS = [
    "pair/size:64/real_time", "pair/size:4096/real_time",
    "batch_fifo/n:1000/size:32/real_time", "batch_shuffled/n:50000/size:256/real_time",
    "larson/real_time", "prodcons/size:256/real_time",
    "cache_thrash/size:8/real_time", "cache_scratch/size:8/real_time",
    "larson_classic/blocks:5000/real_time", "glibc_thread/ws:1024/real_time",
    "glibc_thread/ws:262144/real_time", "mpmc/max:64/cap:256/real_time",
    "server/live:1000/real_time", "server/live:100000/real_time",
]

RUN_TIMEOUT = 900  # seconds one nh_bench process may take

# Small programs whose peak RSS (VmHWM at exit, read by nh_peak_rss) is the
# allocator's fixed cost (issue 14's footprint target): label -> argv. "small"
# is tests/footprint/small.c, found next to the bench folder; it is left out
# when the tests were not built.
SMALL_PROGRAMS = {
    "small": ["@small"],
    "ls /usr": ["ls", "/usr"],
    "python3 -c pass": ["python3", "-c", "pass"],
}

TIME_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class CompareError(Exception):
    """A problem that stops the comparison; the message names it."""


def log(msg):
    print(f"compare.py: {msg}", file=sys.stderr, flush=True)


# ---- allocators ----------------------------------------------------------------

def dpkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


def apt_install(pkgs):
    if os.geteuid() != 0:
        raise CompareError(f"packages missing: {' '.join(pkgs)}; run as root or "
                           f"'apt-get install {' '.join(pkgs)}', or leave them out with --allocators")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + pkgs
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing {' '.join(pkgs)}")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        raise CompareError(f"apt-get install {' '.join(pkgs)} failed")


def peer_library(name):
    pkg, pattern = PEERS[name]
    files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True).stdout.split()
    hits = [f for f in files if re.search(pattern, f) and os.path.exists(f)]
    if not hits:
        raise CompareError(f"{name}: package {pkg} is installed but has no file matching {pattern}")
    return hits[0]


def identify(bench, preload, name=None):
    """The allocator nh_bench reports as live under @preload (None: none)."""
    r = subprocess.run([bench, "--nhb_identify"], env=run_env(preload, name),
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"allocator=(\S+)", r.stdout)
    if r.returncode < 0:
        raise CompareError(f"nh_bench --nhb_identify {describe_status(r.returncode)} "
                           f"under LD_PRELOAD={preload}: {r.stderr.strip()}")
    if r.returncode != 0 or not m:
        return None, (r.stderr.strip() or f"exit status {r.returncode}")
    return m.group(1), r.stderr.strip()


# allocator name -> the NUMAHEAP_* variables of a --numaheap-variant
VARIANT_ENV = {}


def run_env(preload, name=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(VARIANT_ENV.get(name, {}))
    return env


def live_name(name):
    """The allocator nh_bench reports for @name: numaheap for its variants."""
    return "numaheap" if name in VARIANT_ENV else name


def parse_variant(text):
    """'LABEL:KEY=VALUE,...' -> (allocator name, {KEY: VALUE})."""
    label, sep, rest = text.partition(":")
    if not sep or not re.fullmatch(r"[a-z0-9_]+", label):
        raise CompareError(f"--numaheap-variant '{text}': want LABEL:KEY=VALUE,... with a "
                           "label of lower-case letters, digits and _")
    env = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"NUMAHEAP_[A-Z0-9_]+", key):
            raise CompareError(f"--numaheap-variant '{text}': '{item}' is not NUMAHEAP_NAME=VALUE")
        env[key] = value
    return "numaheap-" + label, env


def resolve_allocators(args):
    """Returns ({name: preload or None}, base name, note for the heading)."""
    wanted = args.allocators.split(",")
    for w in wanted:
        if w not in ALL_ALLOCATORS:
            raise CompareError(f"unknown allocator '{w}' (known: {', '.join(ALL_ALLOCATORS)})")
    missing = [PEERS[w][0] for w in wanted if w in PEERS and not dpkg_installed(PEERS[w][0])]
    if missing and args.no_install:
        raise CompareError(f"packages missing and --no-install given: {' '.join(missing)}")
    if missing:
        apt_install(missing)
    libs = {}
    for w in wanted:
        libs[w] = None if w == "glibc" else (peer_library(w) if w in PEERS else args.numaheap)
    note = ""
    if "numaheap" in libs:
        note = check_numaheap(args.bench, libs["numaheap"])
        if note:
            del libs["numaheap"]
    for text in args.numaheap_variant or []:
        name, env = parse_variant(text)
        if "numaheap" not in libs:
            raise CompareError(f"--numaheap-variant {text}: numaheap itself is not measured "
                               f"({note or 'not in --allocators'})")
        VARIANT_ENV[name] = env
        libs[name] = libs["numaheap"]
    for name, lib in libs.items():
        live, detail = identify(args.bench, lib, name)
        refused = [line for line in detail.splitlines() if "running on defaults" in line]
        if name in VARIANT_ENV and refused:  # a variable numaheap does not know, a bad value
            raise CompareError(f"{name}: numaheap refused the variant's variables: {refused[0]}")
        if live != live_name(name):
            raise CompareError(f"{name}: nh_bench reports '{live}' as the live allocator "
                               f"under LD_PRELOAD={lib} ({detail})")
    if "glibc" not in libs and "numaheap" not in libs:
        raise CompareError("nothing to compare against: need numaheap or glibc in --allocators")
    base = "numaheap" if "numaheap" in libs else "glibc"
    return libs, base, note


def check_numaheap(bench, lib):
    """'' if numaheap loads and is live, else why not (the report shows it)."""
    if not lib:
        why = "numaheap library not given (--numaheap)"
    elif not os.path.exists(lib):
        why = f"numaheap library {lib} does not exist"
    else:
        live, detail = identify(bench, lib)
        if live == "numaheap":
            return ""
        why = f"numaheap did not load from {lib}: nh_bench reports '{live}' ({detail})"
    log("WARNING: " + why + "; comparing peers against glibc")
    return why


# ---- running ---------------------------------------------------------------------

def describe_status(status):
    if status == TIMED_OUT:
        return f"hung: killed after {RUN_TIMEOUT} s"
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit status {status}"


TIMED_OUT = -1000  # run_once's status for a run killed after RUN_TIMEOUT


def run_once(bench, preload, name, bench_filter, min_time, json_path, log_path):
    """Runs nh_bench once; returns (exit status, peak RSS bytes). The status is
    negative for a signal, TIMED_OUT for a run that hung past RUN_TIMEOUT."""
    cmd = [bench, f"--nhb_expect={live_name(name)}", f"--benchmark_filter={bench_filter}",
           f"--benchmark_min_time={min_time}", f"--benchmark_out={json_path}",
           "--benchmark_out_format=json"]
    deadline = time.monotonic() + RUN_TIMEOUT
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, env=run_env(preload, name), stdout=out,
                                stderr=subprocess.STDOUT)
        while True:  # wait4 gives this child's own ru_maxrss
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = TIMED_OUT
                return TIMED_OUT, 0
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024


def find_crashing_benchmark(bench, preload, name, bench_filter, min_time, tmp):
    """Runs the family's benchmarks one by one; the first that fails alone."""
    for bname in list_benchmarks(bench, preload, bench_filter):
        status, _ = run_once(bench, preload, name, "^" + re.escape(bname) + "$", min_time,
                             tmp + ".json", tmp + ".log")
        if status != 0:
            return f"{bname} ({describe_status(status)})"
    return "no benchmark fails when run alone"


def check_run(name, family, status, json_path, log_path):
    """Raises CompareError describing a bad run; returns the parsed JSON."""
    if status != 0:
        with open(log_path, errors="replace") as f:
            tail = "\n".join("    " + line for line in f.read().splitlines()[-6:])
        raise CompareError(f"{name}: family '{family}' {describe_status(status)}; "
                           f"end of {log_path}:\n{tail}")
    with open(json_path) as f:
        text = f.read()
    if not text.strip():  # Google Benchmark writes nothing when the filter matches nothing
        raise CompareError(f"{name}: family '{family}' ran no benchmark: its filter matches none "
                           "(nh_bench --benchmark_list_tests lists the names)")
    data = json.loads(text)
    live = data.get("context", {}).get("allocator")
    if live != live_name(name):
        raise CompareError(f"{name}: family '{family}' ran on '{live}' ({json_path})")
    errors = [b["name"] + ": " + b.get("error_message", "")
              for b in data.get("benchmarks", []) if b.get("error_occurred")]
    if errors:
        raise CompareError(f"{name}: family '{family}' reported errors: {'; '.join(errors)}")
    if not data.get("benchmarks"):
        raise CompareError(f"{name}: family '{family}' ran no benchmark (filter matches nothing?)")
    return data


def list_benchmarks(bench, preload, bench_filter):
    """The names nh_bench runs for a filter (its --benchmark_list_tests)."""
    listing = subprocess.run([bench, f"--benchmark_filter={bench_filter}",
                              "--benchmark_list_tests"], env=run_env(preload),
                             capture_output=True, text=True, timeout=120)
    return listing.stdout.split()


def run_family(args, preload, name, family, flt, min_time, stem):
    """Runs one family on one allocator: in one process, or (--per-benchmark)
    one process per benchmark, so that no benchmark starts on the heap an
    earlier one left (its caches, its huge pages, its shards). Returns
    (status, peak RSS, json path, log path) of the run, or of the first
    failing one; the JSON of a per-benchmark run holds every benchmark."""
    if not args.per_benchmark:
        status, peak = run_once(args.bench, preload, name, flt, min_time,
                                stem + ".json", stem + ".log")
        return status, peak, stem + ".json", stem + ".log"
    merged, peak = None, 0
    for i, bname in enumerate(list_benchmarks(args.bench, preload, flt)):
        one = f"{stem}-b{i + 1}"
        status, p = run_once(args.bench, preload, name, "^" + re.escape(bname) + "$", min_time,
                             one + ".json", one + ".log")
        if status != 0:
            return status, 0, one + ".json", one + ".log"
        with open(one + ".json") as f:
            data = json.load(f)
        if merged is None:
            merged = data
        else:
            merged["benchmarks"].extend(data.get("benchmarks", []))
        peak = max(peak, p)
    with open(stem + ".json", "w") as f:
        json.dump(merged or {}, f)
    open(stem + ".log", "a").close()
    return 0, peak, stem + ".json", stem + ".log"


def run_all(args, libs, families, rounds, min_time):
    """samples[alloc][bench] = list of dicts; rss[alloc][family] = list of bytes."""
    raw = os.path.join(args.out, "raw")
    os.makedirs(raw, exist_ok=True)
    names = list(libs)
    samples = {n: {} for n in names}
    rss = {n: {} for n in names}
    failures = []
    broken = set()  # (alloc, family) pairs that failed once: not run again
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for family, flt in families.items():
            for name in order:
                if (name, family) in broken:
                    continue
                stem = os.path.join(raw, f"{name}-{family}-r{r + 1}")
                log(f"round {r + 1}/{rounds}: {family} on {name}")
                status, peak, json_path, log_path = run_family(args, libs[name], name, family,
                                                               flt, min_time, stem)
                try:
                    data = check_run(name, family, status, json_path, log_path)
                except CompareError as e:
                    msg = str(e)
                    if status not in (0, 3):  # 3: wrong allocator, already named
                        culprit = find_crashing_benchmark(args.bench, libs[name], name, flt,
                                                          min_time, stem + "-alone")
                        msg += f"\n  failing benchmark, run alone: {culprit}"
                    log("FAILED: " + msg)
                    failures.append(msg)
                    broken.add((name, family))
                    continue
                rss[name].setdefault(family, []).append(peak)
                for b in data["benchmarks"]:
                    samples[name].setdefault(b["name"], []).append(b)
    return samples, rss, failures


def drop_page_cache(path):
    """Drops path's pages from the page cache, so that each run reads the library as a
    process that starts it for the first time does (its RSS depends on what is cached)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_small_programs(args, libs, runs):
    """small[alloc][label] = list of peak RSS in kB, runs interleaved by allocator."""
    launcher = os.path.join(os.path.dirname(args.bench), "nh_peak_rss")
    if not os.access(launcher, os.X_OK):
        raise CompareError(f"{launcher} not found (it is built with nh_bench)")
    small = os.path.join(os.path.dirname(os.path.dirname(args.bench)), "tests", "footprint_small")
    progs = {}
    for label, argv in SMALL_PROGRAMS.items():
        if argv[0] == "@small":
            if not os.access(small, os.X_OK):
                log(f"small programs: {small} not built, left out")
                continue
            argv = [small]
        progs[label] = argv
    out = {n: {label: [] for label in progs} for n in libs}
    names = list(libs)
    for r in range(runs):
        if r % 5 == 0:
            log(f"small programs: run {r + 1}/{runs}")
        for name in names[r % len(names):] + names[:r % len(names)]:
            for label, argv in progs.items():
                if libs[name]:
                    drop_page_cache(libs[name])
                p = subprocess.run([launcher] + argv, env=run_env(libs[name], name),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, timeout=120)
                lines = p.stdout.splitlines()  # the program's own output, then the launcher's line
                last = lines[-1] if lines else ""
                fields = last.split()
                if p.returncode != 0 or len(fields) != 2 or fields[1] != "0":
                    raise CompareError(f"small program '{label}' under {name}: nh_peak_rss "
                                       f"exit {p.returncode}, output '{last}'")
                out[name][label].append(int(fields[0]))
    return out


def small_table(small, base, peers):
    rows = []
    labels = list(next(iter(small.values())).keys()) if small else []
    for label in labels:
        base_v = statistics.median(small[base][label])
        row = [label, f"{base_v:.0f} kB ({min(small[base][label])}-{max(small[base][label])})"]
        for p in peers:
            v = statistics.median(small[p][label])
            row += [f"{v:.0f} kB", f"{v / base_v:.2f}"]
        rows.append(row)
    return table(["program", base] + peer_header(base, peers), rows)


# ---- medians -----------------------------------------------------------------------

def median_of(runs, key):
    vals = [float(b[key]) for b in runs if key in b]
    return statistics.median(vals) if vals else None


def summarize(samples, rss, metric):
    """medians[alloc][bench] = {time_ns (of @metric), real and cpu time,
    items_per_second, counters...}."""
    metric_key = metric + "_time"
    out = {}
    for name, benches in samples.items():
        out[name] = {}
        for bname, runs in benches.items():
            scale = TIME_SCALE[runs[0].get("time_unit", "ns")]
            m = {"time_ns": median_of(runs, metric_key) * scale,
                 "real_time_ns": median_of(runs, "real_time") * scale,
                 "cpu_time_ns": median_of(runs, "cpu_time") * scale,
                 "threads": runs[0].get("threads", 1), "rounds": len(runs)}
            for key in runs[0]:
                if key in ("items_per_second", "live_peak", "rss_at_peak", "rss_end",
                           "rss_peak", "rss_base", "overhead", "rss_hold"):
                    m[key] = median_of(runs, key)
            out[name][bname] = m
    peaks = {name: {fam: statistics.median(v) for fam, v in fams.items()}
             for name, fams in rss.items()}
    return out, peaks


# ---- report --------------------------------------------------------------------------

def fmt_time(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_mib(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def ratio_cells(value, base, fmt):
    """[peer value, peer / base] as two table cells."""
    if value is None:
        return ["-", "-"]
    return [fmt(value), f"{value / base:.2f}" if base else "-"]


def peer_header(base, peers):
    return [h for p in peers for h in (p, f"{p}/{base}")]


def bench_order(medians):
    seen = []
    for benches in medians.values():
        for b in benches:
            if b not in seen:
                seen.append(b)
    return seen


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def time_table(medians, base, peers):
    rows = []
    for b in bench_order(medians):
        base_t = medians.get(base, {}).get(b, {}).get("time_ns")
        row = [b.replace("/real_time", ""), fmt_time(base_t)]
        for p in peers:
            row += ratio_cells(medians[p].get(b, {}).get("time_ns"), base_t, fmt_time)
        rows.append(row)
    return table(["benchmark", base] + peer_header(base, peers), rows)


def rss_table(peaks, base, peers, families):
    rows = []
    for fam in families:
        base_v = peaks.get(base, {}).get(fam)
        row = [fam, fmt_mib(base_v)]
        for p in peers:
            row += ratio_cells(peaks[p].get(fam), base_v, fmt_mib)
        rows.append(row)
    return table(["family (one process)", base] + peer_header(base, peers), rows)


def frag_table(medians, names):
    rows = []
    for b in [b for b in bench_order(medians) if b.startswith("frag/")]:
        for n in names:
            m = medians[n].get(b)
            if not m:
                continue
            rows.append([b.replace("/real_time", ""), n, fmt_mib(m.get("live_peak")), fmt_mib(m.get("rss_at_peak")),
                         fmt_mib(m.get("rss_end")), f"{m.get('overhead', 0):.2f}"])
    return table(["benchmark", "allocator", "live at peak", "RSS at peak", "RSS after free",
                  "(RSS at peak - base) / live"], rows)


def footprint_table(medians, names):
    """The resident set workloads sample at their point of interest (rss_hold)."""
    rows = []
    for b in bench_order(medians):
        vals = [medians[n].get(b, {}).get("rss_hold") for n in names]
        if any(v is not None for v in vals):
            rows.append([b.replace("/real_time", "")] + [fmt_mib(v) for v in vals])
    return table(["benchmark"] + names, rows) if rows else "(no footprint benchmark ran)"


PROBE_BYTES = 256 << 20
PROBE_IDLE = 4.0  # seconds: past the 2 s delay of Linux's free page reporting


def probe_touch(huge):
    """Seconds to write PROBE_BYTES into a fresh anonymous mapping, asked for
    transparent huge pages (or refused them); the mapping is unmapped after."""
    import mmap
    m = mmap.mmap(-1, PROBE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m.madvise(mmap.MADV_HUGEPAGE if huge else mmap.MADV_NOHUGEPAGE)
        chunk = b"\1" * (2 << 20)
        t = time.monotonic()
        for off in range(0, PROBE_BYTES, len(chunk)):
            m[off:off + len(chunk)] = chunk
        return time.monotonic() - t
    finally:
        m.close()


def page_reporting_note():
    """'; free page reporting is on (...)' when a virtio balloon with the reporting
    feature (bit 5) is bound, with the kernel's page_reporting_order; else ''."""
    drivers = "/sys/bus/virtio/drivers/virtio_balloon"
    try:
        devices = [d for d in os.listdir(drivers) if d.startswith("virtio")]
    except OSError:
        return ""
    on = False
    for d in devices:
        try:
            with open(os.path.join(drivers, d, "features")) as f:
                on = on or f.read()[5:6] == "1"
        except OSError:
            pass
    if not on:
        return ""
    try:
        with open("/sys/module/page_reporting/parameters/page_reporting_order") as f:
            order = int(f.read())
        size = f"{(4096 << order) >> 20} MiB" if order >= 8 else f"{(4096 << order) >> 10} KiB"
        return (f"; free page reporting is on (page_reporting_order {order}: free blocks of "
                f"{size} and more go back to the host)")
    except (OSError, ValueError):
        return "; free page reporting is on"


def host_thp_probe():
    """How this host treats fresh transparent huge pages, in one line; None if
    THP is off or cannot be asked for. Writes 256 MiB with huge pages right after
    the same was unmapped (memory the guest just freed), then after PROBE_IDLE s
    idle, and with base pages after the same idle. A virtual machine whose host
    discards what the guest frees (free page reporting: a virtio balloon with
    the reporting feature, page_reporting_note) shows the second many times
    the first; a bare machine shows them alike."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = re.search(r"\[(\w+)\]", f.read()).group(1)
        if mode == "never":
            return None
        probe_touch(True)
        reused = probe_touch(True)
        time.sleep(PROBE_IDLE)
        idle = probe_touch(True)
        time.sleep(PROBE_IDLE)
        base = probe_touch(False)
    except (OSError, AttributeError, ValueError):
        return None
    order = page_reporting_note()
    per = (PROBE_BYTES >> 21) / 1000  # ms per 2 MiB from seconds per PROBE_BYTES
    verdict = ("fresh huge pages after an idle moment cost "
               f"{idle / reused:.1f}x reused ones: the host takes back freed memory, and "
               "whichever allocator faults huge pages first after a pause pays for it"
               if idle > 3 * reused else "no cost of note for fresh huge pages")
    return (f"THP '{mode}'; writing 256 MiB: huge pages reused {reused * 1e3:.0f} ms "
            f"({reused / per:.2f} ms a 2 MiB page), huge pages after {PROBE_IDLE:.0f} s idle "
            f"{idle * 1e3:.0f} ms, base pages after the same idle {base * 1e3:.0f} ms: "
            f"{verdict}{order}")


def machine_line():
    nodes = len([d for d in os.listdir("/sys/devices/system/node")
                 if re.fullmatch(r"node\d+", d)]) if os.path.isdir("/sys/devices/system/node") else 1
    return f"{platform.node()}, {os.cpu_count()} CPUs, {nodes} NUMA node(s), {platform.release()}"


def write_report(args, libs, base, note, medians, peaks, failures, families, rounds, min_time,
                 small, host):
    peers = [n for n in libs if n != base]
    if base == "numaheap":
        heading = "Peers relative to numaheap"
    else:
        heading = f"Peers relative to glibc (numaheap not measured: {note or 'not selected'})"
    parts = [
        f"# Allocator comparison: {heading}", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {machine_line()}",
        f"- command: `{' '.join(sys.argv)}`",
        f"- mode: {args.mode}, {rounds} interleaved rounds, --benchmark_min_time={min_time}; "
        "medians over rounds",
        "- libraries: " + ", ".join(
            f"{n}={libs[n] or '(none)'}" + "".join(f" {k}={v}" for k, v in VARIANT_ENV.get(n, {}).items())
            for n in libs),
        f"- host: {host or 'not probed (--no-host-probe, or THP off)'}", "",
        f"## Time per operation ({args.metric} time; peer/{base} above 1 is slower)",
        "",
        "For N threads the real time is wall time divided by all threads' operations "
        "(the inverse of total throughput); the CPU time is all threads' CPU time "
        "divided by the same count.", "",
        time_table(medians, base, peers), "",
        f"## Peak RSS of each family's process (peer/{base} above 1 uses more)", "",
        rss_table(peaks, base, peers, families), "",
        "## Fragmentation workload", "",
        frag_table(medians, list(libs)), "",
        "## Resident set sampled inside footprint workloads (rss_hold; lower is better)", "",
        footprint_table(medians, list(libs)), "",
    ]
    if small:
        parts += [f"## Peak RSS of small programs (VmHWM at exit, median of {args.small_runs} "
                  f"runs; peer/{base} above 1 uses more)", "",
                  "Each library's pages dropped from the page cache before each run; runs "
                  "interleaved by allocator. Single runs vary by about 150 kB: the kernel maps "
                  "a file's cached pages around a fault in 64 KiB windows, and where ASLR puts "
                  "each library decides which windows a program's code and data fall in.", "",
                  small_table(small, base, peers), ""]
    if failures:
        parts += ["## FAILURES", ""]
        for f in failures:
            first, _, rest = f.partition("\n")
            parts += [f"- {first}"] + (["", "  ```", rest, "  ```"] if rest else []) + [""]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(parts))


# ---- plots -------------------------------------------------------------------------------

def plot_threads(plt, medians, path):
    present = [g for g in THREAD_PLOTS
               if any(b.startswith(g + "/threads:") for n in medians for b in medians[n])]
    if not present:
        return False
    cols = 4
    rows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, group in zip(axes.flat, present):
        for name, benches in medians.items():
            pts = sorted((m["threads"], m.get("items_per_second", 0) / 1e6)
                         for b, m in benches.items() if b.startswith(group + "/threads:"))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_title(group.replace("/real_time", ""), fontsize=10)
        ax.set_xlabel("threads")
        ax.set_ylabel("million ops / s")
        ax.set_xticks([1, 2, 4])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("Throughput against threads (higher is better)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_sizes(plt, medians, path, metric):
    pat = re.compile(r"^pair/size:(\d+)/real_time/threads:(\d+)$")
    threads = sorted({int(m.group(2)) for n in medians for b in medians[n]
                      if (m := pat.match(b))})
    if not threads:
        return False
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4.2), squeeze=False)
    for ax, t in zip(axes.flat, threads):
        for name, benches in medians.items():
            pts = sorted((int(m.group(1)), v["time_ns"]) for b, v in benches.items()
                         if (m := pat.match(b)) and int(m.group(2)) == t)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"malloc+free pair, {t} thread(s)")
        ax.set_xlabel("size (bytes)")
        ax.set_ylabel(f"ns per pair, {metric} time (lower is better)")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_rss(plt, peaks, families, path):
    names = list(peaks)
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(families)), 4.2))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(families))]
        ax.bar(xs, [peaks[name].get(f, 0) / 2**20 for f in families], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(families))])
    ax.set_xticklabels(families)
    ax.set_ylabel("peak RSS of the process (MiB)")
    ax.set_title("Peak RSS per workload family (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def import_pyplot(no_install):
    """matplotlib.pyplot from Debian's python3-matplotlib, installed if missing."""
    try:
        import matplotlib
    except ImportError:
        if dpkg_installed("python3-matplotlib"):
            log(f"WARNING: no plots: python3-matplotlib is installed for /usr/bin/python3, "
                f"but this is {sys.executable}; run the script with /usr/bin/python3")
            return None
        if no_install:
            log("WARNING: no plots: python3-matplotlib is missing and --no-install was given")
            return None
        apt_install(["python3-matplotlib"])
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_plots(out, medians, peaks, families, no_install, metric):
    plt = import_pyplot(no_install)
    if plt is None:
        return []
    made = []
    for fname, ok in (("throughput_threads.png", plot_threads(plt, medians, os.path.join(out, "throughput_threads.png"))),
                      ("time_per_size.png", plot_sizes(plt, medians, os.path.join(out, "time_per_size.png"), metric)),
                      ("peak_rss.png", plot_rss(plt, peaks, families, os.path.join(out, "peak_rss.png")))):
        if ok:
            made.append(fname)
    return made


# ---- main ------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, help="path of the nh_bench binary")
    p.add_argument("--numaheap", help="path of libnumaheap.so (default: ../libnumaheap.so "
                   "next to the nh_bench folder, if it exists)")
    p.add_argument("--allocators", default=",".join(ALL_ALLOCATORS),
                   help="comma-separated subset of " + ",".join(ALL_ALLOCATORS))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="a few minutes: 3 rounds, min_time 0.02 s (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="5 rounds, min_time 0.2 s (tens of minutes)")
    p.set_defaults(mode="quick")
    p.add_argument("--rounds", type=int, help="override the mode's rounds")
    p.add_argument("--min-time", type=float, help="override the mode's --benchmark_min_time")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated subset of " + ",".join(FAMILIES))
    p.add_argument("--filter", help="a Google Benchmark filter run instead of the families")
    p.add_argument("--metric", choices=("real", "cpu"), default="real",
                   help="time in the table and size plot: wall clock (default) or CPU time; "
                   "CPU time is steadier for one thread on a busy machine")
    p.add_argument("--per-benchmark", action="store_true",
                   help="run each benchmark in a process of its own (default: one process a "
                   "family, whose benchmarks then start on the heap the earlier ones left); "
                   "the peak RSS of a family is then its largest benchmark's")
    p.add_argument("--small-runs", type=int, default=15,
                   help="runs of each small program (footprint: peak RSS of a program that "
                   "allocates little; 0: skip them; default 15)")
    p.add_argument("--numaheap-variant", action="append", metavar="LABEL:KEY=VALUE,...",
                   help="also run numaheap as numaheap-LABEL with these NUMAHEAP_* variables "
                   "set (repeatable), e.g. nothp:NUMAHEAP_HEAP_HUGE_PAGES=off")
    p.add_argument("--no-host-probe", action="store_true",
                   help="skip the probe of how this host treats fresh huge pages (6 s)")
    p.add_argument("--out", default="compare-out", help="output folder (default compare-out)")
    p.add_argument("--no-install", action="store_true", help="never call apt-get")
    args = p.parse_args(argv)
    if not os.access(args.bench, os.X_OK):
        p.error(f"--bench {args.bench}: not an executable file")
    args.bench = os.path.abspath(args.bench)
    if args.numaheap is None:
        guess = os.path.join(os.path.dirname(os.path.dirname(args.bench)), "libnumaheap.so")
        args.numaheap = guess if os.path.exists(guess) else None
    if args.small_runs < 0:
        p.error("--small-runs must be 0 or more")
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.min_time is not None and args.min_time <= 0:
        p.error("--min-time must be positive")
    return args


def select_families(args):
    if args.filter:
        return {"custom": args.filter}
    fams = {}
    for f in args.families.split(","):
        if f not in FAMILIES:
            raise CompareError(f"unknown family '{f}' (known: {', '.join(FAMILIES)})")
        fams[f] = FAMILIES[f]
    return fams


def main(argv):
    args = parse_args(argv)
    rounds, min_time = MODES[args.mode]
    rounds = args.rounds or rounds
    min_time = args.min_time or min_time
    started = time.monotonic()
    try:
        families = select_families(args)
        libs, base, note = resolve_allocators(args)
        os.makedirs(args.out, exist_ok=True)
        log(f"allocators: {', '.join(libs)}; base {base}; {rounds} rounds; min_time {min_time}")
        host = None
        if not args.no_host_probe:
            log("probing how this host treats fresh huge pages")
            host = host_thp_probe()
            log(f"host: {host}")
        samples, rss, failures = run_all(args, libs, families, rounds, min_time)
        small = run_small_programs(args, libs, args.small_runs) if args.small_runs else {}
    except CompareError as e:
        log("ERROR: " + str(e))
        return 2
    medians, peaks = summarize(samples, rss, args.metric)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"base": base, "note": note, "libraries": libs, "variants": VARIANT_ENV,
                   "host": host, "medians": medians,
                   "peak_rss": peaks, "small_programs_kb": small, "failures": failures}, f,
                  indent=1)
    write_report(args, libs, base, note, medians, peaks, failures, list(families), rounds, min_time,
                 small, host)
    try:
        plots = write_plots(args.out, medians, peaks, list(families), args.no_install,
                            args.metric)
    except CompareError as e:
        log(f"WARNING: no plots: {e}")
        plots = []
    log(f"wrote {args.out}/report.md, results.json, raw/, {', '.join(plots) or 'no plots'} "
        f"in {time.monotonic() - started:.0f} s")
    if failures:
        log(f"FAILED: {len(failures)} run(s) failed:\n" + "\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
