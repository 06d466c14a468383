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

  check_docs.py python ROOT
      Every Python block (README.md, docs/, python/README.md) parses; what it
      imports from omniq, the package exports; and each call of a method on
      the names the docs use for a handle (q, aq) or a pool (workers, pool)
      names a method of OmniQ, AsyncOmniQ or WorkerPool with keywords it
      takes. The package is read as source (ast), not imported.

  check_docs.py shell ROOT OMNIQ
      Every sh/bash block parses (bash -n), and each `omniq COMMAND` in one
      names a command whose `OMNIQ COMMAND --help` lists every --option the
      block gives it (OMNIQ: the built binary).

Exits 1 with one line per problem, 0 when everything holds."""
import ast
import pathlib
import re
import subprocess
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


def fenced_blocks(root, langs):
    """(where, lines) of every block in one of langs, in the Markdown files
    a user reads."""
    docs = [root / "README.md", root / "python" / "README.md"]
    docs += sorted((root / "docs").rglob("*.md"))
    for doc in docs:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m or m.group(1) not in langs:
                i += 1
                continue
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            yield "%s:%d" % (doc.relative_to(root), i + 1), lines[i + 1:j]
            i = j + 1


# The names the docs give a handle or a pool, and the class each is.
PY_RECEIVERS = {"q": "OmniQ", "aq": "AsyncOmniQ", "workers": "WorkerPool", "pool": "WorkerPool"}


def python_api(root):
    """From the package's source: {class: {method: (params, takes **kw)}}
    with base classes' methods merged in, and the names it exports."""
    classes, bases, exported = {}, {}, set()
    for src in sorted((root / "python" / "omniq").glob("*.py")):
        tree = ast.parse(src.read_text(), str(src))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                methods = {}
                for f in node.body:
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        a = f.args
                        params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
                        methods[f.name] = (params, a.kwarg is not None)
                classes[node.name] = methods
                bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
            if src.name == "__init__.py" and isinstance(node, ast.Assign):
                if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                    exported = set(ast.literal_eval(node.value))

    def merged(name):
        out = {}
        for base in bases.get(name, []):
            out.update(merged(base))
        out.update(classes.get(name, {}))
        return out

    return {name: merged(name) for name in classes}, exported


def check_python(root):
    problems = []
    api, exported = python_api(root)
    if not exported:
        problems.append("python/omniq/__init__.py: no __all__ found")
    for where, block in fenced_blocks(root, ("python",)):
        try:
            tree = ast.parse("\n".join(block))
        except SyntaxError as e:
            problems.append("%s: not Python: %s (block line %s)" % (where, e.msg, e.lineno))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "omniq":
                for alias in node.names:
                    if alias.name not in exported:
                        problems.append("%s: omniq exports no %s" % (where, alias.name))
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in PY_RECEIVERS):
                continue
            cls, method = PY_RECEIVERS[node.func.value.id], node.func.attr
            if method not in api.get(cls, {}):
                problems.append("%s: %s has no method %s()" % (where, cls, method))
                continue
            params, any_kw = api[cls][method]
            for kw in node.keywords:
                if kw.arg is not None and kw.arg not in params and not any_kw:
                    problems.append("%s: %s.%s() takes no keyword %s" % (where, cls, method,
                                                                         kw.arg))
    return problems


# An omniq command in a shell line: the word omniq (not part of a path or
# a longer word, nor the user of `sudo -u omniq`), its command, and the
# words up to the end of that command.
OMNIQ_CALL = re.compile(r"(?:^|[\s(;&|])(?<!-u )omniq\s+([a-z][a-z-]*)([^;&|)]*)")
COMMENT = re.compile(r"(?:^|\s)#.*$")


def check_shell(root, binary):
    problems, helps = [], {}
    for where, block in fenced_blocks(root, ("sh", "bash")):
        text = "\n".join(block) + "\n"
        r = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("%s: bash -n: %s" % (where, r.stderr.strip()))
        for line in block:
            for m in OMNIQ_CALL.finditer(COMMENT.sub("", line)):
                command, rest = m.group(1), m.group(2).split(" -- ")[0]
                if command not in helps:
                    h = subprocess.run([binary, command, "--help"], capture_output=True,
                                       text=True)
                    helps[command] = h.stdout if h.returncode == 0 else None
                if helps[command] is None:
                    problems.append("%s: omniq has no command %s" % (where, command))
                    continue
                for opt in re.findall(r"(?:^|\s)(--[a-z][a-z-]*)", rest):
                    if not re.search(r"(?:^|[\s,])%s\b" % re.escape(opt), helps[command]):
                        problems.append("%s: omniq %s --help lists no %s" % (where, command,
                                                                             opt))
    return problems


def main(argv):
    checks = {"blocks": 3, "reference": 3, "python": 3, "shell": 4}
    if len(argv) < 2 or checks.get(argv[1]) != len(argv):
        print("usage: check_docs.py blocks|reference|python ROOT | shell ROOT OMNIQ",
              file=sys.stderr)
        return 2
    root = pathlib.Path(argv[2])
    if argv[1] == "blocks":
        problems = check_blocks(root)
    elif argv[1] == "reference":
        problems = check_reference(root)
    elif argv[1] == "python":
        problems = check_python(root)
    else:
        problems = check_shell(root, argv[3])
    for p in problems:
        print(p)
    if not problems:
        print("check_docs %s: ok" % argv[1])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
