#!/usr/bin/env python3
"""tests/docs/check-docs.py NUMAHEAP [SOURCE_DIR]: checks that the docs say
what the code does.

  1. every docs/examples/*.ini passes `numaheap check-config`, and the output
     of `numaheap topo --config` for it is exactly the fenced block that
     follows `<!-- topo: docs/examples/NAME.ini -->` in docs/tuning.md (and
     every such marker names an existing example); a block that follows
     `<!-- file: PATH -->` is exactly the content of the file PATH;
  2. every function the public headers declare with NH_API is named in
     README.md or some docs/*.md;
  3. every subcommand `numaheap --help` lists is documented: in docs/cli.md
     when that file exists, else anywhere in docs/*.md, as "numaheap NAME".

The commands run from SOURCE_DIR (default: two levels above this script),
since the examples name their XML files relative to it, with every
NUMAHEAP_* variable removed from the environment. One thing differs between
machines: "bind N" (the real node a simulated node is bound to, node i mod
the real node count), so it is compared as "bind *"; and so does the kernel's
huge-page setting, so the "huge pages: ..." line and the count of free
reserved 2 MiB pages per node are compared as "huge pages: *" and "* free". The machine's cgroup
would be another: the commands run with NUMAHEAP_TEST_CGROUP_ROOT naming an
empty directory (no cgroup, so no cgroup line and no capped budget).

Exit status 0 when everything holds; 1 with one line per problem otherwise.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

MARKER = re.compile(r"^<!-- (topo|file): (\S+) -->\s*$")
BIND = re.compile(r"\bbind \d+\b")
HUGE = re.compile(r"^huge pages: .*$", re.M)
HUGE_FREE = re.compile(r"\b\d+ free reserved 2 MiB pages$", re.M)
HOST = re.compile(r"^host: .*\n", re.M)  # free page reporting: on some machines only


def machine_free(text):
    """text with the machine-dependent parts of `numaheap topo` masked."""
    text = BIND.sub("bind *", text)
    text = HUGE.sub("huge pages: *", text)
    text = HOST.sub("", text)
    return HUGE_FREE.sub("* free reserved 2 MiB pages", text)


def run(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def doc_blocks(path):
    """{kind: {path: (line number, block text)}} for the topo and file markers."""
    blocks, problems = {"topo": {}, "file": {}}, []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        kind, name = m.group(1), m.group(2)
        where = "docs/tuning.md:%d" % i
        if i >= len(lines) or not lines[i].startswith("```"):
            problems.append("%s: '%s: %s' is not followed by a ``` block" % (where, kind, name))
            continue
        end = i + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        if end >= len(lines):
            problems.append("%s: the ``` block for %s is not closed" % (where, name))
            break
        if name in blocks[kind]:
            problems.append("%s: a second '%s' block for %s" % (where, kind, name))
        blocks[kind][name] = (i, "\n".join(lines[i + 1:end]) + "\n")
        i = end + 1
    return blocks, problems


def first_difference(want, got):
    w, g = want.split("\n"), got.split("\n")
    for k in range(max(len(w), len(g))):
        a = w[k] if k < len(w) else "<end of block>"
        b = g[k] if k < len(g) else "<end of output>"
        if a != b:
            return k + 1, a, b
    return 0, "", ""


def check_file_blocks(src, files):
    problems = []
    for name, (line, text) in sorted(files.items()):
        path = os.path.join(src, name)
        if not os.path.isfile(path):
            problems.append("docs/tuning.md:%d: shows the file %s, which does not exist" % (line, name))
            continue
        with open(path, encoding="utf-8") as f:
            have = f.read()
        if have != text:
            k, a, b = first_difference(text, have)
            problems.append("docs/tuning.md:%d: the copy of %s differs from the file at its line %d:"
                            "\n    docs: %s\n    file: %s" % (line, name, k, a, b))
    return problems


def check_examples(numaheap, src, env):
    problems = []
    tuning = os.path.join(src, "docs", "tuning.md")
    if not os.path.exists(tuning):
        return ["docs/tuning.md is missing"]
    blocks, problems = doc_blocks(tuning)
    files, blocks = blocks["file"], blocks["topo"]
    problems += check_file_blocks(src, files)
    examples = sorted(os.path.relpath(p, src)
                      for p in glob.glob(os.path.join(src, "docs", "examples", "*.ini")))
    if not examples:
        problems.append("docs/examples/ has no *.ini example")
    for ex in examples:
        rc, out, err = run([numaheap, "check-config", ex], src, env)
        if rc != 0:
            problems.append("%s: numaheap check-config fails (exit %d): %s" % (ex, rc, err.strip()))
            continue
        if ex not in blocks:
            problems.append("%s: docs/tuning.md shows no output for it (add "
                            "'<!-- topo: %s -->' before a ``` block)" % (ex, ex))
            continue
        rc, out, err = run([numaheap, "topo", "--config", ex], src, env)
        if rc != 0:
            problems.append("%s: numaheap topo --config fails (exit %d): %s" % (ex, rc, err.strip()))
            continue
        line, want = blocks[ex]
        want, got = machine_free(want), machine_free(out)
        if want != got:
            k, a, b = first_difference(want, got)
            problems.append("docs/tuning.md:%d: the topo block of %s differs from "
                            "`numaheap topo --config %s` at its line %d:\n    docs:   %s\n    output: %s"
                            % (line, ex, ex, k, a, b))
    for ex in sorted(set(blocks) - set(examples)):
        problems.append("docs/tuning.md:%d: shows output for %s, which is not an example in "
                        "docs/examples/" % (blocks[ex][0], ex))
    return problems


def read_docs(src, names):
    text = ""
    for p in names:
        with open(p, encoding="utf-8") as f:
            text += f.read() + "\n"
    return text


def public_functions(src):
    names = []
    for h in ("numaheap.h", "hostmem.h"):
        path = os.path.join(src, "api", "include", "numaheap", h)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        for decl in re.findall(r"\bNH_API\b([^;{]*);", text):
            m = re.search(r"\b([A-Za-z_]\w*)\s*\(", decl)
            if m and not re.match(r"\s*extern\b", decl):
                names.append((h, m.group(1)))
    return names


def check_api(src, docs_text):
    problems = []
    funcs = public_functions(src)
    if not funcs:
        problems.append("found no NH_API function in the public headers (did the headers move?)")
    for h, name in funcs:
        if not re.search(r"\b%s\b" % re.escape(name), docs_text):
            problems.append("%s (declared NH_API in api/include/numaheap/%s) is not mentioned "
                            "in README.md or any docs/*.md" % (name, h))
    return problems


def check_commands(numaheap, src, env, all_docs):
    rc, out, err = run([numaheap, "--help"], src, env)
    if rc != 0:
        return ["numaheap --help fails (exit %d): %s" % (rc, err.strip())]
    cmds = re.findall(r"^  numaheap (\S+)", out, flags=re.M)
    if not cmds:
        return ["numaheap --help lists no subcommand (expected lines '  numaheap NAME ...')"]
    cli = os.path.join(src, "docs", "cli.md")
    where, text = ("docs/cli.md", read_docs(src, [cli])) if os.path.exists(cli) \
        else ("docs/*.md", all_docs)
    return ["numaheap %s (listed by numaheap --help) is not documented in %s" % (c, where)
            for c in cmds if not re.search(r"numaheap %s(?![\w-])" % re.escape(c), text)]


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: check-docs.py NUMAHEAP [SOURCE_DIR]\n")
        return 2
    numaheap = os.path.abspath(argv[1])
    src = os.path.abspath(argv[2] if len(argv) == 3
                          else os.path.join(os.path.dirname(__file__), "..", ".."))
    if not os.access(numaheap, os.X_OK):
        sys.stderr.write("check-docs: %s is not an executable numaheap command\n" % numaheap)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMAHEAP_")}
    no_cgroup = tempfile.mkdtemp(prefix="nh_docs_cgroup_")
    env["NUMAHEAP_TEST_CGROUP_ROOT"] = no_cgroup
    md = sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    readme = os.path.join(src, "README.md")
    docs_text = read_docs(src, md + ([readme] if os.path.exists(readme) else []))
    problems = check_examples(numaheap, src, env)
    problems += check_api(src, docs_text)
    problems += check_commands(numaheap, src, env, read_docs(src, md))
    os.rmdir(no_cgroup)
    for p in problems:
        print("check-docs: " + p)
    if problems:
        print("check-docs: %d problem(s)" % len(problems))
        return 1
    print("check-docs: ok (%d examples, public API and subcommands documented)"
          % len(glob.glob(os.path.join(src, "docs", "examples", "*.ini"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
