"""The package's three wings stay apart: science never imports training or the book, training
never imports the book, no import cycle, no module imports the package root.

The one map of modules and wings is the table of ``hopfield_lab/__init__.py``'s docstring (module,
wing, contents); this test reads it, checks that it lists exactly the modules on disk, and checks
every ``import`` statement of every module (parsed with ``ast``, function-level imports included)
against it. A package's ``__init__`` that Python runs on the way to a submodule is no import of
the importing module; the second test checks, in a fresh interpreter, that importing a wing does
not load another's modules that way either.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import hopfield_lab
import pytest

PACKAGE = Path(hopfield_lab.__file__).resolve().parent
ROOT = "hopfield_lab"

#: which wings a module of each wing may import (the package root is a facade: nobody imports it)
ALLOWED = {
    "core": {"core"},
    "science": {"core", "science"},  # core: runtime (progress bars, device), which imports nothing else
    "training": {"core", "science", "training"},
    "book": {"core", "science", "training", "book"},
}


def module_map() -> dict[str, str]:
    """``{dotted module (relative to the package): wing}`` from the package docstring's table."""
    lines = hopfield_lab.__doc__.splitlines()
    borders = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line.strip())]
    assert len(borders) == 3, "the package docstring has one module table (header, body)"
    starts = [m.start() for m in re.finditer(r"=+", lines[borders[0]])]
    entries, wing = {}, None
    for line in lines[borders[1] + 1: borders[2]]:
        names = line[starts[0]:starts[1]].strip()
        if not names:
            continue  # a continuation of the contents column
        wing = line[starts[1]:starts[2]].strip()
        for name in re.findall(r"``([\w.]+)``", names):
            entries[name] = wing
    return entries


def modules_on_disk() -> dict[str, Path]:
    """``{dotted name: file}`` of every module (``""`` is the package root, ``pkg`` a sub-package's ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def wing_of(module: str, entries: dict[str, str]) -> str:
    """The wing of ``module``: its own entry, else that of its closest listed package."""
    name = module
    while name:
        if name in entries:
            return entries[name]
        name = name.rpartition(".")[0]
    raise KeyError(module)


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules that ``module`` imports (``""`` for the package root)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()

    def add(base: str, names: list[str]) -> None:
        for name in names:
            sub = f"{base}.{name}".lstrip(".")
            found.add(sub if sub in modules else base)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    found.add(alias.name[len(ROOT) + 1:])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            elif node.module and (node.module == ROOT or node.module.startswith(ROOT + ".")):
                base = node.module[len(ROOT) + 1:]
            else:
                continue
            add(base, [a.name for a in node.names])
    found.discard(module)
    return found


def _graph():
    entries = module_map()
    disk = modules_on_disk()
    graph = {m: imports_of(m, p, set(disk)) for m, p in disk.items() if m}
    return entries, disk, graph


def test_the_module_map_lists_every_module_once():
    entries, disk, _ = _graph()
    listed = set(entries)
    assert set(entries.values()) <= set(ALLOWED), f"unknown wing in the map: {set(entries.values()) - set(ALLOWED)}"
    missing = sorted(m for m in disk if m and m not in listed and "." not in m)  # top-level modules and packages
    assert not missing, f"modules missing from the package docstring's map: {missing}"
    gone = sorted(listed - set(disk))
    assert not gone, f"the map lists modules that do not exist: {gone}"
    for m in disk:
        if m:
            wing_of(m, entries)  # every module has a wing


def test_wings_import_only_what_they_may():
    entries, _, graph = _graph()
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            if dst == "":
                bad.append(f"{src} imports the package root (import the module that holds the name)")
                continue
            a, b = wing_of(src, entries), wing_of(dst, entries)
            if b not in ALLOWED[a]:
                bad.append(f"{src} ({a}) imports {dst} ({b})")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_no_import_cycles():
    _, _, graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_a_wing_loads_no_module_of_a_wing_above_it():
    """In a fresh interpreter: the science modules load nothing of training or the book, the training
    modules nothing of the book (``import hopfield_lab``'s own core modules and package ``__init__``
    files on the way to a loaded module aside)."""
    entries, disk, _ = _graph()
    by_wing = {w: sorted(m for m in disk if m and wing_of(m, entries) == w) for w in ALLOWED}
    code = (
        f"import importlib, json, sys, {ROOT}\n"
        f"out = {{'root': sorted(k[len('{ROOT}.'):] for k in sys.modules if k.startswith('{ROOT}.'))}}\n"
        f"for wing, mods in {json.dumps({w: by_wing[w] for w in ('science', 'training')})}.items():\n"
        "    for m in mods:\n"
        f"        importlib.import_module('{ROOT}.' + m if m != '__main__' else '{ROOT}.training.cli')\n"
        f"    out[wing] = sorted(k[len('{ROOT}.'):] for k in sys.modules if k.startswith('{ROOT}.')\n"
        f"                       and k not in {ROOT}.OLD_PATHS)\n"
        "print(json.dumps(out))\n"
    )
    # science first, then training, in one process: what training adds is checked against training's rules
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    for wing in ("science", "training"):
        mods = set(loaded[wing]) - set(loaded["root"])  # the root facade's own imports (core) aside
        facades = {".".join(m.split(".")[:k]) for m in mods for k in range(1, m.count(".") + 1)}
        bad = sorted(m for m in mods - facades if wing_of(m, entries) not in ALLOWED[wing])
        assert not bad, f"importing the {wing} wing loads {bad}"


@pytest.mark.parametrize("doc", ["CONTRIBUTING.md", "README.md"])
def test_docs_keep_no_second_module_map(doc):
    text = (PACKAGE.parent / doc).read_text()
    assert "| module |" not in text, f"{doc} points to the package docstring's map; it keeps no table of its own"
    for path in re.findall(r"hopfield_lab/[\w/]+\.py", text):
        assert (PACKAGE.parent / path).is_file(), f"{doc} names {path}, which does not exist"


def test_old_module_paths_are_the_same_modules():
    """Code written before the wings became sub-packages keeps working: an old path gives the very
    module object of the new one (so monkeypatching either reaches both), never a second copy."""
    import importlib

    for old, new in hopfield_lab.OLD_PATHS.items():
        if old.endswith(".demos"):
            old, new = old + ".hopfield", new + ".hopfield"
        assert importlib.import_module(old) is importlib.import_module(new), old
    from hopfield_lab import train, viz  # attribute-style imports too
    assert train.__name__ == "hopfield_lab.training.train" and viz.__name__ == "hopfield_lab.book.viz"


def test_an_old_path_leaves_the_module_its_own_spec():
    """Importing through an old path must not change the module's ``__spec__`` (its relative
    imports would then resolve against the old package: an ImportWarning, or the wrong module)."""
    code = ("import warnings; warnings.simplefilter('error')\n"
            "import hopfield_lab.results.run as r, hopfield_lab.training.run as t\n"
            "assert r is t and t.__spec__.name == 'hopfield_lab.training.run', t.__spec__\n"
            "assert t.__spec__.parent == t.__package__ == 'hopfield_lab.training'\n"
            "t.upgrade({'model': 'paramixer_cifar_tiny', 'config': {}})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

