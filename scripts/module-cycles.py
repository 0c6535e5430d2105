#!/usr/bin/env python3
"""Finds import circles between the modules of each crate (issue 11: "no import circles").

For every `crate::a::b…` / `super::…` path a module names, it draws an arrow from that module to
the module the path lands in, lifted to the two siblings under their closest common parent (so
`http::extract` → `http::auth::x` is the arrow extract → auth inside `http`). A child naming its
own parent is not an arrow: Rust modules use what their parent owns. Test code (`#[cfg(test)]`
onwards, `tests.rs`, `tests/` folders) is left out. Exits 1 and names each circle when any sibling
group has one; prints the arrows of a module with `--show <crate>::<module path>`.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
PATH_RE = re.compile(r"\b(crate|super)((?:::\w+)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super)((?:::\w+)*)::\{([^;]*)\};", re.S)


def module_of(src_root, file):
    rel = os.path.relpath(file, src_root)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def paths_in(text):
    """Every `crate::…`/`super::…` path, with `use x::{a, b::c}` groups expanded one level."""
    out = []
    for m in USE_GROUP_RE.finditer(text):
        base = m.group(2).split("::")[1:] if m.group(2) else []
        for item in re.split(r",(?![^{]*\})", m.group(3)):
            item = item.strip().split(" as ")[0]
            head = re.split(r"::\{", item)[0]
            if head:
                out.append((m.group(1), base + [p for p in head.split("::") if p]))
    text = USE_GROUP_RE.sub("", text)
    for m in PATH_RE.finditer(text):
        out.append((m.group(1), m.group(2).split("::")[1:]))
    return out


def crate_graph(src_root):
    files = []
    for d, _, fs in os.walk(src_root):
        if os.sep + "tests" in d[len(src_root):] or "bin" in d[len(src_root):].split(os.sep):
            continue
        files += [os.path.join(d, f) for f in fs if f.endswith(".rs") and f != "tests.rs"]
    modules = {module_of(src_root, f): f for f in files}

    def resolve(start, kind, segs):
        base = () if kind == "crate" else start
        if kind == "super":
            base = start[:-1]
            while segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
        target = base
        for s in segs:
            if target + (s,) in modules:
                target = target + (s,)
            else:
                break
        return target

    edges = {}
    for mod, f in modules.items():
        text = strip_tests(open(f, encoding="utf-8").read())
        for kind, segs in paths_in(text):
            tgt = resolve(mod, kind, list(segs))
            if tgt == mod or mod[: len(tgt)] == tgt or tgt[: len(mod)] == mod:
                continue  # self, an ancestor, or a descendant
            i = 0
            while mod[i] == tgt[i]:
                i += 1
            parent, a, b = mod[:i], mod[i], tgt[i]
            edges.setdefault(parent, {}).setdefault(a, set()).add(b)
    return edges


def cycles(graph):
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    show = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--show" else None
    found = 0
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        for parent, graph in sorted(crate_graph(src).items()):
            where = "::".join((crate,) + parent)
            if show and show.startswith(where):
                for a, bs in sorted(graph.items()):
                    print(f"{where}: {a} -> {', '.join(sorted(bs))}")
            for comp in cycles(graph):
                found += 1
                print(f"import circle in {where}: {' <-> '.join(comp)}")
    if found:
        sys.exit(1)
    print("no import circles between modules")


if __name__ == "__main__":
    main()
