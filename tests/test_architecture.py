"""The import graph of src/chromalab, read from the source: no cycle, and the layers of docs/architecture.md.

Every import counts, also one inside a function or under ``if TYPE_CHECKING``: it delays the import
but the module still depends on the other. The layer table is read from docs/architecture.md, so the
document and this test cannot disagree.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "chromalab"
DOC = ROOT / "docs" / "architecture.md"


# ---- the graph ----------------------------------------------------------------------------------
def find_modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package's ``__init__``)."""
    out = {}
    for p in sorted((src / package).rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _known(name: str, modules) -> str | None:
    """The module ``name`` names: itself, or the nearest package or module above it that exists."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, source: str, is_pkg: bool, modules, package: str = PACKAGE) -> dict[str, list[int]]:
    """The package's modules ``source`` (the text of module ``name``) imports -> the lines doing so."""
    deps: dict[str, list[int]] = {}
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name``, ``mod``
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        for t in targets:
            if t == package or t.startswith(package + "."):
                found = _known(t, modules)
                if found is not None and found != name:
                    deps.setdefault(found, []).append(node.lineno)
    return deps


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, dict[str, list[int]]]:
    modules = find_modules(src, package)
    return {m: {t: sorted(set(lines)) for t, lines in imports_of(m, p.read_text(encoding="utf-8"), is_pkg,
                                                                  modules, package).items()}
            for m, (p, is_pkg) in modules.items()}


def cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, {}))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


# ---- the layers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    rank: int
    name: str
    patterns: tuple[str, ...]


def layer_table(doc: Path = DOC) -> list[Layer]:
    """The rows of the table under ``## Layers`` in docs/architecture.md: rank | layer | modules | ..."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            layers.append(Layer(int(cells[0]), cells[1], tuple(re.findall(r"`([^`]+)`", cells[2]))))
    return layers


def layer_of(module: str, layers: list[Layer]) -> Layer | None:
    """The layer whose longest pattern matching ``module`` is the longest of all."""
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for pat in layer.patterns:
            if fnmatchcase(module, pat) and (best is None or len(pat) > best[0]):
                best = (len(pat), layer)
    return best[1] if best else None


def may_import(a: Layer, b: Layer) -> bool:
    """A module of layer ``a`` may import one of ``b``: the same layer, or a lower rank."""
    return a == b or b.rank < a.rank


@pytest.fixture(scope="module")
def graph():
    return import_graph()


@pytest.fixture(scope="module")
def layers():
    return layer_table()


# ---- the tests ----------------------------------------------------------------------------------
def test_the_graph_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py", "sub/d.py", "sub/e.py"):
        (pkg / f).write_text("")
    (pkg / "a.py").write_text("import os\n\ndef f():\n    from . import b\n    from .sub.d import x\n")
    (pkg / "sub" / "d.py").write_text("from .. import VERSION\nfrom . import e\nimport pkg.c as c\n"
                                      "if False:\n    from ..b import y\n")
    g = import_graph(tmp_path, "pkg")
    assert g["pkg.a"] == {"pkg.b": [4], "pkg.sub.d": [5]}  # inside a function; a submodule; not os
    assert set(g["pkg.sub.d"]) == {"pkg", "pkg.sub.e", "pkg.c", "pkg.b"}
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_the_doc_lists_the_layers(graph, layers):
    assert [lay.rank for lay in layers] == sorted(lay.rank for lay in layers) and len(layers) >= 5
    assert len({lay.name for lay in layers}) == len(layers)
    unused = [p for lay in layers for p in lay.patterns if not any(fnmatchcase(m, p) for m in graph)]
    assert not unused, f"docs/architecture.md names modules that do not exist: {unused}"


def test_every_module_is_in_a_layer(graph, layers):
    missing = sorted(m for m in graph if layer_of(m, layers) is None)
    assert not missing, f"add these modules to the layer table of docs/architecture.md: {missing}"


def test_no_import_cycle(graph):
    found = cycles(graph)
    lines = []
    for comp in found:
        lines.append(" <-> ".join(comp))
        lines += [f"    {a} -> {b} (line {', '.join(map(str, ln))})"
                  for a in comp for b, ln in sorted(graph[a].items()) if b in comp]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_imports_follow_the_layers(graph, layers):
    modules = find_modules()
    bad = []
    for a, deps in sorted(graph.items()):
        la = layer_of(a, layers)
        for b, lines in sorted(deps.items()):
            lb = layer_of(b, layers)
            if la is not None and lb is not None and not may_import(la, lb):
                where = modules[a][0].relative_to(ROOT)
                bad += [f"{where}:{line}: {a} ({la.rank} {la.name}) imports {b} ({lb.rank} {lb.name})"
                        for line in lines]
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_the_engine_knows_no_films_and_no_batches(graph):
    """``chromalab.inference`` (the engine) imports neither the films (``chromalab.video``) nor the
    ``colorize`` front end that uses both (``chromalab.batch``)."""
    front = ("chromalab.video", "chromalab.batch")
    bad = [f"{a} imports {b}" for a, deps in sorted(graph.items()) if a == "chromalab.inference"
           or a.startswith("chromalab.inference.") for b in deps if b in front or b.startswith(tuple(f + "." for f in front))]
    assert not bad, "\n".join(bad)
