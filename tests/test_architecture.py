"""The package's structure, checked from its source: no import cycle inside fwtool/ (module-level and function-level
imports alike), no imports of another module's private names, function-level imports only for optional heavy
dependencies, and the layers of docs/architecture.md (a lower layer never imports a higher one)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "fwtool"
# Imports that may stay inside functions: optional or heavy third-party packages, loaded only by the commands
# that need them.
LAZY_OK = {"tensorflow", "tflite_micro", "cmsisdsp", "pyocd", "labgrid", "attr", "matplotlib", "pocketsphinx",  # attr: labgrid's attrs (fwtool.lab)
           # standard-library modules that exist on some operating systems only
           "termios", "tty", "grp", "pwd", "msvcrt", "winreg", "fcntl"}
# Lower number = lower layer. A module may import its own layer or lower ones only.
LAYERS = {
    "core": 0, "image": 1, "model": 1, "audio": 1, "devices": 2, "firmware": 2, "flash": 3, "emulator": 3,
    "monitor": 4, "validate": 5, "profile": 5, "train": 5, "commands": 6, "cli": 7, "__main__": 8,
    "lab": 5.5,  # labgrid board farms: drives flash (through exporters), monitor and validate; used by commands
    "targets": 4.5,  # where an image runs: the registry and the physical board (flash, monitor's opener)
    "targets.base": 0.5,  # the target interface itself (core only), so emulator/ and lab/ can implement it
    "targets.link": 0.5,  # the live byte links a target returns from open_link (core only, like base)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}
PACKAGES = {module_name(p) for p in PKG.rglob("__init__.py")}


def resolve(node: ast.ImportFrom, current: str) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if current in PACKAGES else current.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:``"""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str):
    """(target module, imported names, is function-level, line) for every fwtool-internal or lazy import."""
    tree = ast.parse(MODULES[name].read_text())
    in_function, typing_only = set(), set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(fn) if n is not fn}
        if isinstance(fn, ast.If) and is_type_checking(fn.test):  # never run: annotations only, no cycle
            typing_only |= {id(n) for stmt in fn.body for n in ast.walk(stmt)}
    for stmt in ast.walk(tree):
        if id(stmt) in typing_only:
            continue
        nested = id(stmt) in in_function
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                yield a.name, [], nested, stmt.lineno
        elif isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
            target = resolve(stmt, name)
            names = [a.name for a in stmt.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            for s in subs:
                yield s, [], nested, stmt.lineno
            if rest or not subs:
                yield target, rest, nested, stmt.lineno


def graph() -> dict[str, set[str]]:
    g = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _, _ in imports(m):
            if target in MODULES and target != m:
                g[m].add(target)
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_no_edges():
    """base.py names BuildPlan for annotations under ``if TYPE_CHECKING:`` (plan imports the family registry)."""
    assert "    from fwtool.firmware.plan import BuildPlan" in MODULES["fwtool.firmware.families.base"].read_text()
    assert "fwtool.firmware.plan" not in graph()["fwtool.firmware.families.base"]
    assert "fwtool.firmware.families" in graph()["fwtool.firmware.plan"]  # the real import still counts


def test_no_import_cycle_inside_fwtool():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_imports_of_private_names():
    bad = []
    for m in MODULES:
        for target, names, _, line in imports(m):
            if target.startswith("fwtool") and target != m:
                bad += [f"{m}:{line} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
                if target.rsplit(".", 1)[-1].startswith("_") and not target.endswith("__"):
                    bad.append(f"{m}:{line} imports private module {target}")
    assert not bad, "\n".join(bad)


def test_function_level_imports_only_for_optional_heavy_dependencies():
    bad = []
    for m in MODULES:
        for target, _, nested, line in imports(m):
            if nested and target.split(".")[0] not in LAZY_OK and target.split(".")[0] not in {"importlib"}:
                bad.append(f"{m}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def layer(m: str) -> int | None:
    parts = m.split(".")
    return LAYERS.get(".".join(parts[1:3]), LAYERS.get(parts[1])) if len(parts) > 1 else None


def test_lower_layers_never_import_higher_ones():
    bad = []
    for m in MODULES:
        lm = layer(m)
        for target, _, _, line in imports(m):
            lt = layer(target) if target.startswith("fwtool.") else None
            if lm is not None and lt is not None and lt > lm:
                bad.append(f"{m}:{line} ({lm}) imports {target} ({lt})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= 450, f"{name} has {lines} lines; split it by job"
