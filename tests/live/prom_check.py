#!/usr/bin/env python3
"""tests/live/prom_check.py < TEXT: checks a Prometheus text exposition
(format 0.0.4) line by line, as `numaheap stats PID --prometheus` must write it:

  - every line is "# HELP name text", "# TYPE name type" or a sample
    "name{label="value",...} value" (labels optional), and ends with "\\n";
  - names match [a-zA-Z_:][a-zA-Z0-9_:]* and start with numaheap_; label
    names [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"; label values are
    quoted with \\\\, \\" and \\n as the only escapes; values are numbers;
  - each family has one HELP and one TYPE, both before its samples, and its
    samples are contiguous; TYPE is counter or gauge; counters end in _total;
  - no two samples have the same name and label set;
  - level labels are task, appdomain or process; node and cpu labels are
    whole numbers.
Exit status 0, or 1 with one line per problem.
"""
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|[-+]?Inf$|NaN$")


def parse_labels(text, where, problems):
    """'a="1",b="2"' -> (("a","1"),("b","2")), checking the syntax."""
    labels, pos = [], 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            problems.append("%s: bad label at %r" % (where, text[pos:]))
            return tuple(labels)
        if m.group(1).startswith("__"):
            problems.append("%s: reserved label name %s" % (where, m.group(1)))
        labels.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                problems.append("%s: labels must be separated by ','" % where)
                return tuple(labels)
            pos += 1
    names = [n for n, _ in labels]
    if len(set(names)) != len(names):
        problems.append("%s: a label name twice" % where)
    return tuple(labels)


def check_label_values(labels, where, problems):
    for n, v in labels:
        if n == "level" and v not in ("task", "appdomain", "process"):
            problems.append("%s: level=%r" % (where, v))
        if n in ("node", "cpu", "os_node") and not re.match(r"-?\d+$", v):
            problems.append("%s: %s=%r is not a number" % (where, n, v))


def check(text):
    problems = []
    if text and not text.endswith("\n"):
        problems.append("the last line does not end with a newline")
    helps, types, done, series = {}, {}, set(), set()
    current = None
    samples = 0
    for i, line in enumerate(text.splitlines(), 1):
        where = "line %d" % i
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                problems.append("%s: a comment that is neither HELP nor TYPE: %r" % (where, line))
                continue
            kind, name = parts[1], parts[2]
            if not NAME.match(name) or not name.startswith("numaheap_"):
                problems.append("%s: bad metric name %r" % (where, name))
            if name in done:
                problems.append("%s: %s for %s after its samples" % (where, kind, name))
            table = helps if kind == "HELP" else types
            if name in table:
                problems.append("%s: a second %s line for %s" % (where, kind, name))
            if kind == "HELP":
                if len(parts) < 4 or not parts[3]:
                    problems.append("%s: empty HELP for %s" % (where, name))
                elif re.search(r"\\[^\\n]", parts[3].replace("\\\\", "")):
                    problems.append("%s: bad escape in HELP" % where)
                helps[name] = parts[3] if len(parts) > 3 else ""
            else:
                t = parts[3] if len(parts) > 3 else ""
                if t not in ("counter", "gauge"):
                    problems.append("%s: TYPE %r (counter or gauge expected)" % (where, t))
                if t == "counter" and not name.endswith("_total"):
                    problems.append("%s: counter %s does not end in _total" % (where, name))
                types[name] = t
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        if not line:
            problems.append("%s: an empty line" % where)
            continue
        m = re.match(r"([^{ ]+)(?:\{(.*)\})? (\S+)$", line)
        if not m:
            problems.append("%s: not a sample: %r" % (where, line))
            continue
        name, labeltext, value = m.group(1), m.group(2) or "", m.group(3)
        samples += 1
        if not NAME.match(name):
            problems.append("%s: bad metric name %r" % (where, name))
        if name not in types or name not in helps:
            problems.append("%s: sample of %s before its HELP and TYPE" % (where, name))
        if name in done or (current is not None and name != current):
            problems.append("%s: samples of %s are not contiguous" % (where, name))
        if not NUMBER.match(value):
            problems.append("%s: value %r is not a number" % (where, value))
        labels = parse_labels(labeltext, where, problems)
        check_label_values(labels, where, problems)
        key = (name, tuple(sorted(labels)))
        if key in series:
            problems.append("%s: a second sample of %s%s" % (where, name, dict(labels)))
        series.add(key)
    for name in types:
        if not any(s[0] == name for s in series):
            problems.append("family %s has no sample" % name)
    if samples == 0:
        problems.append("no samples at all")
    return problems, samples, len(types)


BAD = {  # inputs the checker must refuse, and a word of the problem it must name
    "no_type": ("# HELP numaheap_x_total x\nnumaheap_x_total 1\n", "before its HELP and TYPE"),
    "counter_name": ("# HELP numaheap_x x\n# TYPE numaheap_x counter\nnumaheap_x 1\n", "_total"),
    "label_quote": ('# HELP numaheap_x x\n# TYPE numaheap_x gauge\nnumaheap_x{node=1} 1\n', "bad label"),
    "level": ('# HELP numaheap_x x\n# TYPE numaheap_x gauge\nnumaheap_x{level="big"} 1\n', "level="),
    "split": ("# HELP numaheap_a a\n# TYPE numaheap_a gauge\nnumaheap_a 1\n# HELP numaheap_b b\n"
              "# TYPE numaheap_b gauge\nnumaheap_b 1\nnumaheap_a{node=\"1\"} 2\n", "contiguous"),
    "duplicate": ("# HELP numaheap_a a\n# TYPE numaheap_a gauge\nnumaheap_a 1\nnumaheap_a 2\n", "second sample"),
    "value": ("# HELP numaheap_a a\n# TYPE numaheap_a gauge\nnumaheap_a one\n", "not a number"),
    "prefix": ("# HELP other_a a\n# TYPE other_a gauge\nother_a 1\n", "bad metric name"),
    "newline": ("# HELP numaheap_a a\n# TYPE numaheap_a gauge\nnumaheap_a 1", "newline"),
}


def self_test():
    bad = 0
    for name, (text, word) in BAD.items():
        problems = check(text)[0]
        if not any(word in p for p in problems):
            print("self-test %s: expected a problem naming %r, got %s" % (name, word, problems))
            bad += 1
    good = "# HELP numaheap_a_total a\n# TYPE numaheap_a_total counter\nnumaheap_a_total{node=\"0\",level=\"task\"} 1\n"
    if check(good)[0]:
        print("self-test: a good text was refused: %s" % check(good)[0])
        bad += 1
    print("prom_check self-test: %d of %d cases wrong" % (bad, len(BAD) + 1))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    problems, samples, families = check(sys.stdin.read())
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("prom_check: %d families, %d samples, all lines well-formed" % (families, samples))
