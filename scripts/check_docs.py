#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keeps the documentation true to the code. Two checks, each a ctest test:

  check_docs.py blocks ROOT
      Every C code block in README.md and docs/**/*.md is a real file that
      builds: the block is preceded by a marker naming its source,
          <!-- source: examples/quickstart.c -->        the whole file
          <!-- source: examples/operations.c#retry -->  one region of it
      and its text is exactly that source. A whole file is taken without its
      opening comment (the design note); a region is the lines between
      "doc:begin NAME" and "doc:end NAME" (comment lines of their own),
      with their common indentation removed. A block of another language
      (sh, ini, ...) may carry a marker too, and is then checked the same
      way. The sources are in examples/, which CMake builds and ctest runs.

  check_docs.py reference ROOT
      Every public function of include/omniq.h (each OMNIQ_EXTERN
      declaration) has an entry in docs/reference.md: a heading or table
      cell that starts with `name(`; and every entry names a function the
      header still declares.

Exits 1 with one line per problem, 0 when everything holds."""
import pathlib
import re
import sys

MARKER = re.compile(r"<!--\s*source:\s*(\S+?)(?:#([\w-]+))?\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")


def whole_file(text):
    """The file without its opening comments: the SPDX line, the design
    note (/* ... */), a shell script's #! and # lines."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "":
            i += 1
        elif line.startswith("/*"):
            while i < len(lines) and "*/" not in lines[i]:
                i += 1
            i += 1
        elif line.startswith("#!") or line.startswith("# ") or line == "#":
            i += 1
        else:
            break
    return lines[i:]


def region(text, name):
    lines = text.splitlines()
    begin = [i for i, l in enumerate(lines) if re.search(r"doc:begin %s\b" % re.escape(name), l)]
    end = [i for i, l in enumerate(lines) if re.search(r"doc:end %s\b" % re.escape(name), l)]
    if len(begin) != 1 or len(end) != 1 or end[0] <= begin[0]:
        return None
    body = lines[begin[0] + 1:end[0]]
    indents = [len(l) - len(l.lstrip(" ")) for l in body if l.strip()]
    cut = min(indents) if indents else 0
    return [l[cut:] for l in body]


def check_blocks(root):
    problems = []
    docs = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    for doc in docs:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m or not m.group(1):
                i += 1
                continue
            lang, start = m.group(1), i
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            block = lines[i + 1:j]
            where = "%s:%d" % (doc.relative_to(root), start + 1)
            k = start - 1
            while k >= 0 and lines[k].strip() == "":
                k -= 1
            marker = MARKER.search(lines[k]) if k >= 0 else None
            i = j + 1
            if marker is None:
                if lang == "c":
                    problems.append("%s: a C block without <!-- source: examples/FILE.c -->" % where)
                continue
            src = root / marker.group(1)
            if not src.is_file():
                problems.append("%s: no file %s" % (where, marker.group(1)))
                continue
            text = src.read_text()
            want = whole_file(text) if marker.group(2) is None else region(text, marker.group(2))
            if want is None:
                problems.append("%s: %s has no single region '%s'" % (where, marker.group(1),
                                                                    marker.group(2)))
            elif want != block:
                first = next((n for n, (a, b) in enumerate(zip(want, block)) if a != b),
                             min(len(want), len(block)))
                problems.append("%s: differs from %s%s at its line %d: block '%s', source '%s'" % (
                    where, marker.group(1), "#" + marker.group(2) if marker.group(2) else "",
                    first + 1, block[first] if first < len(block) else "(end)",
                    want[first] if first < len(want) else "(end)"))
    return problems


def check_reference(root):
    header = (root / "include" / "omniq.h").read_text()
    # Declarations span lines: join, then take the name before "(".
    declared = set(re.findall(r"OMNIQ_EXTERN\b[^;(]*?\b(omniq_\w+)\s*\(", header))
    ref = (root / "docs" / "reference.md").read_text()
    entries = set(re.findall(r"(?:^#+ |^\| )`(omniq_\w+)\(", ref, re.M))
    problems = ["docs/reference.md: no entry for %s (include/omniq.h declares it)" % n
                for n in sorted(declared - entries)]
    problems += ["docs/reference.md: %s is not declared in include/omniq.h" % n
                 for n in sorted(entries - declared)]
    if not declared:
        problems.append("include/omniq.h: no OMNIQ_EXTERN function found")
    return problems


def main(argv):
    if len(argv) != 3 or argv[1] not in ("blocks", "reference"):
        print("usage: check_docs.py blocks|reference ROOT", file=sys.stderr)
        return 2
    root = pathlib.Path(argv[2])
    problems = check_blocks(root) if argv[1] == "blocks" else check_reference(root)
    for p in problems:
        print(p)
    if not problems:
        print("check_docs %s: ok" % argv[1])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
